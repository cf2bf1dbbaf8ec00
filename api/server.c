/* server.c — the libmicrohttpd server of the API: listening, limits,
 * routing, the JSON envelope and error mapping (see api.h).
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION with an internal
 * poll() thread), bounded by max_connections: a slow client or a long merge
 * occupies only its own thread. Connection threads renice themselves (+5)
 * and store-reading handlers take one of max_concurrent_queries semaphore
 * slots, so 50 clients merging never starve the daemon's scrape loop of CPU
 * or of the store's reader connection. The listening socket is made here (not by
 * MHD) so that IPv4, bracketed IPv6 and host names all work and bind errors
 * read well. Limits: MHD's connection memory limit bounds the request line
 * and headers (431/414 from MHD), the URL with its query string is checked
 * against max_url_bytes (414), a request body against max_body_bytes (413,
 * refused before reading when Content-Length says so, the connection
 * dropped otherwise), the idle time of a connection by MHD's connection
 * timeout, and handler work by a deadline the merge loop checks.
 *
 * The web config file (webconfig.h) adds TLS (MHD_USE_TLS with the PEM key
 * and certificate in memory) and basic authentication, checked in
 * authorize() before routing.
 */
#include "api_internal.h"
#include "lw_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_CONNECTION_TIMEOUT_S 30
#define DEFAULT_REQUEST_TIMEOUT_S 30
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)256 << 20)
#define DEFAULT_MAX_URL_BYTES 8192
#define DEFAULT_MAX_BODY_BYTES 4096
#define DEFAULT_CONNECTION_MEMORY_BYTES ((size_t)64 << 10)
#define DEFAULT_MAX_MERGE_PROFILES 1000
#define DEFAULT_MAX_RANGE_S (31 * 24 * 3600)
#define DEFAULT_MAX_LIST_PROFILES 10000
#define DEFAULT_MAX_CONCURRENT_QUERIES 3
#define API_THREAD_NICE 5 /* connection threads yield the CPU to the scrape loop */
#define MAX_QUERY_ARGS 64

const unsigned api__codes[API__N_CODES] = {200, 400, 404, 405, 413, 414, 422, 431, 500, 503, 0};

const api__route api__routes[] = {
    {"/metrics", "GET", api__h_metrics, false},
    {"/-/healthy", "GET", api__h_healthy, false},
    {"/-/ready", "GET", api__h_ready, false},
    {"/-/reload", "POST", api__h_reload, false},
    {"/api/v1/targets", "GET", api__h_targets, false},
    {"/api/v1/profiles", "GET", api__h_profiles, true},
    {"/api/v1/profiles/", "GET", api__h_profile, true},
    {"/api/v1/merge", "GET", api__h_merge, true},
    {"/api/v1/diff", "GET", api__h_diff, true},
    {"/api/v1/series", "GET", api__h_series, true},
    {"/api/v1/leaks", "GET", api__h_leaks, false},
    {"/api/v1/alerts", "GET", api__h_alerts, false},
};
const size_t api__n_routes = sizeof api__routes / sizeof api__routes[0];

/* Per-connection state between MHD's calls for one request. */
typedef struct conn_state {
    size_t body_bytes; /* request body bytes seen */
} conn_state;

bool api__ready(const api_server *srv)
{
    if (!srv->src.store)
        return false;
    return srv->src.ready ? srv->src.ready(srv->src.ctx) : true;
}

const char *api__arg(api_request *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

int api__error(api_request *r, unsigned status, const char *type, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lw_buf_reset(&r->body);
    r->filename[0] = '\0';
    r->header_name[0][0] = r->header_name[1][0] = '\0';
    r->status = status;
    r->content_type = "application/json";
    int rc = lw_buf_puts(&r->body, "{\"status\":\"error\",\"errorType\":");
    if (!rc)
        rc = lw_buf_json_str(&r->body, type);
    if (!rc)
        rc = lw_buf_puts(&r->body, ",\"error\":");
    if (!rc)
        rc = lw_buf_json_str(&r->body, msg);
    if (!rc)
        rc = lw_buf_puts(&r->body, "}\n");
    return rc ? -ENOMEM : 0;
}

int api__bad_param(api_request *r, const char *name, const char *reason)
{
    return api__error(r, 400, "bad_data", "invalid parameter \"%s\": %s", name, reason);
}

int api__json_begin(api_request *r)
{
    r->status = 200;
    r->content_type = "application/json";
    return lw_buf_puts(&r->body, "{\"status\":\"success\",\"data\":");
}

int api__json_end(api_request *r)
{
    return lw_buf_puts(&r->body, "}\n");
}

void api__set_header(api_request *r, const char *name, const char *value)
{
    for (int i = 0; i < 2; i++) {
        if (!r->header_name[i][0]) {
            snprintf(r->header_name[i], sizeof r->header_name[i], "%s", name);
            snprintf(r->header_value[i], sizeof r->header_value[i], "%s", value);
            return;
        }
    }
}

/* Sum of the lengths of the query arguments, and their number. */
typedef struct args_size {
    size_t bytes;
    size_t n;
} args_size;

static enum MHD_Result count_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    args_size *a = cls;
    a->bytes += strlen(key) + 2 + (value ? strlen(value) : 0);
    a->n++;
    return MHD_YES;
}

