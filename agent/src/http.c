/* http.c — the agent's /debug/pprof HTTP server (libmicrohttpd).
 *
 * Paths, parameters, content types and error conventions follow Go's
 * net/http/pprof (Go 1.19): profiles are gzipped protos served as
 * application/octet-stream with Content-Disposition; ?debug=N gives text;
 * ?seconds=N on heap/allocs/goroutine/threadcreate returns a delta profile
 * (p1 - p0, by scaling p0 by -1 and merging); errors are text/plain with
 * X-Go-Pprof: 1. The server uses a thread per connection so that a 30 s CPU
 * profile does not block other requests; every server thread is marked
 * internal (never heap-sampled). The listening socket is opened here (so a
 * bind failure has an exact errno) and handed to libmicrohttpd.
 *
 * With a bearer token, requests are authenticated when their headers are
 * complete (before any body is read): a missing or wrong token gets 401 with
 * WWW-Authenticate: Bearer, the body is discarded. Limits (agent.h):
 * connections, inactivity timeout, per-connection memory (URL and header
 * sizes), POST body size.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <strings.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent_internal.h"
#include "leakwatch/agent.h"

#define MAX_UPLOAD_BYTES ((size_t)1 << 20)

static struct MHD_Daemon *daemon_;
/* The parent's server as a fork() child inherited it: not ours to stop or
 * free (its threads are not in this process), kept reachable on purpose so
 * leak checkers of the child do not report it. */
static struct MHD_Daemon *parents_daemon_;
static int listen_fd = -1;
static int bound_port;
static bool cpu_on = true;
static pthread_mutex_t http_lock = PTHREAD_MUTEX_INITIALIZER;
/* The required bearer token (empty: none); set before the daemon starts,
 * read-only while it runs. */
static char token_[LW_AGENT_MAX_TOKEN_BYTES + 1];
static size_t token_len;

typedef struct conn_state {
    lw_buf body; /* POST body, capped */
    bool denied; /* failed authentication: body discarded, 401 at the end */
} conn_state;

/* ---- responses ---------------------------------------------------------- */

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *ctype,
                                const char *disposition, bool go_error, lw_buf *body)
{
    size_t len = 0;
    char *data = lw_buf_detach(body, &len);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, data ? data : (char *)"",
                                        data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (disposition)
        MHD_add_response_header(r, "Content-Disposition", disposition);
    if (go_error)
        MHD_add_response_header(r, "X-Go-Pprof", "1");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result serve_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    LW_PRINTF(3, 4);

static enum MHD_Result serve_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    lw_buf b;
    lw_buf_init(&b, 4096);
    va_list ap;
    va_start(ap, fmt);
    int rc = lw_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc == 0)
        rc = lw_buf_puts(&b, "\n");
    (void)rc; /* a truncated message is still an error response */
    return send_buf(c, status, "text/plain; charset=utf-8", NULL, true, &b);
}

static enum MHD_Result send_profile(struct MHD_Connection *c, const char *name,
                                    pprof_profile *p)
{
    lw_buf b;
    lw_buf_init(&b, LW_MAX_RESPONSE_BYTES);
    int rc = pprof_encode(p, true, &b);
    pprof_free(p);
    if (rc != 0) {
        lw_buf_cleanup(&b);
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot encode profile: %s",
                           strerror(-rc));
    }
    char disp[128];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", name);
    return send_buf(c, MHD_HTTP_OK, "application/octet-stream", disp, false, &b);
}

/* ---- profiles ------------------------------------------------------------------ */

typedef int (*collect_fn)(pprof_profile **out);

static int collect_heap(pprof_profile **out)
{
    return lw__prof_heap(false, out);
}

static int collect_allocs(pprof_profile **out)
{
    return lw__prof_heap(true, out);
}

static int empty_contention(pprof_profile **out)
{
    pprof_profile *p = pprof_new();
    if (!p)
        return -ENOMEM;
    if (pprof_add_sample_type(p, "contentions", "count") != 0 ||
        pprof_add_sample_type(p, "delay", "nanoseconds") != 0 ||
        pprof_set_period(p, "contentions", "count", 1) != 0) {
        pprof_free(p);
        return -ENOMEM;
    }
    p->time_nanos = lw__now_ns();
    *out = p;
    return 0;
}

typedef struct profile_def {
    const char *name;
    collect_fn collect;
    const char *desc;
} profile_def;

