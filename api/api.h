/* api.h — leakwatch's HTTP API server (libmicrohttpd): /metrics, health and
 * readiness, reload, targets, stored profiles, merges, diffs, series, leaks
 * and alerts.
 *
 * Design: the server knows nothing of the collector or the detector. The
 * daemon hands it an api_sources struct: the open store (profiles, series,
 * targets as stored) plus callbacks that produce the live parts (target
 * health, collector/detector metric families, leak verdicts, alerts) and a
 * reload hook. A NULL callback gives a sensible default (see each field).
 * Everything the server computes from the store (lists, merges, diffs,
 * series) goes through store.h, so only prepared statements reach SQLite.
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by
 * max_connections), so a slow client never stalls other clients. To keep
 * the daemon's scrape loop on schedule however many clients come, the
 * connection threads run at a lower CPU priority (nice +5) and at most
 * max_concurrent_queries requests read the store at once. Callbacks are therefore
 * called from several threads at once and must be thread-safe; they must not
 * block for long (they render state the daemon already has).
 *
 * JSON answers use the Prometheus HTTP API envelope:
 *   {"status":"success","data":...}
 *   {"status":"error","errorType":"bad_data","error":"..."}
 * Status codes: 400 bad_data (the message names the bad parameter), 404
 * not_found (unknown path, target or profile), 405 (wrong method), 413/414
 * (request too large), 422 execution (nothing stored in the range, profiles
 * that cannot be combined), 503 unavailable (not ready) or timeout (request
 * took longer than request_timeout_seconds). User input never yields a 500.
 *
 * With a web config file that lists basic_auth_users, every endpoint but
 * /-/healthy answers 401 (with a Basic challenge) to requests without valid
 * credentials; with tls_server_config the server speaks HTTPS only.
 *
 * Errors: api_server_start returns 0 or a negative errno code (-EINVAL bad
 * address or web config, -EADDRINUSE, -EACCES, -ENOMEM, -EIO) with a
 * readable reason in err.
 */
#ifndef LW_API_H
#define LW_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"
#include "store.h"

#define API_ERR_LEN 256
#define API_DEFAULT_LISTEN_ADDRESS "127.0.0.1:9475"

typedef struct api_server api_server;

/* Limits; a zero field takes the default in brackets. */
typedef struct api_options {
    unsigned max_connections;            /* concurrent connections [256] */
    unsigned connection_timeout_seconds; /* idle time before a connection is closed [30] */
    unsigned request_timeout_seconds;    /* work budget of one merge/diff [30] */
    size_t max_response_bytes;           /* body of one answer [256 MiB] */
    size_t max_url_bytes;                /* path plus query string [8192]; 414 beyond */
    size_t max_body_bytes;               /* request body (only /-/reload takes one) [4096]; 413 beyond */
    size_t connection_memory_bytes;      /* per connection, bounds headers [64 KiB]; 431 beyond */
    size_t max_merge_profiles;           /* profiles one merge may combine [1000] */
    int64_t max_range_seconds;           /* longest from..to range [31 days] */
    size_t max_list_profiles;            /* rows of /api/v1/profiles [10000] */
    unsigned max_concurrent_queries;     /* store-reading requests (lists, profiles, merges,
                                            diffs, series) running at once; others wait up to
                                            request_timeout_seconds, then 503 [3] */
    const char *web_config_file;         /* exporter-toolkit web config: TLS and basic auth
                                            (see webconfig.h); NULL = plain HTTP, no auth */
} api_options;

/* What the server serves. Copied by api_server_start; pointers must stay
 * valid until api_server_stop returns. Every callback gets ctx. Callbacks
 * that fill `out` append JSON or text to it and return 0, or a negative
 * errno code (the request then gets 503 with errorType "unavailable"; -E2BIG
 * from a full `out` is reported as a too-large response). */
typedef struct api_sources {
    store *store; /* opened by the daemon; NULL = not ready (data endpoints 503) */
    void *ctx;

    /* The value of "data" of GET /api/v1/targets. Recommended shape:
     * {"activeTargets":[{"labels":{"job":..,"instance":..,...},
     *   "scrapeUrl":"http://h:p","health":"up"|"down"|"unknown",
     *   "lastScrape":"RFC3339","lastScrapeDuration":seconds,"lastError":"",
     *   "profiles":[{"type":"heap","health":..,"lastScrape":..,
     *                "lastScrapeDuration":..,"lastError":..}, ...]}, ...]}
     * NULL: the stored targets with health "unknown". */
    int (*targets_json)(void *ctx, lw_buf *out);

    /* Extra Prometheus text-format families (HELP and TYPE lines included)
     * appended to GET /metrics after the server's own (leakwatch_build_info,
     * leakwatch_profiles_stored, leakwatch_storage_bytes,
     * leakwatch_http_requests_total and process_*). NULL: none. */
    int (*metrics_text)(void *ctx, lw_buf *out);

    /* The value of "data" of GET /api/v1/leaks: an array of verdicts, e.g.
     * [{"labels":{"job":..,"instance":..},"signal":"goroutines","suspected":true,
     *   "score":..,"slope_per_second":..,"growth":..,"window_seconds":..,
     *   "top_stacks":[{"function":..,"location":"file:line","growth":..}]}].
     * NULL: []. */
    int (*leaks_json)(void *ctx, lw_buf *out);

    /* The value of "data" of GET /api/v1/alerts, as Prometheus does:
     * {"alerts":[{"labels":{..},"annotations":{..},"state":"pending"|"firing",
     *   "activeAt":"RFC3339","value":".."}]}. NULL: {"alerts":[]}. */
    int (*alerts_json)(void *ctx, lw_buf *out);

    /* POST /-/reload: reload the configuration. 0 = 200; -EINVAL (bad
     * config) = 400 with err; other failures = 503 with err. NULL: 200. */
    int (*reload)(void *ctx, char *err, size_t err_len);

    /* GET /-/ready and the data endpoints: true once the configuration is
     * loaded. NULL: ready as soon as store is set. */
    bool (*ready)(void *ctx);

    /* Shown as the base of links (not used for routing). May be NULL. */
    const char *external_url;
} api_sources;

/* Start serving on listen_address: "host:port" where host is an IPv4
 * address, a bracketed IPv6 address ("[::1]:9475") or a name resolved with
 * getaddrinfo (first address wins); an empty host (":9475") listens on all
 * IPv4 and IPv6 addresses; port 0 picks a free port (see api_server_port).
 * opt may be NULL (all defaults). On success *out is the running server; on
 * failure *out is NULL and err says why ("listen 127.0.0.1:9475: Address
 * already in use"). */
int api_server_start(const char *listen_address, const api_options *opt, const api_sources *src,
                     api_server **out, char *err, size_t err_len) LW_WUR;

/* The TCP port the server listens on. Cannot fail. */
int api_server_port(const api_server *srv);

/* Stop accepting, wait for running requests to finish, free everything.
 * api_server_stop(NULL) is safe. Does not close the store. */
void api_server_stop(api_server *srv);

#endif