static size_t route_index(const char *url)
{
    for (size_t i = 0; i < api__n_routes; i++) {
        const char *p = api__routes[i].path;
        size_t n = strlen(p);
        if (p[n - 1] == '/' ? strncmp(url, p, n) == 0 && url[n] : strcmp(url, p) == 0)
            return i;
    }
    return api__n_routes;
}

static bool method_allowed(const char *allowed, const char *method)
{
    if (strcmp(allowed, "GET") == 0)
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
}

static void count_request(api_server *srv, size_t route, unsigned status)
{
    size_t c = 0;
    while (c + 1 < API__N_CODES && api__codes[c] != status)
        c++;
    atomic_fetch_add_explicit(&srv->requests[route * API__N_CODES + c], 1, memory_order_relaxed);
}

/* Access control: with basic_auth_users configured, every endpoint but
 * /-/healthy needs valid credentials. */
static bool authorize(api_server *srv, struct MHD_Connection *conn, const char *url)
{
    if (!srv->web.n_users || strcmp(url, "/-/healthy") == 0)
        return true;
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &password);
    bool ok = api_webconfig_check(&srv->web, user, password);
    MHD_free(user);
    MHD_free(password);
    return ok;
}

static enum MHD_Result send_reply(api_request *r, size_t route)
{
    size_t len = 0;
    char *data = lw_buf_detach(&r->body, &len);
    struct MHD_Response *resp = data ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE)
                                     : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    bool ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                      r->content_type ? r->content_type : "text/plain; charset=utf-8") == MHD_YES;
    ok = ok && MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES;
    if (ok && r->filename[0]) {
        char disp[192];
        snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", r->filename);
        ok = MHD_add_response_header(resp, "Content-Disposition", disp) == MHD_YES;
    }
    for (int i = 0; ok && i < 2; i++) {
        if (r->header_name[i][0])
            ok = MHD_add_response_header(resp, r->header_name[i], r->header_value[i]) == MHD_YES;
    }
    if (ok && r->status == 405)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                     route < api__n_routes && strcmp(api__routes[route].methods, "POST") == 0
                                         ? "POST, PUT"
                                         : "GET, HEAD") == MHD_YES;
    enum MHD_Result res = MHD_NO;
    if (ok)
        res = r->auth_challenge ? MHD_queue_basic_auth_fail_response(r->conn, "leakwatch", resp)
                                : MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    count_request(r->srv, route, r->status);
    return res;
}

/* Turn a handler's negative return into an answer (see api_internal.h). */
static int map_failure(api_request *r, int rc)
{
    switch (rc) {
    case -E2BIG:
        return api__error(r, 422, "execution",
                          "response exceeds the limit of %zu bytes; narrow the range or the selection",
                          r->srv->opt.max_response_bytes);
    case -ETIMEDOUT:
        return api__error(r, 503, "timeout", "request took longer than %u s",
                          r->srv->opt.request_timeout_seconds);
    case -ENOMEM:
        return api__error(r, 503, "unavailable", "out of memory");
    default:
        return api__error(r, 500, "internal", "storage error: %s", strerror(-rc));
    }
}

/* Wait for one of the max_concurrent_queries slots, until deadline_ns. */
static bool acquire_query_slot(api_server *srv, int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / API_NS_PER_SECOND),
                          .tv_nsec = (long)(deadline_ns % API_NS_PER_SECOND)};
    for (;;) {
        if (sem_timedwait(&srv->queries, &ts) == 0)
            return true;
        if (errno != EINTR)
            return false;
    }
}