static const profile_def profiles[] = {
    {"allocs", collect_allocs, "A sampling of all past memory allocations"},
    {"block", empty_contention,
     "Stack traces that led to blocking on synchronization primitives (not collected for C "
     "services: always empty)"},
    {"goroutine", lw__prof_goroutine,
     "Stack traces of all current threads (a C service's goroutines), with state and wait "
     "labels"},
    {"heap", collect_heap,
     "A sampling of memory allocations of live objects. You can specify the gc GET parameter "
     "(ignored: C has no GC)."},
    {"mutex", empty_contention,
     "Stack traces of holders of contended mutexes (not collected for C services: always empty)"},
    {"threadcreate", lw__prof_threadcreate, "Stack traces that led to the creation of new threads"},
};

static const profile_def *find_profile(const char *name)
{
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        if (strcmp(profiles[i].name, name) == 0)
            return &profiles[i];
    return NULL;
}

static int text_for(const char *name, int debug, lw_buf *out)
{
    if (strcmp(name, "heap") == 0 || strcmp(name, "allocs") == 0)
        return lw__prof_heap_text(out);
    if (strcmp(name, "goroutine") == 0)
        return lw__prof_goroutine_text(debug, out);
    if (strcmp(name, "threadcreate") == 0)
        return lw__prof_threadcreate_text(out);
    return lw_buf_puts(out, "--- contention:\ncycles/second=1000000000\n");
}

static bool parse_int(const char *s, long long *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || !end || *end != '\0')
        return false;
    *out = v;
    return true;
}

static enum MHD_Result serve_delta(struct MHD_Connection *c, const profile_def *d,
                                   const char *sec_str)
{
    long long sec = 0;
    if (!parse_int(sec_str, &sec) || sec <= 0)
        return serve_error(c, MHD_HTTP_BAD_REQUEST,
                           "invalid value for \"seconds\" - must be a positive integer");
    /* Every profile served here supports deltas (as Go's profileSupportsDelta). */
    const char *dbg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "debug");
    long long debug = 0;
    if (dbg && parse_int(dbg, &debug) && debug != 0)
        return serve_error(c, MHD_HTTP_BAD_REQUEST, "seconds and debug params are incompatible");
    if (sec > 3600)
        return serve_error(c, MHD_HTTP_BAD_REQUEST, "profile duration exceeds server's WriteTimeout");
    pprof_profile *p0 = NULL, *p1 = NULL, *merged = NULL;
    int rc = d->collect(&p0);
    if (rc != 0)
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to collect profile: %s",
                           strerror(-rc));
    struct timespec ts = {(time_t)sec, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    rc = d->collect(&p1);
    if (rc != 0) {
        pprof_free(p0);
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to collect profile: %s",
                           strerror(-rc));
    }
    int64_t t1 = p1->time_nanos, dur = p1->time_nanos - p0->time_nanos;
    pprof_scale(p0, -1);
    const pprof_profile *both[2] = {p0, p1};
    char err[PPROF_ERR_LEN];
    rc = pprof_merge(both, 2, &merged, err, sizeof err);
    pprof_free(p0);
    pprof_free(p1);
    if (rc != 0)
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to compute delta: %s", err);
    merged->time_nanos = t1;
    merged->duration_nanos = dur;
    char name[64];
    snprintf(name, sizeof name, "%s-delta", d->name);
    return send_profile(c, name, merged);
}

static enum MHD_Result serve_named(struct MHD_Connection *c, const char *name)
{
    const profile_def *d = find_profile(name);
    if (!d)
        return serve_error(c, MHD_HTTP_NOT_FOUND, "Unknown profile");
    const char *sec = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seconds");
    if (sec && *sec)
        return serve_delta(c, d, sec);
    long long debug = 0;
    const char *dbg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "debug");
    if (dbg && !parse_int(dbg, &debug))
        debug = 0; /* like Go: strconv.Atoi errors are ignored */
    int rc;
    if (debug != 0) {
        lw_buf b;
        lw_buf_init(&b, LW_MAX_RESPONSE_BYTES);
        rc = text_for(name, (int)debug, &b);
        if (rc != 0) {
            lw_buf_cleanup(&b);
            return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to write profile: %s",
                               strerror(-rc));
        }
        return send_buf(c, MHD_HTTP_OK, "text/plain; charset=utf-8", NULL, false, &b);
    }
    pprof_profile *p = NULL;
    rc = d->collect(&p);
    if (rc != 0)
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "failed to collect profile: %s",
                           strerror(-rc));
    return send_profile(c, name, p);
}

