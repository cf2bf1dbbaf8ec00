/* test_agent.c — unit tests of the leakwatch agent linked into a program:
 * the interposed allocator's semantics, pthread_create wrapping (return
 * values, pthread_exit, cancellation), fork, the start/stop API and a few
 * HTTP round trips (heap sampling at rate 1 checked through Go's heap text).
 * Built without sanitizers (the agent interposes malloc); run under valgrind
 * by unit.test_agent_valgrind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "leakwatch/agent.h"

void *reallocarray(void *ptr, size_t nmemb, size_t size);

/* ---- a tiny HTTP client ---------------------------------------------------- */

/* GET or POST path on 127.0.0.1:port; returns the whole response (headers and
 * body, malloc'd) or NULL. */
static char *http_req(int port, const char *method, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    ssize_t r;
    while (out && (r = read(fd, out + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap) {
            char *nv = realloc(out, cap * 2);
            if (!nv) {
                free(out);
                out = NULL;
                break;
            }
            out = nv;
            cap *= 2;
        }
    }
    if (out)
        out[len] = '\0';
    close(fd);
    return out;
}

static int start_any_port(int64_t rate)
{
    lw_agent_options o;
    lw_agent_options_init(&o);
    o.listen_addr = "127.0.0.1:0";
    o.heap_rate_bytes = rate;
    char err[256];
    int rc = lw_agent_start(&o, err, sizeof err);
    if (rc != 0)
        print_message("lw_agent_start: %s\n", err);
    assert_int_equal(rc, 0);
    int port = lw_agent_port();
    assert_true(port > 0);
    return port;
}

/* ---- allocator ------------------------------------------------------------ */

static void test_alloc_family(void **state)
{
    (void)state;
    unsigned char *z = calloc(1000, 7);
    assert_non_null(z);
    for (size_t i = 0; i < 7000; i++)
        assert_int_equal(z[i], 0);
    free(z);

    char *p = malloc(10);
    assert_non_null(p);
    memcpy(p, "0123456789", 10);
    p = realloc(p, 100000);
    assert_non_null(p);
    assert_memory_equal(p, "0123456789", 10);
    assert_true(malloc_usable_size(p) >= 100000);
    p = realloc(p, 5);
    assert_memory_equal(p, "01234", 5);
    free(p);

    void *a = NULL;
    assert_int_equal(posix_memalign(&a, 4096, 100), 0);
    assert_int_equal((uintptr_t)a % 4096, 0);
    free(a);
    assert_int_equal(posix_memalign(&a, 3, 100), EINVAL);
    a = aligned_alloc(64, 640);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 64, 0);
    free(a);
    a = memalign(256, 10);
    assert_int_equal((uintptr_t)a % 256, 0);
    free(a);
    a = valloc(10);
    assert_int_equal((uintptr_t)a % 4096, 0);
    free(a);
    if (!getenv("LW_UNDER_VALGRIND")) { /* valgrind aborts on pvalloc */
        a = pvalloc(10);
        assert_int_equal((uintptr_t)a % 4096, 0);
        free(a);
    }

    errno = 0;
    volatile size_t huge = SIZE_MAX / 2; /* volatile: hide the overflow from the compiler */
    assert_null(reallocarray(NULL, huge, 4));
    assert_int_equal(errno, ENOMEM);
    a = reallocarray(NULL, 10, 10);
    assert_non_null(a);
    free(a);
    a = realloc(NULL, 33);
    assert_non_null(a);
    free(a);
    free(NULL);
    char *s = strdup("strdup goes through malloc");
    assert_string_equal(s, "strdup goes through malloc");
    free(s);
}

static void test_rates(void **state)
{
    (void)state;
    int64_t rates[] = {1, 0, 4096, LW_AGENT_DEFAULT_HEAP_RATE_BYTES};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        lw_agent_set_heap_rate(rates[r]);
        void *v[1000];
        for (int i = 0; i < 1000; i++) {
            v[i] = malloc((size_t)(i * 13 % 5000) + 1);
            assert_non_null(v[i]);
        }
        for (int i = 0; i < 1000; i++)
            free(v[i]);
    }
}