static enum MHD_Result dispatch(api_server *srv, struct MHD_Connection *conn, const char *url,
                                const char *method, const conn_state *cs)
{
    api_request r;
    memset(&r, 0, sizeof r);
    r.srv = srv;
    r.conn = conn;
    r.method = method;
    r.path = url;
    r.now_ns = lw_wall_ns();
    r.deadline_ns = r.now_ns + (int64_t)srv->opt.request_timeout_seconds * API_NS_PER_SECOND;
    lw_buf_init(&r.body, srv->opt.max_response_bytes);

    size_t route = route_index(url);
    args_size as = {0, 0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, count_arg, &as);
    int rc;
    if (!authorize(srv, conn, url)) {
        rc = api__error(&r, 401, "unauthorized", "authentication required");
        r.auth_challenge = true;
    }
    else if (strlen(url) + as.bytes > srv->opt.max_url_bytes)
        rc = api__error(&r, 414, "bad_data", "URL longer than %zu bytes", srv->opt.max_url_bytes);
    else if (as.n > MAX_QUERY_ARGS)
        rc = api__error(&r, 414, "bad_data", "more than %d query parameters", MAX_QUERY_ARGS);
    else if (route == api__n_routes)
        rc = api__error(&r, 404, "not_found", "no such endpoint: %.200s", url);
    else if (!method_allowed(api__routes[route].methods, method))
        rc = api__error(&r, 405, "bad_data", "method %.16s not allowed on %s", method, api__routes[route].path);
    else if (cs->body_bytes > srv->opt.max_body_bytes)
        rc = api__error(&r, 413, "bad_data", "request body larger than %zu bytes", srv->opt.max_body_bytes);
    else if (api__routes[route].needs_store && !api__ready(srv))
        rc = api__error(&r, 503, "unavailable", "leakwatchd is not ready");
    else if (api__routes[route].needs_store && !acquire_query_slot(srv, r.deadline_ns))
        rc = api__error(&r, 503, "timeout", "too many concurrent queries; waited %u s",
                        srv->opt.request_timeout_seconds);
    else {
        rc = api__routes[route].handler(&r);
        if (rc < 0)
            rc = map_failure(&r, rc);
        if (api__routes[route].needs_store)
            sem_post(&srv->queries);
    }
    enum MHD_Result res = rc == 0 ? send_reply(&r, route) : MHD_NO;
    lw_buf_cleanup(&r.body);
    return res;
}

static enum MHD_Result refuse_early(api_server *srv, struct MHD_Connection *conn, unsigned status,
                                    const char *msg)
{
    api_request r;
    memset(&r, 0, sizeof r);
    r.srv = srv;
    r.conn = conn;
    lw_buf_init(&r.body, 4096);
    enum MHD_Result res = MHD_NO;
    if (api__error(&r, status, "bad_data", "%s", msg) == 0)
        res = send_reply(&r, api__n_routes);
    lw_buf_cleanup(&r.body);
    return res;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    api_server *srv = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        *con_cls = cs;
        /* Linux nice values are per thread; this connection's thread only. */
        if (getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)) < API_THREAD_NICE)
            (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), API_THREAD_NICE);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        uint64_t n;
        if (cl && api_parse_uint(cl, 0, UINT64_MAX, &n, NULL, 0))
            return refuse_early(srv, conn, 400, "bad Content-Length");
        if (cl && n > srv->opt.max_body_bytes) {
            char msg[96];
            snprintf(msg, sizeof msg, "request body larger than %zu bytes", srv->opt.max_body_bytes);
            return refuse_early(srv, conn, 413, msg);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        cs->body_bytes += *upload_data_size;
        *upload_data_size = 0;
        /* A chunked body over the limit: drop the connection rather than read on. */
        return cs->body_bytes > srv->opt.max_body_bytes ? MHD_NO : MHD_YES;
    }
    return dispatch(srv, conn, url, method, cs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) LW_PRINTF(2, 0);

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    fprintf(stderr, "api: %s\n", msg);
}

/* Split "host:port" / "[v6]:port" / ":port" into host (may be "") and port. */
static int split_address(const char *addr, char *host, size_t host_len, char *port, size_t port_len,
                         char *err, size_t err_len)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            lw_set_err(err, err_len, "listen address \"%s\": want [IPv6]:port", addr);
            return -EINVAL;
        }
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) {
            lw_set_err(err, err_len, "listen address \"%s\": missing port (want host:port)", addr);
            return -EINVAL;
        }
        if (memchr(addr, ':', (size_t)(colon - addr))) {
            lw_set_err(err, err_len, "listen address \"%s\": IPv6 addresses need brackets ([::1]:9475)", addr);
            return -EINVAL;
        }
        hl = (size_t)(colon - addr);
    }
    uint64_t p;
    if (hl >= host_len || api_parse_uint(colon + 1, 0, 65535, &p, NULL, 0)) {
        lw_set_err(err, err_len, "listen address \"%s\": bad host or port (want host:port, port 0-65535)", addr);
        return -EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, port_len, "%u", (unsigned)p);
    return 0;
}