static enum MHD_Result serve_cpu(struct MHD_Connection *c)
{
    long long sec = 0;
    const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "seconds");
    if (!parse_int(s, &sec) || sec <= 0)
        sec = 30;
    if (sec > 3600)
        return serve_error(c, MHD_HTTP_BAD_REQUEST, "profile duration exceeds server's WriteTimeout");
    if (!cpu_on)
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                           "Could not enable CPU profiling: cpu profiling disabled");
    char err[256] = "";
    pprof_profile *p = NULL;
    int rc = lw__cpu_profile((int)sec, &p, err, sizeof err);
    if (rc != 0)
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "Could not enable CPU profiling: %s",
                           err);
    return send_profile(c, "profile", p);
}

static enum MHD_Result serve_cmdline(struct MHD_Connection *c)
{
    lw_buf b;
    lw_buf_init(&b, (size_t)1 << 20);
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char chunk[4096];
        ssize_t n;
        while ((n = read(fd, chunk, sizeof chunk)) > 0)
            if (lw_buf_append(&b, chunk, (size_t)n) != 0)
                break;
        close(fd);
    }
    if (b.len > 0 && b.data[b.len - 1] == '\0')
        b.len--; /* Go joins os.Args with NUL: no trailing NUL */
    return send_buf(c, MHD_HTTP_OK, "text/plain; charset=utf-8", NULL, false, &b);
}

static int symbol_words(lw_buf *out, const char *in, size_t len)
{
    int rc = 0;
    lw__sym_lock();
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t j = i;
        while (j < len && in[j] != '+' && in[j] != ' ' && in[j] != '&')
            j++;
        char word[64];
        size_t wl = j - i < sizeof word - 1 ? j - i : sizeof word - 1;
        memcpy(word, in + i, wl);
        word[wl] = '\0';
        char *end = NULL;
        unsigned long long pc = strtoull(word, &end, 0);
        if (pc != 0 && end && *end == '\0') {
            lw_sym s;
            lw__sym_lookup((uintptr_t)pc, false, &s);
            if (s.function)
                rc = lw_buf_printf(out, "%#llx %s\n", pc, s.function);
        }
        i = j + 1;
    }
    lw__sym_unlock();
    return rc;
}

static enum MHD_Result collect_keys(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    lw_buf *q = cls;
    int rc = lw_buf_printf(q, "%s%s%s+", key, value ? "=" : "", value ? value : "");
    return rc == 0 ? MHD_YES : MHD_NO;
}

static enum MHD_Result serve_symbol(struct MHD_Connection *c, bool post, conn_state *st)
{
    lw_buf b, q;
    lw_buf_init(&b, LW_MAX_RESPONSE_BYTES);
    lw_buf_init(&q, MAX_UPLOAD_BYTES);
    int rc = lw_buf_puts(&b, "num_symbols: 1\n");
    if (post) {
        if (rc == 0 && st && st->body.len)
            rc = symbol_words(&b, st->body.data, st->body.len);
    } else {
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_keys, &q);
        if (rc == 0 && q.len)
            rc = symbol_words(&b, q.data, q.len);
    }
    lw_buf_cleanup(&q);
    if (rc != 0) {
        lw_buf_cleanup(&b);
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "symbol: %s", strerror(-rc));
    }
    return send_buf(c, MHD_HTTP_OK, "text/plain; charset=utf-8", NULL, false, &b);
}

