/* agent.c — the agent's public API, its constructor (LD_PRELOAD mode) and
 * logging.
 *
 * The constructor runs whenever the library is loaded: it resolves the real
 * allocator, reads LEAKWATCH_HEAP_RATE and registers the fork handlers. It
 * starts the HTTP server by itself only when the library was preloaded
 * (LD_PRELOAD names libleakwatch-agent), configured by LEAKWATCH_AGENT_ADDR
 * and LEAKWATCH_AGENT_TOKEN / LEAKWATCH_AGENT_TOKEN_FILE;
 * a linked program calls lw_agent_start() instead. Nothing here exits the
 * host: failures are reported on stderr (unless LEAKWATCH_QUIET=1) or
 * returned.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_internal.h"
#include "leakwatch/agent.h"

static int quiet = -1;

void lw__log(const char *fmt, ...)
{
    if (quiet < 0) {
        const char *q = getenv("LEAKWATCH_QUIET");
        quiet = q && strcmp(q, "1") == 0;
    }
    if (quiet)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w; /* nothing useful to do when stderr is gone */
}

void lw_agent_options_init(lw_agent_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->listen_addr = LW_AGENT_DEFAULT_ADDR;
    opts->heap_rate_bytes = LW_AGENT_DEFAULT_HEAP_RATE_BYTES;
    opts->cpu_profiler_enabled = true;
}

int lw_agent_start(const lw_agent_options *opts, char *err, size_t err_len)
{
    lw_agent_options def;
    char scratch[256];
    if (!err || err_len == 0) {
        err = scratch;
        err_len = sizeof scratch;
    }
    err[0] = '\0';
    if (!opts) {
        lw_agent_options_init(&def);
        opts = &def;
    }
    if (opts->heap_rate_bytes < 0) {
        snprintf(err, err_len, "heap_rate_bytes must be >= 0, got %lld",
                 (long long)opts->heap_rate_bytes);
        return -EINVAL;
    }
    lw__heap_set_rate(opts->heap_rate_bytes);
    const char *addr = opts->listen_addr && *opts->listen_addr ? opts->listen_addr
                                                               : LW_AGENT_DEFAULT_ADDR;
    if (strcmp(addr, "off") == 0)
        return 0;
    lw__tls_busy++;
    int rc = lw__http_start(addr, opts->cpu_profiler_enabled, opts->bearer_token, err, err_len);
    lw__tls_busy--;
    return rc;
}

void lw_agent_stop(void)
{
    lw__tls_busy++;
    lw__http_stop();
    lw__tls_busy--;
}

int lw_agent_port(void)
{
    return lw__http_port();
}

void lw_agent_set_heap_rate(int64_t rate_bytes)
{
    lw__heap_set_rate(rate_bytes);
}

static void child_after_fork(void)
{
    lw__http_forget();
    lw__cpu_after_fork_child();
    lw__sym_after_fork_child();
}

/* Read the token file into buf (trailing newlines and spaces trimmed), with
 * read(2) only: the constructor must not allocate. 0 or -errno (-E2BIG when
 * the token does not fit). */
static int read_token_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    int rc = 0;
    for (;;) {
        if (n == len) {
            rc = -E2BIG;
            break;
        }
        ssize_t r = read(fd, buf + n, len - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc != 0)
        return rc;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
                     buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    return 0;
}

static bool preloaded(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "libleakwatch-agent") != NULL;
}

__attribute__((constructor)) static void agent_init(void)
{
    lw__heap_init();
    lw__threads_init();
    if (pthread_atfork(NULL, NULL, child_after_fork) != 0)
        lw__log("leakwatch-agent: pthread_atfork failed\n");
    if (!preloaded())
        return;
    lw_agent_options o;
    lw_agent_options_init(&o);
    const char *addr = getenv("LEAKWATCH_AGENT_ADDR");
    if (addr && *addr)
        o.listen_addr = addr;
    o.heap_rate_bytes = lw__heap_rate(); /* LEAKWATCH_HEAP_RATE, read by lw__heap_init */
    static char token[LW_AGENT_MAX_TOKEN_BYTES + 2];
    const char *tok = getenv("LEAKWATCH_AGENT_TOKEN");
    const char *tok_file = getenv("LEAKWATCH_AGENT_TOKEN_FILE");
    if (tok && *tok) {
        o.bearer_token = tok;
    } else if (tok_file && *tok_file) {
        int trc = read_token_file(tok_file, token, sizeof token - 1);
        if (trc != 0) {
            /* Fail closed: no server rather than an open one. */
            lw__log("leakwatch-agent: not serving /debug/pprof: LEAKWATCH_AGENT_TOKEN_FILE %s: %s\n",
                    tok_file, trc == -E2BIG ? "token too long" : strerror(-trc));
            o.listen_addr = "off";
        } else if (token[0] == '\0') {
            lw__log("leakwatch-agent: not serving /debug/pprof: LEAKWATCH_AGENT_TOKEN_FILE %s "
                    "is empty\n", tok_file);
            o.listen_addr = "off";
        }
        o.bearer_token = token;
    }
    const char *cpu = getenv("LEAKWATCH_CPU_PROFILE");
    if (cpu && strcmp(cpu, "0") == 0)
        o.cpu_profiler_enabled = false;
    char err[256];
    int rc = lw_agent_start(&o, err, sizeof err);
    if (rc != 0)
        lw__log("leakwatch-agent: not serving /debug/pprof: %s\n", err);
}
