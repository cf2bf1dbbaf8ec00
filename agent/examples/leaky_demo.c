/* leaky_demo.c — a small C HTTP service that leaks on purpose, the target of
 * leakwatch's quick start. It links the agent (lw_agent_start) and
 * reproduces the field note's three Go leaks in C:
 *
 *   /leak/thread     a thread blocked forever reading a pipe nobody writes
 *                    (the blocked-goroutine leak): leak_thread_start creates
 *                    it, its body is leak_thread_blocked_on_pipe
 *   /leak/substring  keeps a 64-byte pointer into a fresh 1 MiB buffer, so the
 *                    whole buffer stays alive: leak_substring_retain
 *   /leak/timer      a periodic timerfd with a thread serving it, never
 *                    stopped: leak_timer_never_stopped
 *   /churn           allocates and frees and burns a little CPU, no leak
 *   /busy?seconds=S&threads=N   N threads spinning in busy_spin_work for S s
 *   /stats           JSON: what has been leaked so far (true retained bytes)
 *
 * Usage: leaky-demo [--listen=ADDR] [--pprof-addr=ADDR|off] [--heap-rate=BYTES]
 *                   [--leak-every=DURATION --leak=thread|substring|timer]
 * DURATION is like Go's: 500ms, 2s, 1m. SIGINT/SIGTERM stop it cleanly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "leakwatch/agent.h"

#define SUBSTRING_BUFFER_BYTES (1024 * 1024)
#define SUBSTRING_BYTES 64

static atomic_long n_threads_leaked;
static atomic_long n_substrings;
static atomic_long n_timers;
static atomic_long n_ticks;

/* Retained "substrings": each points 64 bytes into its own 1 MiB buffer. */
static pthread_mutex_t retained_lock = PTHREAD_MUTEX_INITIALIZER;
static char **retained;
static size_t n_retained, cap_retained;

/* The tid of the thread leak_thread_start() just created (0 until known). */
static _Atomic pid_t last_leaked_tid;

/* The leaked thread: blocked forever in read(2) on a pipe nobody writes. */
static void *leak_thread_blocked_on_pipe(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    atomic_store(&last_leaked_tid, (pid_t)syscall(SYS_gettid));
    for (;;) {
        ssize_t n = read(fd, &c, 1); /* nobody ever writes: blocks forever */
        if (n == 0)
            break;
    }
    return NULL;
}

/* Wait (at most 1 s) until the newest leaked thread sits in read(2), so a
 * thread profile taken right after the request shows it with its final
 * stack (a thread that has not reached read yet has a different one). */
static void wait_blocked_in_read(void)
{
    for (int i = 0; i < 1000; i++) {
        pid_t tid = atomic_exchange(&last_leaked_tid, 0);
        if (tid) {
            char path[64], buf[32];
            snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
            for (int j = 0; j < 1000 - i; j++) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
                if (fd >= 0)
                    close(fd);
                if (n > 0) {
                    buf[n] = '\0';
                    if (strncmp(buf, "0 ", 2) == 0) /* SYS_read, x86-64 */
                        return;
                }
                usleep(1000);
            }
            return;
        }
        usleep(1000);
    }
}

__attribute__((noinline)) static int leak_thread_start(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -errno;
    pthread_t t;
    int rc = pthread_create(&t, NULL, leak_thread_blocked_on_pipe, (void *)(intptr_t)fds[0]);
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        return -rc;
    }
    pthread_setname_np(t, "leak-pipe");
    pthread_detach(t);
    /* The write end stays open and unused: the reader never wakes up. */
    atomic_fetch_add(&n_threads_leaked, 1);
    wait_blocked_in_read();
    return 0;
}

__attribute__((noinline)) static int leak_substring_retain(void)
{
    char *buf = malloc(SUBSTRING_BUFFER_BYTES);
    if (!buf)
        return -ENOMEM;
    memset(buf, 'x', SUBSTRING_BUFFER_BYTES);
    pthread_mutex_lock(&retained_lock);
    if (n_retained == cap_retained) {
        size_t nc = cap_retained ? cap_retained * 2 : 64;
        char **nv = realloc(retained, nc * sizeof(*nv));
        if (!nv) {
            pthread_mutex_unlock(&retained_lock);
            free(buf);
            return -ENOMEM;
        }
        retained = nv;
        cap_retained = nc;
    }
    /* Keep only a 64-byte "substring" in the middle: the whole buffer stays. */
    retained[n_retained++] = buf + 4096;
    pthread_mutex_unlock(&retained_lock);
    atomic_fetch_add(&n_substrings, 1);
    return 0;
}

