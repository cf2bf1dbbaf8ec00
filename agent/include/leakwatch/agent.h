/* leakwatch/agent.h — the leakwatch agent: Go-compatible /debug/pprof endpoints
 * (heap, allocs, goroutine = threads, threadcreate, CPU profile, cmdline,
 * symbol) for C and C++ services.
 *
 * Two ways to use it:
 *
 *  1. Link libleakwatch-agent (.so or .a) and call lw_agent_start() once,
 *     early in main(); lw_agent_stop() stops the HTTP server.
 *
 *  2. Preload it into an unmodified program:
 *        LD_PRELOAD=/path/libleakwatch-agent.so ./service
 *     and configure it with environment variables:
 *        LEAKWATCH_AGENT_ADDR   listen address, default 127.0.0.1:6060;
 *                               "off" disables the HTTP server.
 *        LEAKWATCH_HEAP_RATE    mean bytes between heap samples, default
 *                               524288 (like Go); 0 disables heap sampling;
 *                               1 samples every allocation.
 *        LEAKWATCH_CPU_PROFILE  "0" refuses /debug/pprof/profile (default on).
 *        LEAKWATCH_AGENT_TOKEN  bearer token required on every request
 *                               (default none; see bearer_token below).
 *        LEAKWATCH_AGENT_TOKEN_FILE
 *                               file holding the token (trailing newline and
 *                               spaces trimmed); used when
 *                               LEAKWATCH_AGENT_TOKEN is unset. An unreadable
 *                               file or an invalid token starts no server.
 *        LEAKWATCH_QUIET        "1" suppresses the agent's stderr messages.
 *     LEAKWATCH_HEAP_RATE is also honoured in linked mode until
 *     lw_agent_start() sets a rate.
 *
 * Whenever the library is loaded, malloc, calloc, realloc, free,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc and pthread_create
 * are interposed (the real ones are found with dlsym(RTLD_NEXT)). The agent
 * never calls exit(), never takes ownership of the caller's memory, and
 * exports nothing but this API and the interposed functions.
 *
 * Signals: the CPU profiler uses SIGPROF (per-thread CPU-time timers); thread
 * stack capture for the goroutine profile uses SIGURG. Handlers are installed
 * with SA_RESTART on first use; a program that uses these signals itself
 * should not use those endpoints. Threads blocked in syscalls that a signal
 * would interrupt despite SA_RESTART (nanosleep, epoll_wait, poll, select,
 * sigtimedwait, ...) are not signalled: their stacks are recovered by
 * scanning (label stack=scanned), so looking never changes what they do.
 *
 * The HTTP server (libmicrohttpd, its own threads) binds loopback by default:
 * profiles reveal code and data layout, so do not expose it publicly. With a
 * bearer token, every request without "Authorization: Bearer <token>" gets
 * 401 with "WWW-Authenticate: Bearer" (the token is compared in constant
 * time). Request limits: LW_AGENT_MAX_CONNECTIONS concurrent connections
 * (more wait in the listen backlog), LW_AGENT_CONNECTION_TIMEOUT_S seconds of
 * inactivity per connection, request line plus headers within
 * LW_AGENT_CONNECTION_MEMORY_BYTES (a longer URL gets 414, longer headers
 * 431), POST bodies (symbol) up to 1 MiB.
 */
#ifndef LEAKWATCH_AGENT_H
#define LEAKWATCH_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LW_AGENT_API __attribute__((visibility("default")))

/* Default values used by lw_agent_options_init(). */
#define LW_AGENT_DEFAULT_ADDR "127.0.0.1:6060"
#define LW_AGENT_DEFAULT_HEAP_RATE_BYTES 524288

/* The server's request limits (see the file comment). */
#define LW_AGENT_MAX_CONNECTIONS 64
#define LW_AGENT_CONNECTION_TIMEOUT_S 120
#define LW_AGENT_CONNECTION_MEMORY_BYTES 32768
/* Longest accepted bearer token, in bytes. */
#define LW_AGENT_MAX_TOKEN_BYTES 1024

typedef struct lw_agent_options {
    /* "host:port", "[v6addr]:port" or ":port" (all interfaces). NULL or ""
     * means LW_AGENT_DEFAULT_ADDR; "off" starts no server (sampling still
     * runs). Port 0 picks a free port (see lw_agent_port()). Copied. */
    const char *listen_addr;
    /* Mean bytes between heap samples; 0 disables heap sampling, 1 samples
     * every allocation. */
    int64_t heap_rate_bytes;
    /* false: /debug/pprof/profile answers 500 "cpu profiling disabled". */
    bool cpu_profiler_enabled;
    /* NULL or "": no authentication. Otherwise every request must carry
     * "Authorization: Bearer <bearer_token>" or gets 401. Printable ASCII
     * without spaces, at most LW_AGENT_MAX_TOKEN_BYTES bytes (else
     * lw_agent_start fails with -EINVAL). Copied. */
    const char *bearer_token;
} lw_agent_options;

/* Fill *opts with the defaults (LW_AGENT_DEFAULT_ADDR, 524288 bytes, CPU
 * profiler on, no bearer token). Cannot fail. */
LW_AGENT_API void lw_agent_options_init(lw_agent_options *opts);

/* Start the agent: set the heap sample rate and start the HTTP server.
 * opts == NULL uses the defaults. Returns 0 on success; on failure a negative
 * errno code (-EALREADY when already started, -EINVAL for a bad address or token,
 * -EADDRINUSE / -EACCES when the address cannot be bound, -ENOMEM) and, if
 * err is not NULL, a one-line reason in err (err_len bytes). Thread-safe. */
LW_AGENT_API int lw_agent_start(const lw_agent_options *opts, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Stop the HTTP server (waiting for requests in flight, including a running
 * CPU profile, to finish). Heap sampling continues at the current rate.
 * Safe to call when not started. */
LW_AGENT_API void lw_agent_stop(void);

/* The TCP port the server listens on, or 0 when it is not running. */
LW_AGENT_API int lw_agent_port(void);

/* Change the heap sample rate (0 off, 1 every allocation). Threads pick up
 * the new rate at their next sample. */
LW_AGENT_API void lw_agent_set_heap_rate(int64_t rate_bytes);

#ifdef __cplusplus
}
#endif

#endif