/* ---- threads ------------------------------------------------------------------ */

static void *ret_arg(void *arg)
{
    return (char *)arg + 1;
}

static void *exit_arg(void *arg)
{
    pthread_exit((char *)arg + 2);
    return NULL;
}

static void *cancel_me(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char base[4];
    pthread_t t;
    void *ret = NULL;
    assert_int_equal(pthread_create(&t, NULL, ret_arg, base), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_ptr_equal(ret, base + 1);
    assert_int_equal(pthread_create(&t, NULL, exit_arg, base), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_ptr_equal(ret, base + 2);
    assert_int_equal(pthread_create(&t, NULL, cancel_me, NULL), 0);
    assert_int_equal(pthread_cancel(t), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_ptr_equal(ret, PTHREAD_CANCELED);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(pthread_create(&t, NULL, ret_arg, base), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
    }
}

static void test_fork(void **state)
{
    (void)state;
    lw_agent_set_heap_rate(1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 10000; i++)
            free(malloc((size_t)i + 1));
        pthread_t t;
        char base[2];
        if (pthread_create(&t, NULL, ret_arg, base) != 0 || pthread_join(t, NULL) != 0)
            _exit(2);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    lw_agent_set_heap_rate(LW_AGENT_DEFAULT_HEAP_RATE_BYTES);
}

/* ---- API and HTTP ---------------------------------------------------------------- */

static void test_start_errors(void **state)
{
    (void)state;
    lw_agent_options o;
    lw_agent_options_init(&o);
    char err[256] = "";
    o.listen_addr = "no-port-here";
    assert_int_equal(lw_agent_start(&o, err, sizeof err), -EINVAL);
    print_message("bad address: %s\n", err);
    assert_non_null(strstr(err, "no-port-here"));
    o.listen_addr = "127.0.0.1:0";
    o.heap_rate_bytes = -5;
    assert_int_equal(lw_agent_start(&o, err, sizeof err), -EINVAL);
    o.heap_rate_bytes = LW_AGENT_DEFAULT_HEAP_RATE_BYTES;
    o.listen_addr = "off";
    assert_int_equal(lw_agent_start(&o, err, sizeof err), 0);
    assert_int_equal(lw_agent_port(), 0);

    int port = start_any_port(LW_AGENT_DEFAULT_HEAP_RATE_BYTES);
    o.listen_addr = "127.0.0.1:0";
    assert_int_equal(lw_agent_start(&o, err, sizeof err), -EALREADY);
    print_message("second start: %s\n", err);
    lw_agent_stop();
    assert_int_equal(lw_agent_port(), 0);
    lw_agent_stop(); /* harmless */

    /* The port is free again and can be bound by the agent itself. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    o.listen_addr = addr;
    assert_int_equal(lw_agent_start(&o, err, sizeof err), 0);
    lw_agent_stop();
}

static __attribute__((noinline)) void **unit_retain_blocks(int n, size_t size)
{
    void **v = malloc((size_t)n * sizeof(*v));
    for (int i = 0; v && i < n; i++)
        v[i] = malloc(size);
    return v;
}

static void test_http(void **state)
{
    (void)state;
    int port = start_any_port(1);
    void **kept = unit_retain_blocks(100, 1000);
    assert_non_null(kept);

    char *r = http_req(port, "GET", "/debug/pprof/heap?debug=1", NULL);
    assert_non_null(r);
    assert_non_null(strstr(r, "200 OK"));
    assert_non_null(strstr(r, "heap profile: "));
    assert_non_null(strstr(r, "@ heap/2\n"));
    /* Rate 1: exact counts, Go's "inuse: bytes [allocs: bytes]" record.
     * valgrind redirects malloc to its own allocator before our interposer
     * sees it, so nothing is sampled there. */
    if (!getenv("LW_UNDER_VALGRIND")) {
        const char *rec = strstr(r, "100: 100000 [100: 100000] @");
        if (!rec)
            print_message("%s\n", r);
        assert_non_null(rec);
        assert_non_null(strstr(rec, "unit_retain_blocks"));
    }
    free(r);

    r = http_req(port, "GET", "/debug/pprof/cmdline", NULL);
    assert_non_null(r);
    assert_non_null(strstr(r, "test_agent"));
    free(r);

    r = http_req(port, "GET", "/debug/pprof/heap?seconds=abc", NULL);
    assert_non_null(r);
    assert_non_null(strstr(r, "400 Bad Request"));
    assert_non_null(strstr(r, "X-Go-Pprof: 1"));
    assert_non_null(strstr(r, "invalid value for \"seconds\" - must be a positive integer"));
    free(r);

    r = http_req(port, "GET", "/debug/pprof/nonesuch", NULL);
    assert_non_null(r);
    assert_non_null(strstr(r, "404 Not Found"));
    assert_non_null(strstr(r, "Unknown profile"));
    free(r);

    char body[64];
    snprintf(body, sizeof body, "%#lx", (unsigned long)(uintptr_t)&unit_retain_blocks);
    r = http_req(port, "POST", "/debug/pprof/symbol", body);
    assert_non_null(r);
    assert_non_null(strstr(r, "num_symbols: 1"));
    assert_non_null(strstr(r, "unit_retain_blocks"));
    free(r);

    lw_agent_stop();
    for (int i = 0; i < 100; i++)
        free(kept[i]);
    free(kept);
    lw_agent_set_heap_rate(LW_AGENT_DEFAULT_HEAP_RATE_BYTES);
}

/* ---- heap buckets stay bounded ---------------------------------------------- */

#define MANY_SIZES 16384

/* One call site allocating every size from 1 to MANY_SIZES bytes; the blocks
 * of 1000..1099 bytes are kept in kept[0..99], the others freed at once. */
static __attribute__((noinline)) void unit_many_sizes(void **kept)
{
    for (size_t size = 1; size <= MANY_SIZES; size++) {
        void *p = malloc(size);
        assert_non_null(p);
        if (size >= 1000 && size < 1100)
            kept[size - 1000] = p;
        else
            free(p);
    }
}

/* A call site that allocates many distinct sizes must not add a heap bucket
 * per size for good: buckets are keyed by size class (at most 8 per power of
 * two), so a long-running service's profile (and the agent's memory) stays
 * bounded. Byte totals stay exact. Rate 1: every allocation is sampled. */
static void test_heap_buckets_bounded(void **state)
{
    (void)state;
    int port = start_any_port(1);
    void **kept = calloc(100, sizeof(void *));
    assert_non_null(kept);
    unit_many_sizes(kept);
    lw_agent_set_heap_rate(LW_AGENT_DEFAULT_HEAP_RATE_BYTES);

    char *r = http_req(port, "GET", "/debug/pprof/heap?debug=1", NULL);
    assert_non_null(r);
    assert_non_null(strstr(r, "200 OK"));
    /* Records (Go's heap text) follow the "heap profile:" line, each a
     * "live: bytes [allocs: bytes] @ pcs" line and its frames, then a blank
     * line. */
    unsigned long long recs = 0, t[4] = {0, 0, 0, 0};
    const char *rec = strstr(r, "heap profile: ");
    assert_non_null(rec);
    rec = strchr(rec, '\n');
    while (rec && *rec) {
        rec++;
        const char *end = strstr(rec, "\n\n");
        size_t len = end ? (size_t)(end - rec) : strlen(rec);
        unsigned long long v[4];
        if (memmem(rec, len, "unit_many_sizes", strlen("unit_many_sizes")) &&
            sscanf(rec, "%llu: %llu [%llu: %llu] @", &v[0], &v[1], &v[2], &v[3]) == 4) {
            recs++;
            for (int i = 0; i < 4; i++)
                t[i] += v[i];
        }
        rec = end ? end + 1 : NULL;
    }
    free(r);
    unsigned long long want_bytes = (unsigned long long)MANY_SIZES * (MANY_SIZES + 1) / 2;
    print_message("unit_many_sizes: %llu buckets for %d sizes (bound 64); live %llu: %llu "
                  "(want 100: 104950), allocs %llu: %llu (want %d: %llu)\n",
                  recs, MANY_SIZES, t[0], t[1], t[2], t[3], MANY_SIZES, want_bytes);
    if (!getenv("LW_UNDER_VALGRIND")) { /* valgrind's malloc is not sampled */
        /* 1..128 bytes: 8 classes; 129..16384: 7 powers of two x 8. */
        assert_true(recs >= 1 && recs <= 64);
        assert_int_equal(t[0], 100);
        assert_int_equal(t[1], 104950); /* 1000 + ... + 1099: exact, not rounded */
        assert_int_equal(t[2], MANY_SIZES);
        assert_int_equal(t[3], want_bytes);
    }
    lw_agent_stop();
    for (int i = 0; i < 100; i++)
        free(kept[i]);
    free(kept);
}

static void *sleeper(void *arg)
{
    struct timespec ts = {1, 0};
    *(int *)arg = nanosleep(&ts, NULL) == 0 ? 0 : errno;
    return NULL;
}

/* Looking at threads must not change what they do: nanosleep is never
 * restarted after a signal handler, so a sleeping thread is not signalled
 * (its stack is scanned instead) and sleeps on undisturbed. */
static void test_capture_does_not_interrupt_sleep(void **state)
{
    (void)state;
    int port = start_any_port(LW_AGENT_DEFAULT_HEAP_RATE_BYTES);
    int result = -1;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sleeper, &result), 0);
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    char *r = http_req(port, "GET", "/debug/pprof/goroutine?debug=1", NULL);
    assert_non_null(r);
    const char *grp = strstr(r, "\"stack\":\"scanned\"");
    if (!grp)
        print_message("%s\n", r);
    assert_non_null(grp);
    if (!getenv("LW_UNDER_VALGRIND")) /* valgrind's sp/pc are its own */
        assert_non_null(strstr(r, "sleeper+"));
    free(r);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(result, 0); /* not EINTR */
    lw_agent_stop();
}

/* A pre-fork server: the parent serves, the child forgets the parent's
 * server and can start its own, whose profiles work. */
static void test_fork_serving(void **state)
{
    (void)state;
    int port = start_any_port(LW_AGENT_DEFAULT_HEAP_RATE_BYTES);
    char *r = http_req(port, "GET", "/debug/pprof/goroutine?debug=1", NULL);
    assert_non_null(r);
    free(r);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (lw_agent_port() != 0)
            _exit(2);
        lw_agent_options o;
        lw_agent_options_init(&o);
        o.listen_addr = "127.0.0.1:0";
        char err[256];
        if (lw_agent_start(&o, err, sizeof err) != 0)
            _exit(3);
        int cport = lw_agent_port();
        const char *paths[] = {"/debug/pprof/goroutine?debug=2", "/debug/pprof/heap?debug=1",
                               "/debug/pprof/threadcreate"};
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            char *cr = http_req(cport, "GET", paths[i], NULL);
            if (!cr || !strstr(cr, "200 OK"))
                _exit(4 + (int)i);
            free(cr);
        }
        lw_agent_stop();
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    r = http_req(port, "GET", "/debug/pprof/heap?debug=1", NULL);
    assert_non_null(r);
    assert_non_null(strstr(r, "200 OK"));
    free(r);
    lw_agent_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_family), cmocka_unit_test(test_rates),
        cmocka_unit_test(test_threads),      cmocka_unit_test(test_fork),
        cmocka_unit_test(test_start_errors), cmocka_unit_test(test_http),
        cmocka_unit_test(test_fork_serving),
        cmocka_unit_test(test_capture_does_not_interrupt_sleep),
        cmocka_unit_test(test_heap_buckets_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
