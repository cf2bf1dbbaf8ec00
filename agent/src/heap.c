/* heap.c — malloc interposition and Poisson heap sampling for the agent.
 *
 * Every allocation function of the malloc family is interposed and forwarded
 * to the next allocator (dlsym(RTLD_NEXT); allocations made by dlsym itself
 * while resolving are served from a static bootstrap arena). The fast path of
 * an allocation is the real call plus one thread-local countdown of bytes
 * (initial-exec TLS); when the countdown crosses zero the allocation is
 * sampled, like Go's runtime: gaps between samples are exponentially
 * distributed with mean = rate bytes, so each byte is sampled with equal
 * probability and totals can be unsampled with 1/(1-exp(-size/rate)).
 *
 * A sample records its stack and size in a bucket keyed by (stack, size
 * class) — buckets live in an insert-only, lock-free-readable hash table and
 * are never freed — and its pointer and exact size in a lock-striped live
 * table so that a free on any thread counts against the right bucket. Size
 * classes (16-byte steps up to 128 bytes, then 8 per power of two, like Go's
 * size classes) bound the buckets per stack: keyed by the exact size, a
 * stack allocating data-dependent sizes added a bucket per distinct size for
 * good (a daemon scraping itself grew by thousands of buckets a minute, its
 * heap profile and the memory to serve it with them). Buckets count exact
 * bytes, so totals stay exact. A counting filter indexed by pointer hash
 * lets free() skip the live table without locking when the pointer cannot be
 * sampled. Internal memory (buckets, table nodes) comes from mmap, never from
 * malloc, so the profiler does not recurse into itself; fork() is handled by
 * taking every lock in pthread_atfork's prepare handler.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <link.h>

#include "agent_internal.h"

#define LW_EXPORT __attribute__((visibility("default")))

LW_TLS int lw__tls_busy;
LW_TLS int lw__tls_internal;
LW_TLS int lw__tls_spawn_internal;
LW_TLS volatile int lw__tls_unwinding;
static LW_TLS int64_t tls_countdown; /* bytes left until the next sample */
static LW_TLS uint64_t tls_rng;      /* xorshift state, 0 until seeded */
static LW_TLS int tls_started;       /* countdown drawn at least once */
static LW_TLS int tls_resolving;     /* inside dlsym() resolving the real functions */

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*valloc_fn)(size_t);
typedef size_t (*usable_fn)(void *);

static malloc_fn real_malloc;
static free_fn real_free;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static memalign_fn real_memalign;
static memalign_fn real_aligned_alloc;
static posix_memalign_fn real_posix_memalign;
static valloc_fn real_valloc;
static valloc_fn real_pvalloc;
static usable_fn real_usable_size;

/* glibc's own entry points, used when dlsym finds nothing. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

/* ---- bootstrap arena ---------------------------------------------------- */

#define BOOT_ARENA_BYTES (256 * 1024)
static _Alignas(64) char boot_arena[BOOT_ARENA_BYTES];
static atomic_size_t boot_used;

typedef struct boot_hdr {
    size_t size;
    size_t pad;
} boot_hdr;

static bool is_boot(const void *p)
{
    return (const char *)p >= boot_arena && (const char *)p < boot_arena + BOOT_ARENA_BYTES;
}

static void filter_add_boot(const void *p);

static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    size_t need = n + sizeof(boot_hdr) + align;
    size_t off = atomic_fetch_add(&boot_used, need);
    if (off + need > BOOT_ARENA_BYTES)
        return NULL;
    uintptr_t base = (uintptr_t)boot_arena + off + sizeof(boot_hdr);
    uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
    ((boot_hdr *)p)[-1].size = n;
    filter_add_boot((void *)p);
    return (void *)p;
}

static size_t boot_size(const void *p)
{
    return ((const boot_hdr *)p)[-1].size;
}