/* The leaked timer thread: serves a periodic timerfd nobody stops. */
static void *leak_timer_ticker_loop(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (;;) {
        uint64_t expirations;
        if (read(fd, &expirations, sizeof expirations) != (ssize_t)sizeof expirations)
            continue;
        atomic_fetch_add(&n_ticks, (long)expirations);
    }
    return NULL;
}

__attribute__((noinline)) static int leak_timer_never_stopped(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct itimerspec its = {{0, 100000000}, {0, 100000000}};
    if (timerfd_settime(fd, 0, &its, NULL) != 0) {
        close(fd);
        return -errno;
    }
    pthread_t t;
    int rc = pthread_create(&t, NULL, leak_timer_ticker_loop, (void *)(intptr_t)fd);
    if (rc != 0) {
        close(fd);
        return -rc;
    }
    pthread_setname_np(t, "leak-ticker");
    pthread_detach(t);
    atomic_fetch_add(&n_timers, 1);
    return 0;
}

static volatile uint64_t sink;

__attribute__((noinline)) static void churn_alloc_free(void)
{
    for (int i = 0; i < 1000; i++) {
        size_t n = 64 + (size_t)(i * 37 % 4096);
        char *p = malloc(n);
        if (!p)
            continue;
        memset(p, i, n);
        sink += (uint64_t)p[n / 2];
        free(p);
    }
    for (uint64_t i = 0; i < 2000000; i++)
        sink += i * i;
}

__attribute__((noinline)) static void busy_spin_work(double seconds)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t x = 1;
    for (;;) {
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        sink += x;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= seconds)
            break;
    }
}

static void *busy_thread(void *arg)
{
    busy_spin_work(*(double *)arg);
    return NULL;
}

static long arg_long(struct MHD_Connection *c, const char *key, long def)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
                             const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    if (*con_cls == NULL) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    char msg[256];
    int rc;
    if (strcmp(url, "/leak/thread") == 0) {
        rc = leak_thread_start();
    } else if (strcmp(url, "/leak/substring") == 0) {
        rc = leak_substring_retain();
    } else if (strcmp(url, "/leak/timer") == 0) {
        rc = leak_timer_never_stopped();
    } else if (strcmp(url, "/churn") == 0) {
        churn_alloc_free();
        rc = 0;
    } else if (strcmp(url, "/busy") == 0) {
        double sec = (double)arg_long(c, "seconds", 1);
        long n = arg_long(c, "threads", 1);
        if (n < 1 || n > 64 || sec <= 0 || sec > 600)
            return reply(c, 400, "text/plain", "want seconds in (0,600], threads in [1,64]\n");
        pthread_t t[64];
        for (long i = 0; i < n; i++)
            if (pthread_create(&t[i], NULL, busy_thread, &sec) != 0)
                n = i;
        for (long i = 0; i < n; i++)
            pthread_join(t[i], NULL);
        rc = 0;
    } else if (strcmp(url, "/stats") == 0) {
        long subs = atomic_load(&n_substrings);
        snprintf(msg, sizeof msg,
                 "{\"threads_leaked\":%ld,\"substrings\":%ld,\"substring_bytes\":%ld,"
                 "\"timers\":%ld,\"ticks\":%ld}\n",
                 atomic_load(&n_threads_leaked), subs, subs * (long)SUBSTRING_BUFFER_BYTES,
                 atomic_load(&n_timers), atomic_load(&n_ticks));
        return reply(c, 200, "application/json", msg);
    } else if (strcmp(url, "/") == 0 || strcmp(url, "/healthz") == 0) {
        return reply(c, 200, "text/plain",
                     "leaky-demo: /leak/thread /leak/substring /leak/timer /churn /busy /stats\n");
    } else {
        return reply(c, 404, "text/plain", "not found\n");
    }
    if (rc != 0) {
        snprintf(msg, sizeof msg, "error: %s\n", strerror(-rc));
        return reply(c, 500, "text/plain", msg);
    }
    snprintf(msg, sizeof msg, "ok threads=%ld substrings=%ld timers=%ld\n",
             atomic_load(&n_threads_leaked), atomic_load(&n_substrings), atomic_load(&n_timers));
    return reply(c, 200, "text/plain", msg);
}

