/* api_internal.h — what server.c shares with the handlers_*.c and metrics.c
 * files of api/: the server and request structs and reply helpers.
 *
 * A handler fills the request's reply (status, content type, body) and
 * returns 0; or returns a negative errno code that server.c turns into an
 * error answer: -E2BIG (response over max_response_bytes) 422, -ETIMEDOUT
 * 503 timeout, -ENOMEM 503, anything else 500 (storage failures, never user
 * input). Handlers answer user errors themselves with api__error() (which
 * returns 0). The body is an lw_buf capped at max_response_bytes.
 */
#ifndef LW_API_INTERNAL_H
#define LW_API_INTERNAL_H

#include <microhttpd.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "api.h"
#include "lw_util.h"
#include "params.h"
#include "webconfig.h"

/* Status codes counted per handler in leakwatch_http_requests_total. */
#define API__N_CODES 11
extern const unsigned api__codes[API__N_CODES]; /* last entry 0 = any other code */

struct api_request;
typedef int (*api__handler)(struct api_request *r);

typedef struct api__route {
    const char *path;    /* exact path, or prefix when it ends in '/' */
    const char *methods; /* "GET" (also HEAD) or "POST" (also PUT) */
    api__handler handler;
    bool needs_store;    /* 503 until ready */
} api__route;

struct api_server {
    struct MHD_Daemon *mhd;
    api_options opt;          /* with defaults filled in */
    api_sources src;
    int port;
    int64_t start_time_ns;
    atomic_ullong *requests;  /* n_routes + 1 (unmatched) rows of API__N_CODES counters */
    api_webconfig web;        /* TLS and users from opt.web_config_file (empty without) */
    atomic_bool stopping;     /* set by api_server_stop: long handlers give up early */
    sem_t queries;            /* max_concurrent_queries slots for store-reading handlers */
    bool queries_init;
};

typedef struct api_request {
    api_server *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    int64_t now_ns;          /* when the request arrived */
    int64_t deadline_ns;     /* now_ns + request_timeout_seconds */
    /* the reply */
    unsigned status;
    const char *content_type;
    lw_buf body;
    char filename[128];      /* Content-Disposition attachment name, "" for none */
    char header_name[2][40]; /* up to two extra headers, "" for none */
    char header_value[2][128];
    bool auth_challenge;     /* answer with a Basic authentication challenge */
} api_request;

/* The routing table (server.c) and its size. */
extern const api__route api__routes[];
extern const size_t api__n_routes;

/* Query argument `name` or NULL when absent or empty. */
const char *api__arg(api_request *r, const char *name);

/* Set an error answer {"status":"error","errorType":type,"error":msg}.
 * Returns 0, or -ENOMEM when even that cannot be built. */
int api__error(api_request *r, unsigned status, const char *type, const char *fmt, ...) LW_WUR
    LW_PRINTF(4, 5);

/* 400 bad_data: `invalid parameter "name": reason`. Returns 0 or -ENOMEM. */
int api__bad_param(api_request *r, const char *name, const char *reason) LW_WUR;

/* Start / finish a success envelope around JSON written to r->body in
 * between. Set status 200 and content type. 0, -E2BIG or -ENOMEM. */
int api__json_begin(api_request *r) LW_WUR;
int api__json_end(api_request *r) LW_WUR;

/* Set an extra response header (at most two per request). */
void api__set_header(api_request *r, const char *name, const char *value);

/* True once the source is ready (store set and ready callback true). */
bool api__ready(const api_server *srv);

/* Handlers (handlers_status.c). */
int api__h_healthy(api_request *r);
int api__h_ready(api_request *r);
int api__h_reload(api_request *r);
int api__h_metrics(api_request *r);
int api__h_targets(api_request *r);
int api__h_leaks(api_request *r);
int api__h_alerts(api_request *r);

/* Handlers (handlers_profiles.c). */
int api__h_profiles(api_request *r);
int api__h_profile(api_request *r);
int api__h_merge(api_request *r);
int api__h_diff(api_request *r);
int api__h_series(api_request *r);

/* Append the process_* families (metrics.c): resident and virtual memory,
 * CPU seconds, open and max fds, start time. Values that cannot be read are
 * left out. 0, -E2BIG or -ENOMEM. */
int api__process_metrics(lw_buf *out) LW_WUR;


#endif