static size_t profile_count(const char *name)
{
    if (strcmp(name, "goroutine") == 0) {
        pid_t *t = NULL;
        size_t n = 0;
        if (lw__list_tids(&t, &n) != 0)
            return 0;
        lw__real_free(t);
        return n;
    }
    if (strcmp(name, "heap") == 0 || strcmp(name, "allocs") == 0) {
        lw_heap_record *r = NULL;
        size_t n = 0, k = 0;
        if (lw__heap_snapshot(&r, &n) != 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            k += r[i].allocs > 0;
        lw__real_free(r);
        return k;
    }
    if (strcmp(name, "threadcreate") == 0) {
        lw_stack *s = NULL;
        size_t n = 0;
        if (lw__threads_created(&s, &n) != 0)
            return 0;
        lw__real_free(s);
        return n;
    }
    return 0;
}

static enum MHD_Result serve_index(struct MHD_Connection *c)
{
    lw_buf b;
    lw_buf_init(&b, (size_t)1 << 20);
    int rc = lw_buf_puts(&b, "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n"
                             ".profile-name{\n\tdisplay:inline-block;\n\twidth:6rem;\n}\n"
                             "</style>\n</head>\n<body>\n/debug/pprof/<br>\n<br>\n"
                             "Types of profiles available:\n<table>\n"
                             "<thead><td>Count</td><td>Profile</td></thead>\n");
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0] && rc == 0; i++)
        rc = lw_buf_printf(&b, "<tr><td>%zu</td><td><a href='%s?debug=1'>%s</a></td></tr>\n",
                           profile_count(profiles[i].name), profiles[i].name, profiles[i].name);
    static const char *const extra[][2] = {
        {"cmdline", "The command line invocation of the current program"},
        {"profile",
         "CPU profile. You can specify the duration in the seconds GET parameter. After you get "
         "the profile file, use the go tool pprof command to investigate the profile."},
        {"symbol", "Maps program counters to function names (GET: count, POST: addresses)."},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] && rc == 0; i++)
        rc = lw_buf_printf(&b, "<tr><td></td><td><a href='%s'>%s</a></td></tr>\n", extra[i][0],
                           extra[i][0]);
    if (rc == 0)
        rc = lw_buf_puts(&b, "</table>\n<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n"
                             "<br>\n<p>\nProfile Descriptions:\n<ul>\n");
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0] && rc == 0; i++)
        rc = lw_buf_printf(&b, "<li><div class=profile-name>%s: </div> %s</li>\n",
                           profiles[i].name, profiles[i].desc);
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] && rc == 0; i++)
        rc = lw_buf_printf(&b, "<li><div class=profile-name>%s: </div> %s</li>\n", extra[i][0],
                           extra[i][1]);
    if (rc == 0)
        rc = lw_buf_puts(&b, "</ul>\n</p>\n</body>\n</html>\n");
    if (rc != 0) {
        lw_buf_cleanup(&b);
        return serve_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "index: %s", strerror(-rc));
    }
    return send_buf(c, MHD_HTTP_OK, "text/html; charset=utf-8", NULL, false, &b);
}

/* ---- authentication ---------------------------------------------------------- */

/* Whether the request carries "Authorization: Bearer <token_>". The scheme
 * is case-insensitive; the token comparison takes the same time wherever
 * the first difference is (it depends only on the configured length). */
static bool authorized(struct MHD_Connection *c)
{
    if (token_len == 0)
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    const char *got = h + 7;
    while (*got == ' ')
        got++;
    size_t n = strlen(got);
    unsigned diff = n != token_len;
    for (size_t i = 0; i < token_len; i++)
        diff |= (unsigned char)token_[i] ^ (unsigned char)(i < n ? got[i] : 0);
    return diff == 0;
}

static enum MHD_Result serve_unauthorized(struct MHD_Connection *c)
{
    static const char msg[] = "Unauthorized\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            "Bearer realm=\"leakwatch-agent\"");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
    MHD_destroy_response(r);
    return ret;
}