/* Go-style duration: "250ms", "2s", "1m", "1.5s". Returns ns or -1. */
static int64_t parse_duration(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!end || end == s || v <= 0)
        return -1;
    if (strcmp(end, "ms") == 0)
        return (int64_t)(v * 1e6);
    if (strcmp(end, "s") == 0)
        return (int64_t)(v * 1e9);
    if (strcmp(end, "m") == 0)
        return (int64_t)(v * 60e9);
    if (strcmp(end, "us") == 0)
        return (int64_t)(v * 1e3);
    return -1;
}

typedef struct leaker_cfg {
    int64_t every_ns;
    int (*leak)(void);
} leaker_cfg;

static void *leaker_loop(void *arg)
{
    const leaker_cfg *cfg = arg;
    for (;;) {
        struct timespec ts = {(time_t)(cfg->every_ns / 1000000000),
                              (long)(cfg->every_ns % 1000000000)};
        nanosleep(&ts, NULL);
        if (cfg->leak() != 0)
            fprintf(stderr, "leaky-demo: leak failed\n");
    }
    return NULL;
}

static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    char host[64];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof host)
        return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (hl == 0)
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return -1;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: leaky-demo [--listen=ADDR] [--pprof-addr=ADDR|off] "
                    "[--heap-rate=BYTES] [--leak-every=DURATION --leak=thread|substring|timer]\n");
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:8080";
    lw_agent_options opts;
    lw_agent_options_init(&opts);
    static leaker_cfg cfg = {0, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--listen=", 9) == 0) {
            listen = a + 9;
        } else if (strncmp(a, "--pprof-addr=", 13) == 0) {
            opts.listen_addr = a + 13;
        } else if (strncmp(a, "--heap-rate=", 12) == 0) {
            opts.heap_rate_bytes = strtoll(a + 12, NULL, 10);
        } else if (strncmp(a, "--leak-every=", 13) == 0) {
            cfg.every_ns = parse_duration(a + 13);
            if (cfg.every_ns <= 0) {
                fprintf(stderr, "leaky-demo: bad duration %s\n", a + 13);
                return 2;
            }
        } else if (strncmp(a, "--leak=", 7) == 0) {
            const char *k = a + 7;
            cfg.leak = strcmp(k, "thread") == 0      ? leak_thread_start
                       : strcmp(k, "substring") == 0 ? leak_substring_retain
                       : strcmp(k, "timer") == 0     ? leak_timer_never_stopped
                                                     : NULL;
            if (!cfg.leak) {
                fprintf(stderr, "leaky-demo: unknown leak %s\n", k);
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (cfg.every_ns > 0 && !cfg.leak)
        cfg.leak = leak_substring_retain;

    char err[256];
    if (lw_agent_start(&opts, err, sizeof err) != 0) {
        fprintf(stderr, "leaky-demo: agent: %s\n", err);
        return 1;
    }
    struct sockaddr_in sa;
    if (parse_addr(listen, &sa) != 0) {
        fprintf(stderr, "leaky-demo: bad --listen address %s\n", listen);
        lw_agent_stop();
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by every thread */

    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                                            on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                                            MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "leaky-demo: cannot listen on %s\n", listen);
        lw_agent_stop();
        return 1;
    }
    if (cfg.every_ns > 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, leaker_loop, &cfg) == 0) {
            pthread_setname_np(t, "leaker");
            pthread_detach(t);
        }
    }
    fprintf(stderr, "leaky-demo: serving on %s, pprof on %s (port %d)\n", listen,
            opts.listen_addr, lw_agent_port());
    int sig = 0;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    lw_agent_stop();
    fprintf(stderr, "leaky-demo: stopped by signal %d\n", sig);
    return 0;
}
