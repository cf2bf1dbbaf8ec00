/* agent_internal.h — the agent's internal modules and their contracts.
 *
 * Modules: heap (malloc interposition, Poisson sampling, stack buckets, live
 * allocation table), threads (pthread_create interposition, live thread
 * registry, signal-based stack capture), cpu (per-thread CPU-time timers and
 * a lock-free sample ring), sym (in-process symbolization with libdwfl),
 * prof (building pprof profiles and Go's text formats) and http
 * (libmicrohttpd server). Internal non-static names carry lw__.
 *
 * Reentrancy: anything the agent does on a thread that may allocate is
 * bracketed by lw__tls_busy so that the allocations it causes are neither
 * sampled nor recursed into. Agent threads (HTTP server) set lw__tls_internal
 * and are never sampled.
 */
#ifndef LW_AGENT_INTERNAL_H
#define LW_AGENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "lw_buf.h"
#include "pprof.h"

#define LW_TLS __thread __attribute__((tls_model("initial-exec")))

struct dl_phdr_info;
/* dl_iterate_phdr inside the fork gate (heap.c): fork() waits until no
 * thread of the agent iterates, so a child never inherits the loader's lock
 * held. Same result as dl_iterate_phdr. */
int lw__dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data);
#define LW_MAX_FRAMES 64
#define LW_HEAP_DEFAULT_RATE 524288
#define LW_LIKELY(x) __builtin_expect(!!(x), 1)
#define LW_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Caps on the responses the agent builds. */
#define LW_MAX_RESPONSE_BYTES ((size_t)256 << 20)

extern LW_TLS int lw__tls_busy;     /* > 0 while the agent itself runs on this thread */
extern LW_TLS int lw__tls_internal; /* 1 on agent-owned threads */
extern LW_TLS int lw__tls_spawn_internal; /* 1: threads created now are agent-owned */
/* > 0 while this thread runs libunwind outside a signal handler: a signal
 * handler interrupting it must not unwind (libunwind's per-thread caches are
 * not reentrant) and records only the interrupted pc. */
extern LW_TLS volatile int lw__tls_unwinding;

typedef struct lw_stack {
    uint32_t n;                   /* frames used */
    uintptr_t pc[LW_MAX_FRAMES];  /* leaf first; pc[0] is exact when captured from a signal */
} lw_stack;

/* ---- real allocator (heap.c) ------------------------------------------ */

/* The next allocator's functions (glibc's unless another interposer is
 * loaded); safe to call from anywhere malloc is. Never sampled. */
void *lw__real_malloc(size_t n);
void lw__real_free(void *p);
void *lw__real_calloc(size_t n, size_t size);
void *lw__real_realloc(void *p, size_t n);

/* Unwind the interrupted context of a signal handler (uctx) into st, leaf
 * first (pc[0] exact); async-signal-safe. When the thread was itself inside
 * libunwind, only the interrupted pc is recorded. */
void lw__stack_from_signal(void *uctx, lw_stack *st);

/* Capture the calling thread's stack, skipping `skip` innermost frames
 * (the capturing function itself is always skipped). Cannot fail. */
void lw__stack_here(lw_stack *st, int skip);

/* ---- heap profile ----------------------------------------------------- */

/* One sampled (stack, size class) bucket: raw sample counts and their exact
 * byte sums (sizes within a bucket differ by at most 12.5%); never freed. */
typedef struct lw_heap_record {
    uint64_t allocs;      /* sampled allocations */
    uint64_t frees;       /* sampled allocations since freed (<= allocs) */
    uint64_t alloc_bytes; /* bytes of the sampled allocations */
    uint64_t free_bytes;  /* bytes of those since freed (<= alloc_bytes) */
    uint64_t label_bytes; /* size of the bucket's first sample: Go's "bytes" label,
                             stable from one profile to the next */
    const uintptr_t *pcs; /* allocation stack, leaf first (return addresses) */
    uint32_t n_pcs;
} lw_heap_record;

int64_t lw__heap_rate(void);
void lw__heap_set_rate(int64_t rate);

/* Snapshot of every bucket into *out (allocated with lw__real_malloc; the
 * caller frees it with lw__real_free). 0 or -ENOMEM. */
int lw__heap_snapshot(lw_heap_record **out, size_t *n_out) LW_WUR;

/* Called once when the library loads (constructor). */
void lw__heap_init(void);

/* ---- threads ---------------------------------------------------------- */

typedef struct lw_thread_info {
    pid_t tid;
    char name[32];
    char state;            /* /proc stat state letter: R, S, D, T, Z, ... */
    char wait[32];         /* syscall name it waits in, "" when running */
    int64_t age_seconds;   /* how long the thread has been alive */
    bool has_stack;
    bool stack_scanned;    /* recovered by stack scanning, not unwinding (see threads.c) */
    lw_stack stack;        /* current stack (leaf first, pc[0] exact) */
    long sys_nr;           /* syscall it blocks in, -1 if none */
    uintptr_t sys_sp, sys_pc; /* user sp and pc at that syscall */
    bool has_created_by;
    lw_stack created_by;   /* stack of the pthread_create call */
    pid_t creator_tid;     /* 0 when unknown */
} lw_thread_info;