static void *sym_next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static void resolve(void)
{
    tls_resolving = 1;
    malloc_fn m = (malloc_fn)sym_next("malloc");
    free_fn f = (free_fn)sym_next("free");
    calloc_fn c = (calloc_fn)sym_next("calloc");
    realloc_fn r = (realloc_fn)sym_next("realloc");
    memalign_fn ma = (memalign_fn)sym_next("memalign");
    memalign_fn aa = (memalign_fn)sym_next("aligned_alloc");
    posix_memalign_fn pm = (posix_memalign_fn)sym_next("posix_memalign");
    valloc_fn va = (valloc_fn)sym_next("valloc");
    valloc_fn pva = (valloc_fn)sym_next("pvalloc");
    usable_fn us = (usable_fn)sym_next("malloc_usable_size");
    tls_resolving = 0;
    __atomic_store_n(&real_free, f ? f : __libc_free, __ATOMIC_RELEASE);
    __atomic_store_n(&real_calloc, c ? c : __libc_calloc, __ATOMIC_RELEASE);
    __atomic_store_n(&real_realloc, r ? r : __libc_realloc, __ATOMIC_RELEASE);
    __atomic_store_n(&real_memalign, ma ? ma : __libc_memalign, __ATOMIC_RELEASE);
    __atomic_store_n(&real_aligned_alloc, aa ? aa : __libc_memalign, __ATOMIC_RELEASE);
    __atomic_store_n(&real_posix_memalign, pm, __ATOMIC_RELEASE);
    __atomic_store_n(&real_valloc, va ? va : __libc_valloc, __ATOMIC_RELEASE);
    __atomic_store_n(&real_pvalloc, pva ? pva : __libc_pvalloc, __ATOMIC_RELEASE);
    __atomic_store_n(&real_usable_size, us, __ATOMIC_RELEASE);
    __atomic_store_n(&real_malloc, m ? m : __libc_malloc, __ATOMIC_RELEASE);
}

static inline bool ensure_real(void)
{
    if (LW_LIKELY(__atomic_load_n(&real_malloc, __ATOMIC_ACQUIRE) != NULL))
        return true;
    if (tls_resolving)
        return false;
    resolve();
    return true;
}

void *lw__real_malloc(size_t n)
{
    if (!ensure_real())
        return boot_alloc(n, 16);
    return real_malloc(n);
}

void lw__real_free(void *p)
{
    if (p == NULL || is_boot(p))
        return;
    if (ensure_real())
        real_free(p);
}

void *lw__real_calloc(size_t n, size_t size)
{
    if (!ensure_real()) {
        if (size != 0 && n > SIZE_MAX / size)
            return NULL;
        return boot_alloc(n * size, 16); /* static storage is zeroed */
    }
    return real_calloc(n, size);
}

void *lw__real_realloc(void *p, size_t n)
{
    ensure_real();
    return real_realloc(p, n);
}

/* ---- internal memory: mmap chunks, never malloc ------------------------- */

#define CHUNK_BYTES ((size_t)1 << 20)

typedef struct arena {
    char *cur;
    size_t left;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > a->left) {
        size_t sz = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        a->cur = m;
        a->left = sz;
    }
    void *p = a->cur;
    a->cur += n;
    a->left -= n;
    return p;
}

/* ---- sampling parameters -------------------------------------------------- */

static _Atomic int64_t heap_rate = LW_HEAP_DEFAULT_RATE;

int64_t lw__heap_rate(void)
{
    return atomic_load_explicit(&heap_rate, memory_order_relaxed);
}

void lw__heap_set_rate(int64_t rate)
{
    if (rate < 0)
        rate = 0;
    atomic_store(&heap_rate, rate);
    /* Other threads pick the rate up at their next sample (as in Go); the
     * calling thread redraws now. */
    tls_started = 0;
    tls_countdown = 0;
}

static atomic_int env_loaded;

/* LEAKWATCH_HEAP_RATE, read at the first sample: libraries' constructors
 * allocate before ours runs. getenv does not allocate. */
static void load_env_rate(void)
{
    if (atomic_exchange(&env_loaded, 1))
        return;
    const char *r = getenv("LEAKWATCH_HEAP_RATE");
    if (r && *r) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(r, &end, 10);
        if (errno == 0 && end && *end == '\0' && v >= 0)
            atomic_store(&heap_rate, v);
        else
            lw__log("leakwatch-agent: ignoring LEAKWATCH_HEAP_RATE=%s (want bytes >= 0)\n", r);
    }
}

static uint64_t rng_next(void)
{
    if (LW_UNLIKELY(tls_rng == 0)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        tls_rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)syscall(SYS_gettid) ^
                  ((uint64_t)(uintptr_t)&ts << 7) ^ 0x9e3779b97f4a7c15ull;
        if (tls_rng == 0)
            tls_rng = 1;
    }
    uint64_t x = tls_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    tls_rng = x;
    return x;
}