static int open_listener(const char *addr, int *fd_out, int *port_out, char *err, size_t err_len)
{
    char host[256], port[8];
    int rc = split_address(addr, host, sizeof host, port, sizeof port, err, err_len);
    if (rc)
        return rc;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = host[0] ? AF_UNSPEC : AF_INET6;
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai && !host[0]) {
        hints.ai_family = AF_INET;
        gai = getaddrinfo(NULL, port, &hints, &res);
    }
    if (gai) {
        lw_set_err(err, err_len, "listen address \"%s\": %s", addr, gai_strerror(gai));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0) {
        rc = -errno;
        lw_set_err(err, err_len, "listen %s: socket: %s", addr, strerror(errno));
        goto out;
    }
    int one = 1, zero = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6 && !host[0])
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        rc = -errno;
        lw_set_err(err, err_len, "listen %s: %s", addr, strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        rc = -errno;
        lw_set_err(err, err_len, "listen %s: getsockname: %s", addr, strerror(errno));
        goto out;
    }
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return rc;
}

static void fill_defaults(api_options *o)
{
    if (!o->max_connections)
        o->max_connections = DEFAULT_MAX_CONNECTIONS;
    if (!o->connection_timeout_seconds)
        o->connection_timeout_seconds = DEFAULT_CONNECTION_TIMEOUT_S;
    if (!o->request_timeout_seconds)
        o->request_timeout_seconds = DEFAULT_REQUEST_TIMEOUT_S;
    if (!o->max_response_bytes)
        o->max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES;
    if (!o->max_url_bytes)
        o->max_url_bytes = DEFAULT_MAX_URL_BYTES;
    if (!o->max_body_bytes)
        o->max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    if (!o->connection_memory_bytes)
        o->connection_memory_bytes = DEFAULT_CONNECTION_MEMORY_BYTES;
    if (!o->max_merge_profiles)
        o->max_merge_profiles = DEFAULT_MAX_MERGE_PROFILES;
    if (!o->max_range_seconds)
        o->max_range_seconds = DEFAULT_MAX_RANGE_S;
    if (!o->max_list_profiles)
        o->max_list_profiles = DEFAULT_MAX_LIST_PROFILES;
    if (!o->max_concurrent_queries)
        o->max_concurrent_queries = DEFAULT_MAX_CONCURRENT_QUERIES;
}

int api_server_start(const char *listen_address, const api_options *opt, const api_sources *src,
                     api_server **out, char *err, size_t err_len)
{
    int rc;
    int fd = -1;
    *out = NULL;
    if (!listen_address || !src) {
        lw_set_err(err, err_len, "api: no listen address or sources");
        return -EINVAL;
    }
    api_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        lw_set_err(err, err_len, "api: out of memory");
        return -ENOMEM;
    }
    if (opt)
        srv->opt = *opt;
    fill_defaults(&srv->opt);
    srv->src = *src;
    srv->start_time_ns = lw_wall_ns();
    if (sem_init(&srv->queries, 0, srv->opt.max_concurrent_queries) != 0) {
        rc = -errno;
        lw_set_err(err, err_len, "api: sem_init: %s", strerror(errno));
        goto fail;
    }
    srv->queries_init = true;
    srv->requests = calloc((api__n_routes + 1) * API__N_CODES, sizeof *srv->requests);
    if (!srv->requests) {
        rc = -ENOMEM;
        lw_set_err(err, err_len, "api: out of memory");
        goto fail;
    }
    if (srv->opt.web_config_file) {
        rc = api_webconfig_load(srv->opt.web_config_file, &srv->web, err, err_len);
        if (rc)
            goto fail;
        srv->opt.web_config_file = NULL; /* not owned; only read here */
    }
    rc = open_listener(listen_address, &fd, &srv->port, err, err_len);
    if (rc)
        goto fail;
    unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->opt.max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)srv->opt.connection_timeout_seconds, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)srv->opt.connection_memory_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
        {MHD_OPTION_END, 0, NULL}, /* TLS key, certificate and priorities go here */
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (srv->web.tls_cert_pem) {
        flags |= MHD_USE_TLS;
        ops[5] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->web.tls_key_pem};
        ops[6] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->web.tls_cert_pem};
        ops[7] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                         (void *)"NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"};
    }
    srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
                                MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    if (!srv->mhd) {
        rc = -EIO;
        lw_set_err(err, err_len, "listen %s: libmicrohttpd failed to start", listen_address);
        goto fail;
    }
    *out = srv;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    if (srv->queries_init)
        sem_destroy(&srv->queries);
    api_webconfig_cleanup(&srv->web);
    free(srv->requests);
    free(srv);
    return rc;
}

int api_server_port(const api_server *srv)
{
    return srv->port;
}

void api_server_stop(api_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    MHD_stop_daemon(srv->mhd); /* joins connection threads, closes the listening socket */
    sem_destroy(&srv->queries);
    api_webconfig_cleanup(&srv->web);
    free(srv->requests);
    free(srv);
}