/* Copy a bearer token into token_ (NULL or "" clears it). 0 or -EINVAL. */
static int set_token(const char *token, char *err, size_t err_len)
{
    size_t n = token ? strlen(token) : 0;
    if (n > LW_AGENT_MAX_TOKEN_BYTES) {
        snprintf(err, err_len, "bearer token longer than %d bytes", LW_AGENT_MAX_TOKEN_BYTES);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)token[i];
        if (ch <= ' ' || ch >= 0x7f) {
            snprintf(err, err_len, "bearer token must be printable ASCII without spaces");
            return -EINVAL;
        }
    }
    if (n)
        memcpy(token_, token, n);
    token_[n] = '\0';
    token_len = n;
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)version;
    bool post = strcmp(method, "POST") == 0;
    if (*con_cls == NULL) {
        conn_state *st = lw__real_calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        lw_buf_init(&st->body, MAX_UPLOAD_BYTES);
        st->denied = !authorized(c);
        *con_cls = st;
        return MHD_YES;
    }
    conn_state *st = *con_cls;
    if (st->denied) {
        if (*upload_data_size != 0) {
            *upload_data_size = 0;
            return MHD_YES;
        }
        return serve_unauthorized(c);
    }
    if (*upload_data_size != 0) {
        int rc = lw_buf_append(&st->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    static const char prefix[] = "/debug/pprof/";
    if (strncmp(url, prefix, sizeof prefix - 1) != 0) {
        if (strcmp(url, "/debug/pprof") == 0)
            return serve_index(c);
        return serve_error(c, MHD_HTTP_NOT_FOUND, "404 page not found");
    }
    const char *name = url + sizeof prefix - 1;
    if (*name == '\0')
        return serve_index(c);
    if (strcmp(name, "cmdline") == 0)
        return serve_cmdline(c);
    if (strcmp(name, "profile") == 0)
        return serve_cpu(c);
    if (strcmp(name, "symbol") == 0)
        return serve_symbol(c, post, st);
    if (strcmp(name, "trace") == 0)
        return serve_error(c, MHD_HTTP_NOT_IMPLEMENTED,
                           "Could not enable tracing: not supported by the leakwatch agent");
    return serve_named(c, name);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    conn_state *st = *con_cls;
    if (st) {
        lw_buf_cleanup(&st->body);
        lw__real_free(st);
        *con_cls = NULL;
    }
}

/* ---- lifecycle -------------------------------------------------------------------- */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -EINVAL;
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof host)
        return -EINVAL;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    long long port;
    if (!parse_int(colon + 1, &port) || port < 0 || port > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[') {
        size_t l = strlen(host);
        if (l < 2 || host[l - 1] != ']')
            return -EINVAL;
        host[l - 1] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return -EINVAL;
        *len = sizeof *s6;
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (host[0] == '\0')
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return -EINVAL;
    *len = sizeof *s4;
    return 0;
}

int lw__http_start(const char *addr, bool cpu_enabled, const char *token, char *err,
                   size_t err_len)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int rc = 0;
    pthread_mutex_lock(&http_lock);
    if (daemon_) {
        snprintf(err, err_len, "agent already started on port %d", bound_port);
        rc = -EALREADY;
        goto out;
    }
    if (parse_addr(addr, &ss, &sl) != 0) {
        snprintf(err, err_len, "invalid listen address \"%s\" (want host:port)", addr);
        rc = -EINVAL;
        goto out;
    }
    rc = set_token(token, err, err_len);
    if (rc != 0)
        goto out;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, err_len, "socket: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
        rc = -errno;
        snprintf(err, err_len, "listen on %s: %s", addr, strerror(errno));
        close(fd);
        goto out;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &gl);
    int port = got.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&got)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&got)->sin_port);
    /* The agent's threads must never take the host's process-directed
     * signals (SIGTERM sent to a service that sigwait()s for it would kill
     * it): they block everything but the capture and profiling signals and
     * synchronous faults. Threads inherit the mask of their creator. */
    sigset_t all, saved_mask;
    sigfillset(&all);
    int keep[] = {SIGURG, SIGPROF, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        sigdelset(&all, keep[i]);
    pthread_sigmask(SIG_SETMASK, &all, &saved_mask);
    lw__tls_spawn_internal = 1; /* MHD's threads are agent threads */
    /* poll(2), not select(2): a busy host has more than FD_SETSIZE (1024)
     * descriptors open, and libmicrohttpd resets every connection whose
     * descriptor select cannot watch. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
        on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)LW_AGENT_CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)LW_AGENT_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)LW_AGENT_CONNECTION_MEMORY_BYTES,
        MHD_OPTION_END);
    lw__tls_spawn_internal = 0;
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    if (!d) {
        rc = -EIO;
        snprintf(err, err_len, "libmicrohttpd failed to start on %s", addr);
        close(fd);
        goto out;
    }
    daemon_ = d;
    listen_fd = fd;
    bound_port = port;
    cpu_on = cpu_enabled;
out:
    pthread_mutex_unlock(&http_lock);
    return rc;
}

void lw__http_stop(void)
{
    pthread_mutex_lock(&http_lock);
    if (daemon_) {
        MHD_stop_daemon(daemon_);
        close(listen_fd);
    }
    daemon_ = NULL;
    listen_fd = -1;
    bound_port = 0;
    pthread_mutex_unlock(&http_lock);
}

int lw__http_port(void)
{
    return bound_port;
}

void lw__http_forget(void)
{
    /* The child of fork() has no server threads; the socket is the parent's. */
    if (listen_fd >= 0)
        close(listen_fd);
    if (daemon_)
        parents_daemon_ = daemon_;
    daemon_ = NULL;
    listen_fd = -1;
    bound_port = 0;
    pthread_mutex_init(&http_lock, NULL);
}