/* Bytes until the next sample: exponential with mean `rate` (Go's
 * nextSample). Rate 0 (off) returns a large gap that is re-checked later. */
static int64_t next_gap(int64_t rate)
{
    if (rate <= 0)
        return (int64_t)1 << 30;
    if (rate == 1)
        return 0;
    /* u in (0, 1]: 53 random bits. */
    double u = (double)((rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0);
    double g = -log(u) * (double)rate;
    if (g > (double)((int64_t)1 << 40))
        g = (double)((int64_t)1 << 40);
    return (int64_t)g;
}

/* ---- buckets ------------------------------------------------------------ */

#define BUCKET_HEADS 16384

typedef struct bucket {
    struct bucket *_Atomic next;
    uint64_t hash;
    uint64_t size_class; /* size_class() of its allocations' sizes */
    uint64_t first_size; /* size of the allocation that created it */
    _Atomic uint64_t allocs;
    _Atomic uint64_t frees;
    _Atomic uint64_t alloc_bytes; /* exact sizes of the sampled allocations */
    _Atomic uint64_t free_bytes;  /* exact sizes of those since freed */
    uint32_t n;
    uintptr_t pcs[];
} bucket;

static bucket *_Atomic bucket_heads[BUCKET_HEADS];
static pthread_mutex_t bucket_lock = PTHREAD_MUTEX_INITIALIZER;
static arena bucket_arena;
static _Atomic size_t n_buckets;

/* The bucket key for an allocation of n bytes: n rounded up to a multiple
 * of 16 up to 128 bytes, above that to one of 8 steps per power of two
 * (within 12.5%, so that unsampling with a bucket's average size stays
 * accurate). At most 8 classes per power of two: a stack's buckets are
 * bounded whatever sizes it allocates. */
static uint64_t size_class(uint64_t n)
{
    if (n <= 128)
        return (n + 15) & ~(uint64_t)15;
    unsigned top = 63u - (unsigned)__builtin_clzll(n - 1); /* 2^top < n <= 2^(top+1) */
    uint64_t step = (uint64_t)1 << (top - 3);               /* top >= 7: step >= 16 */
    return (n + step - 1) & ~(step - 1);
}

static uint64_t hash_stack(const uintptr_t *pcs, uint32_t n, uint64_t size)
{
    uint64_t h = 1469598103934665603ull ^ size;
    for (uint32_t i = 0; i < n; i++) {
        h ^= pcs[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

static bucket *find_bucket(bucket *head, uint64_t h, const uintptr_t *pcs, uint32_t n,
                           uint64_t cls)
{
    for (bucket *b = head; b; b = atomic_load_explicit(&b->next, memory_order_acquire)) {
        if (b->hash == h && b->size_class == cls && b->n == n &&
            memcmp(b->pcs, pcs, n * sizeof(uintptr_t)) == 0)
            return b;
    }
    return NULL;
}

/* The bucket of (pcs, size_class(size)), created on first use; NULL when
 * out of memory. */
static bucket *get_bucket(const uintptr_t *pcs, uint32_t n, uint64_t size)
{
    uint64_t cls = size_class(size);
    uint64_t h = hash_stack(pcs, n, cls);
    bucket *_Atomic *slot = &bucket_heads[h % BUCKET_HEADS];
    bucket *b = find_bucket(atomic_load_explicit(slot, memory_order_acquire), h, pcs, n, cls);
    if (b)
        return b;
    pthread_mutex_lock(&bucket_lock);
    b = find_bucket(atomic_load_explicit(slot, memory_order_acquire), h, pcs, n, cls);
    if (!b) {
        b = arena_alloc(&bucket_arena, sizeof(bucket) + n * sizeof(uintptr_t));
        if (b) {
            b->hash = h;
            b->size_class = cls;
            b->first_size = size;
            b->n = n;
            atomic_init(&b->allocs, 0);
            atomic_init(&b->frees, 0);
            atomic_init(&b->alloc_bytes, 0);
            atomic_init(&b->free_bytes, 0);
            memcpy(b->pcs, pcs, n * sizeof(uintptr_t));
            atomic_init(&b->next, atomic_load_explicit(slot, memory_order_relaxed));
            atomic_store_explicit(slot, b, memory_order_release);
            atomic_fetch_add(&n_buckets, 1);
        }
    }
    pthread_mutex_unlock(&bucket_lock);
    return b;
}

/* ---- live table ------------------------------------------------------------ */

#define LIVE_STRIPES 256
#define LIVE_HEADS 1024 /* per stripe */
#define FILTER_SLOTS (1u << 16)

typedef struct live_node {
    struct live_node *next;
    uintptr_t ptr;
    bucket *b;
    size_t size; /* exact size of the sampled allocation */
} live_node;

typedef struct live_stripe {
    pthread_mutex_t lock;
    live_node *heads[LIVE_HEADS];
    live_node *free_nodes;
    arena mem;
} live_stripe;

static live_stripe live[LIVE_STRIPES];
/* One byte per slot (64 KiB: free() reads it on every call, so it should
 * stay in cache). A slot saturates at 255 and then stays there for good:
 * its frees always take the slow path, which is only slower, never wrong.
 * The slot is the pointer's address bits above malloc's 16-byte alignment:
 * no hashing on free()'s fast path, and neighbouring blocks share a cache
 * line of the filter. Two sampled blocks a multiple of 1 MiB apart share a
 * slot, which only costs a slow-path lookup. */
static _Atomic uint8_t filter[FILTER_SLOTS];

static inline _Atomic uint8_t *filter_slot(uintptr_t p)
{
    return &filter[(p >> 4) & (FILTER_SLOTS - 1)];
}

static void filter_inc(uintptr_t p)
{
    _Atomic uint8_t *f = filter_slot(p);
    uint8_t v = atomic_load_explicit(f, memory_order_relaxed);
    while (v != UINT8_MAX &&
           !atomic_compare_exchange_weak_explicit(f, &v, (uint8_t)(v + 1), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static void filter_dec(uintptr_t p)
{
    _Atomic uint8_t *f = filter_slot(p);
    uint8_t v = atomic_load_explicit(f, memory_order_relaxed);
    while (v != UINT8_MAX && v != 0 &&
           !atomic_compare_exchange_weak_explicit(f, &v, (uint8_t)(v - 1), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static inline uint64_t ptr_hash(uintptr_t p)
{
    uint64_t h = (uint64_t)p * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

static inline bool filter_maybe(const void *p)
{
    return atomic_load_explicit(filter_slot((uintptr_t)p), memory_order_relaxed) != 0;
}

/* Bootstrap blocks stay in the filter for good, so that free()'s fast path
 * needs no address-range check: they always take the slow path. */
static void filter_add_boot(const void *p)
{
    filter_inc((uintptr_t)p);
}

/* Count a free of `size` bytes against b. */
static void bucket_free(bucket *b, size_t size)
{
    atomic_fetch_add_explicit(&b->free_bytes, size, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->frees, 1, memory_order_release);
}

static void live_insert(uintptr_t p, bucket *b, size_t size)
{
    uint64_t h = ptr_hash(p);
    live_stripe *s = &live[(h >> 16) % LIVE_STRIPES];
    filter_inc(p);
    pthread_mutex_lock(&s->lock);
    live_node *nd = s->free_nodes;
    if (nd)
        s->free_nodes = nd->next;
    else
        nd = arena_alloc(&s->mem, sizeof(*nd));
    if (nd) {
        size_t i = (h >> 24) % LIVE_HEADS;
        nd->ptr = p;
        nd->b = b;
        nd->size = size;
        nd->next = s->heads[i];
        s->heads[i] = nd;
    }
    pthread_mutex_unlock(&s->lock);
    if (!nd) {
        filter_dec(p);
        bucket_free(b, size); /* cannot track it */
    }
}

/* Remove p from the live table; returns its bucket (and its size in *size)
 * or NULL if not sampled. */
static bucket *live_remove(uintptr_t p, size_t *size)
{
    uint64_t h = ptr_hash(p);
    live_stripe *s = &live[(h >> 16) % LIVE_STRIPES];
    bucket *b = NULL;
    pthread_mutex_lock(&s->lock);
    live_node **pp = &s->heads[(h >> 24) % LIVE_HEADS];
    for (live_node *nd = *pp; nd; pp = &nd->next, nd = nd->next) {
        if (nd->ptr == p) {
            *pp = nd->next;
            b = nd->b;
            *size = nd->size;
            nd->next = s->free_nodes;
            s->free_nodes = nd;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (b)
        filter_dec(p);
    return b;
}

/* Account a free of p (before the real free). */
static inline void untrack(void *p)
{
    if (LW_UNLIKELY(filter_maybe(p))) {
        size_t size = 0;
        bucket *b = live_remove((uintptr_t)p, &size);
        if (b)
            bucket_free(b, size);
    }
}

/* ---- the fork gate for libunwind ------------------------------------------
 * libunwind has internal mutexes and no fork handlers: a child forked while
 * another thread was inside libunwind would deadlock at its first unwind.
 * Every unwind enters the gate (a counter) and fork_prepare closes it and
 * waits for the counter to drain; an unwinder that finds the gate closed
 * backs out (a signal handler then records only the interrupted pc). */
static _Atomic int gate_closed;
static _Atomic int gate_inside;
/* This thread's nesting depth inside the gate: a thread already inside
 * (e.g. a malloc sampled from a dl_iterate_phdr callback) enters again
 * without waiting, or fork_prepare would wait for it forever. */
static LW_TLS int gate_depth;

static bool gate_enter(bool may_wait)
{
    if (gate_depth > 0) {
        atomic_fetch_add(&gate_inside, 1);
        gate_depth++;
        return true;
    }
    for (;;) {
        atomic_fetch_add(&gate_inside, 1);
        if (!atomic_load(&gate_closed)) {
            gate_depth++;
            return true;
        }
        atomic_fetch_sub(&gate_inside, 1);
        if (!may_wait)
            return false;
        while (atomic_load(&gate_closed))
            sched_yield();
    }
}

static void gate_leave(void)
{
    gate_depth--;
    atomic_fetch_sub(&gate_inside, 1);
}

/* The loader's dl_iterate_phdr lock has no fork handler either: a child
 * forked while another thread iterates would deadlock at its first unwind
 * (seen in the fork stress test). Every dl_iterate_phdr of the agent goes
 * through the same gate. */
int lw__dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)
{
    gate_enter(true);
    int rc = dl_iterate_phdr(cb, data);
    gate_leave();
    return rc;
}

static void gate_close(void)
{
    atomic_store(&gate_closed, 1);
    while (atomic_load(&gate_inside) != 0)
        sched_yield();
}

static void gate_open(void)
{
    atomic_store(&gate_closed, 0);
}

/* ---- stacks ------------------------------------------------------------ */

void lw__stack_here(lw_stack *st, int skip)
{
    void *buf[LW_MAX_FRAMES + 10];
    if (skip < 0)
        skip = 0;
    if (skip > 8)
        skip = 8;
    lw__tls_busy++;
    lw__tls_unwinding++;
    gate_enter(true);
    int n = unw_backtrace(buf, LW_MAX_FRAMES + skip + 1);
    gate_leave();
    lw__tls_unwinding--;
    lw__tls_busy--;
    st->n = 0;
    for (int i = skip + 1; i < n && st->n < LW_MAX_FRAMES; i++)
        st->pc[st->n++] = (uintptr_t)buf[i];
}

void lw__stack_from_signal(void *uctx, lw_stack *st)
{
    ucontext_t *uc = uctx;
    st->n = 0;
    if (lw__tls_unwinding || !gate_enter(false)) {
#if defined(__x86_64__)
        st->pc[st->n++] = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
        st->pc[st->n++] = (uintptr_t)uc->uc_mcontext.pc;
#endif
        return;
    }
    lw__tls_unwinding++;
    lw__tls_busy++;
    unw_cursor_t cur;
    if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) >= 0) {
        do {
            unw_word_t ip = 0;
            if (unw_get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0)
                break;
            st->pc[st->n++] = (uintptr_t)ip;
        } while (st->n < LW_MAX_FRAMES && unw_step(&cur) > 0);
    }
    lw__tls_busy--;
    lw__tls_unwinding--;
    gate_leave();
}

/* ---- the sampling slow path --------------------------------------------- */

/* Called (never inlined, never as a tail call, so the frame count is fixed:
 * sample_slow <- interposed function <- caller) when the countdown crossed
 * zero. Returns p. */
static __attribute__((noinline)) void *sample_slow(void *p, size_t n)
{
    if (lw__tls_internal) {
        tls_countdown = (int64_t)1 << 40; /* agent threads are never sampled */
        return p;
    }
    if (lw__tls_busy || tls_resolving) {
        tls_countdown += (int64_t)n; /* the agent's own allocation does not count */
        return p;
    }
    if (LW_UNLIKELY(!atomic_load_explicit(&env_loaded, memory_order_relaxed)))
        load_env_rate();
    int64_t rate = lw__heap_rate();
    if (!tls_started) {
        tls_started = 1;
        lw__tls_busy++;
        tls_countdown = next_gap(rate) - (int64_t)n;
        lw__tls_busy--;
        if (tls_countdown > 0)
            return p;
    }
    lw__tls_busy++;
    tls_countdown = next_gap(rate);
    if (rate > 0 && p != NULL) {
        void *buf[LW_MAX_FRAMES + 2];
        lw__tls_unwinding++;
        gate_enter(true);
        int got = unw_backtrace(buf, LW_MAX_FRAMES + 2);
        gate_leave();
        lw__tls_unwinding--;
        int skip = 2;
        uintptr_t pcs[LW_MAX_FRAMES];
        uint32_t k = 0;
        for (int i = skip; i < got && k < LW_MAX_FRAMES; i++)
            pcs[k++] = (uintptr_t)buf[i];
        bucket *b = get_bucket(pcs, k, n);
        if (b) {
            atomic_fetch_add_explicit(&b->alloc_bytes, n, memory_order_relaxed);
            atomic_fetch_add_explicit(&b->allocs, 1, memory_order_release);
            live_insert((uintptr_t)p, b, n);
        }
    }
    lw__tls_busy--;
    return p;
}

#define AFTER_ALLOC(p, n)                                                                          \
    do {                                                                                           \
        if (LW_LIKELY((tls_countdown -= (int64_t)(n)) > 0))                                        \
            return (p);                                                                            \
        return sample_slow((p), (n));                                                              \
    } while (0)

/* ---- the interposed functions ------------------------------------------ */

/* The fast paths of malloc and free are what every allocation of the host
 * pays: malloc counts down and tail-calls the real malloc; free checks the
 * pointer filter and tail-calls the real free. A thread's countdown starts
 * at 0, so its first allocation takes the slow path, which resolves the real
 * functions: the fast path never sees them unresolved. Tail calls are allowed
 * here only (the agent is built with -fno-optimize-sibling-calls); the slow
 * paths keep a real frame for sample_slow's fixed frame count. */
#define LW_TAIL_CALLS __attribute__((optimize("optimize-sibling-calls")))

LW_EXPORT LW_TAIL_CALLS void *malloc(size_t n)
{
    if (LW_LIKELY((tls_countdown -= (int64_t)n) > 0))
        return real_malloc(n);
    void *p = sample_slow(lw__real_malloc(n), n);
    __asm__ volatile("" : "+r"(p)::"memory"); /* keep a real frame: not a tail call */
    return p;
}

static __attribute__((noinline)) void free_slow(void *p)
{
    if (p == NULL || is_boot(p))
        return;
    untrack(p);
    if (ensure_real())
        real_free(p);
}

LW_EXPORT LW_TAIL_CALLS void free(void *p)
{
    free_fn f = __atomic_load_n(&real_free, __ATOMIC_RELAXED);
    if (LW_UNLIKELY(f == NULL || filter_maybe(p)))
        free_slow(p);
    else
        f(p);
}

LW_EXPORT void *calloc(size_t nmemb, size_t size)
{
    if (LW_UNLIKELY(!ensure_real()))
        return lw__real_calloc(nmemb, size);
    void *p = real_calloc(nmemb, size);
    size_t total = (size != 0 && nmemb > SIZE_MAX / size) ? 0 : nmemb * size;
    AFTER_ALLOC(p, total);
}

LW_EXPORT void *realloc(void *old, size_t n)
{
    if (LW_UNLIKELY(!ensure_real()) || (old && is_boot(old))) {
        void *p = ensure_real() && !tls_resolving ? real_malloc(n) : boot_alloc(n, 16);
        if (p && old) {
            size_t os = boot_size(old);
            memcpy(p, old, os < n ? os : n);
        }
        return p;
    }
    bucket *b = NULL;
    size_t old_size = 0;
    if (old && LW_UNLIKELY(filter_maybe(old)))
        b = live_remove((uintptr_t)old, &old_size);
    void *p = real_realloc(old, n);
    if (b) {
        if (p == NULL && n != 0) {
            live_insert((uintptr_t)old, b, old_size); /* the old block is still alive */
            return NULL;
        }
        bucket_free(b, old_size);
    }
    if (p == NULL)
        return NULL;
    AFTER_ALLOC(p, n);
}

LW_EXPORT void *reallocarray(void *old, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = realloc(old, nmemb * size);
    __asm__ volatile("" ::: "memory"); /* keep a real frame: not a tail call */
    return p;
}

LW_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (LW_UNLIKELY(!ensure_real())) {
        void *p = boot_alloc(n, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    int rc;
    if (real_posix_memalign) {
        rc = real_posix_memalign(out, align, n);
    } else {
        void *p = real_memalign(align, n);
        rc = p ? 0 : ENOMEM;
        if (p)
            *out = p;
    }
    if (rc != 0)
        return rc;
    if (LW_UNLIKELY((tls_countdown -= (int64_t)n) <= 0))
        sample_slow(*out, n);
    return 0;
}

LW_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (LW_UNLIKELY(!ensure_real()))
        return boot_alloc(n, align);
    void *p = real_aligned_alloc(align, n);
    AFTER_ALLOC(p, n);
}

LW_EXPORT void *memalign(size_t align, size_t n)
{
    if (LW_UNLIKELY(!ensure_real()))
        return boot_alloc(n, align);
    void *p = real_memalign(align, n);
    AFTER_ALLOC(p, n);
}

LW_EXPORT void *valloc(size_t n)
{
    if (LW_UNLIKELY(!ensure_real()))
        return boot_alloc(n, 4096);
    void *p = real_valloc(n);
    AFTER_ALLOC(p, n);
}

LW_EXPORT void *pvalloc(size_t n)
{
    if (LW_UNLIKELY(!ensure_real()))
        return boot_alloc(n, 4096);
    void *p = real_pvalloc(n);
    AFTER_ALLOC(p, n);
}

LW_EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    if (is_boot(p))
        return boot_size(p);
    if (!ensure_real() || !real_usable_size)
        return 0;
    return real_usable_size(p);
}

/* ---- snapshot, fork, init ---------------------------------------------- */

int lw__heap_snapshot(lw_heap_record **out, size_t *n_out)
{
    size_t cap = atomic_load(&n_buckets) + 64;
    lw_heap_record *recs = lw__real_malloc(cap * sizeof(*recs));
    if (!recs)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < BUCKET_HEADS; i++) {
        for (bucket *b = atomic_load_explicit(&bucket_heads[i], memory_order_acquire); b;
             b = atomic_load_explicit(&b->next, memory_order_acquire)) {
            if (n == cap)
                goto done; /* buckets added meanwhile: they appear next time */
            /* frees first: a concurrent free never makes frees > allocs
             * (an allocation is counted before it can be freed). */
            uint64_t f = atomic_load_explicit(&b->frees, memory_order_acquire);
            uint64_t fb = atomic_load_explicit(&b->free_bytes, memory_order_relaxed);
            uint64_t a = atomic_load_explicit(&b->allocs, memory_order_acquire);
            uint64_t ab = atomic_load_explicit(&b->alloc_bytes, memory_order_relaxed);
            recs[n].allocs = a;
            recs[n].frees = f > a ? a : f;
            recs[n].alloc_bytes = ab;
            recs[n].free_bytes = fb > ab ? ab : fb;
            recs[n].label_bytes = b->first_size;
            recs[n].pcs = b->pcs;
            recs[n].n_pcs = b->n;
            n++;
        }
    }
done:
    *out = recs;
    *n_out = n;
    return 0;
}

static void fork_prepare(void)
{
    gate_close();
    pthread_mutex_lock(&bucket_lock);
    for (size_t i = 0; i < LIVE_STRIPES; i++)
        pthread_mutex_lock(&live[i].lock);
}

static void fork_parent(void)
{
    for (size_t i = LIVE_STRIPES; i-- > 0;)
        pthread_mutex_unlock(&live[i].lock);
    pthread_mutex_unlock(&bucket_lock);
    gate_open();
}


void lw__heap_init(void)
{
    ensure_real();
    for (size_t i = 0; i < LIVE_STRIPES; i++)
        pthread_mutex_init(&live[i].lock, NULL);
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    load_env_rate();
    if (pthread_atfork(fork_prepare, fork_parent, fork_parent) != 0)
        lw__log("leakwatch-agent: pthread_atfork failed; fork() may deadlock\n");
}