/* Capture every live thread: its state from /proc and its stack by signalling
 * it (bounded wait of about 200 ms; a thread that does not answer has
 * has_stack false). *out is allocated with lw__real_malloc. 0, -ENOMEM or
 * -errno from /proc. Serialized internally. */
int lw__threads_capture(lw_thread_info **out, size_t *n_out) LW_WUR;

/* Creation stacks of every thread created through pthread_create so far
 * (including exited ones). *out allocated with lw__real_malloc. */
int lw__threads_created(lw_stack **out, size_t *n_out) LW_WUR;

/* The ids of every thread of the process (from /proc/self/task), allocated
 * with lw__real_malloc. 0, -ENOMEM or -errno. */
int lw__list_tids(pid_t **out, size_t *n_out) LW_WUR;

static inline pid_t lw__gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

void lw__threads_init(void);

/* ---- cpu profiler ----------------------------------------------------- */

/* Profile for `seconds` seconds (sleeping in the calling thread), then build
 * the CPU profile into *out. -EBUSY when another profile runs (msg says
 * "cpu profiling already in use"), -ENOMEM, -errno from timer_create. */
int lw__cpu_profile(int seconds, pprof_profile **out, char *err, size_t err_len) LW_WUR;

/* Called by the thread trampoline at thread start: arm a timer for this
 * thread when a profile runs. */
void lw__cpu_thread_started(void);

/* In the child after fork(): no profile runs there. */
void lw__cpu_after_fork_child(void);

/* ---- symbolization ---------------------------------------------------- */

typedef struct lw_sym {
    const char *function; /* NULL if unknown; valid until lw__sym_unlock() */
    const char *file;     /* NULL if unknown */
    int line;             /* 0 if unknown */
    uintptr_t func_start; /* 0 if unknown */
    const void *module;   /* opaque module identity, NULL if none */
    uintptr_t mod_start, mod_end;
    const char *mod_file;  /* module file name */
    const char *build_id;  /* hex, "" if none */
    bool mod_has_functions, mod_has_lines;
} lw_sym;

/* The symbolizer is global and serialized: lock, look up, unlock. Strings
 * stay valid until the unlock. is_return says pc is a return address
 * (looked up at pc-1). Cannot fail (unknown fields are NULL/0). */
void lw__sym_lock(void);
void lw__sym_unlock(void);
void lw__sym_lookup(uintptr_t pc, bool is_return, lw_sym *out);
/* In the child after fork(): forget the parent's symbolizer session. */
void lw__sym_after_fork_child(void);

/* ---- profile building (prof.c) --------------------------------------- */

/* The demangled form of a C++ symbol (caller frees with lw__real_free), or
 * NULL when name is not mangled or the process has no C++ runtime. */
char *lw__demangle(const char *name);

typedef struct lw_pb lw_pb;

/* A profile builder over a fresh pprof profile; holds the symbolizer lock
 * until lw_pb_finish/lw_pb_free. NULL when out of memory. */
lw_pb *lw__pb_new(void);
pprof_profile *lw__pb_profile(lw_pb *b);
/* Location ids for pcs (leaf first, n <= LW_MAX_FRAMES) into ids; exact_leaf
 * says pc[0] is an interrupted pc rather than a return address. Returns
 * the number of ids, or -ENOMEM. */
int lw__pb_locations(lw_pb *b, const uintptr_t *pcs, size_t n, bool exact_leaf, uint64_t *ids) LW_WUR;
/* Detach the profile (the caller owns it) and free the builder. */
pprof_profile *lw__pb_finish(lw_pb *b);
void lw__pb_free(lw_pb *b);

/* Append "#\t0x..\tfunc+0x..\tfile:line\n" frame lines (Go's debug=1). */
int lw__text_frames(lw_buf *out, const uintptr_t *pcs, size_t n, bool exact_leaf) LW_WUR;
/* Append Go debug=2 style frames: "func(...)\n\tfile:line +0x..\n". */
int lw__text_frames2(lw_buf *out, const uintptr_t *pcs, size_t n, bool exact_leaf) LW_WUR;

int lw__prof_heap(bool allocs, pprof_profile **out) LW_WUR;
int lw__prof_heap_text(lw_buf *out) LW_WUR;
int lw__prof_goroutine(pprof_profile **out) LW_WUR;
int lw__prof_goroutine_text(int debug, lw_buf *out) LW_WUR;
int lw__prof_threadcreate(pprof_profile **out) LW_WUR;
int lw__prof_threadcreate_text(lw_buf *out) LW_WUR;

/* ---- http ------------------------------------------------------------- */

/* Start the server on addr; token NULL or "" = no authentication, else
 * copied and required as "Authorization: Bearer <token>". 0 or -errno with
 * err set. */
int lw__http_start(const char *addr, bool cpu_enabled, const char *token, char *err,
                   size_t err_len) LW_WUR;
void lw__http_stop(void);
int lw__http_port(void);
/* After fork() in the child: forget the parent's server without touching it. */
void lw__http_forget(void);

/* Logging to stderr unless LEAKWATCH_QUIET=1 (never allocates on the heap). */
void lw__log(const char *fmt, ...) LW_PRINTF(1, 2);

int64_t lw__now_ns(void);

#endif
