/* cpu.c — the CPU profiler: per-thread CPU-time timers and a lock-free ring.
 *
 * While a profile runs, every thread has its own POSIX timer on its
 * thread CPU-time clock (the kernel's per-thread clock id, like Go's runtime
 * does with timer_create) delivering SIGPROF to that very thread
 * (SIGEV_THREAD_ID) every 10 ms of CPU it uses: busy threads are sampled in
 * proportion to their CPU time, which one process-wide ITIMER_PROF cannot do
 * with several busy threads. Threads created during the profile arm their
 * own timer from the pthread_create trampoline.
 *
 * The SIGPROF handler unwinds the interrupted context with libunwind into a
 * preallocated bounded multi-producer ring (Vyukov's queue: a sequence
 * number per slot, one CAS per sample, no locks, no malloc); the profiling
 * thread drains it every 100 ms into a hash of stacks. When the ring is full
 * samples are dropped and counted. Only one profile runs at a time.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>


#include "agent_internal.h"

#define RING_SLOTS 4096 /* power of two */
#define PERIOD_NS 10000000LL /* 100 Hz */
#define MAX_TIMERS 65536

typedef struct ring_slot {
    _Atomic uint64_t seq;
    lw_stack st;
} ring_slot;

static ring_slot *ring;
static _Atomic uint64_t ring_head;
static uint64_t ring_tail; /* consumer only */
static _Atomic uint64_t n_dropped;
static _Atomic int cpu_active;
static pthread_mutex_t cpu_lock = PTHREAD_MUTEX_INITIALIZER; /* one profile at a time */
static pthread_mutex_t timers_lock = PTHREAD_MUTEX_INITIALIZER;
static timer_t *timers;
static size_t n_timers;
static int prof_installed;

static void on_sigprof(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    int saved = errno;
    if (!atomic_load_explicit(&cpu_active, memory_order_acquire) || !ring ||
        (si && si->si_code != SI_TIMER)) {
        errno = saved;
        return;
    }
    uint64_t pos = atomic_load_explicit(&ring_head, memory_order_relaxed);
    ring_slot *s;
    for (;;) {
        s = &ring[pos & (RING_SLOTS - 1)];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)seq - (int64_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak(&ring_head, &pos, pos + 1))
                break;
        } else if (dif < 0) {
            atomic_fetch_add_explicit(&n_dropped, 1, memory_order_relaxed);
            errno = saved;
            return;
        } else {
            pos = atomic_load_explicit(&ring_head, memory_order_relaxed);
        }
    }
    lw__stack_from_signal(uctx, &s->st);
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
    errno = saved;
}

/* ---- aggregation -------------------------------------------------------- */

typedef struct agg_entry {
    uint64_t hash;
    uint64_t count;
    lw_stack st;
} agg_entry;

typedef struct agg {
    agg_entry *v;
    size_t cap; /* power of two */
    size_t n;
} agg;

static uint64_t stack_hash(const lw_stack *st)
{
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < st->n; i++) {
        h ^= st->pc[i];
        h *= 1099511628211ull;
    }
    return h | 1;
}

static int agg_add(agg *a, const lw_stack *st)
{
    if ((a->n + 1) * 2 > a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 256;
        agg_entry *nv = lw__real_calloc(ncap, sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        for (size_t i = 0; i < a->cap; i++) {
            if (!a->v[i].hash)
                continue;
            size_t j = a->v[i].hash & (ncap - 1);
            while (nv[j].hash)
                j = (j + 1) & (ncap - 1);
            nv[j] = a->v[i];
        }
        lw__real_free(a->v);
        a->v = nv;
        a->cap = ncap;
    }
    uint64_t h = stack_hash(st);
    size_t j = h & (a->cap - 1);
    while (a->v[j].hash) {
        agg_entry *e = &a->v[j];
        if (e->hash == h && e->st.n == st->n &&
            memcmp(e->st.pc, st->pc, st->n * sizeof(uintptr_t)) == 0) {
            e->count++;
            return 0;
        }
        j = (j + 1) & (a->cap - 1);
    }
    a->v[j].hash = h;
    a->v[j].count = 1;
    a->v[j].st = *st;
    a->n++;
    return 0;
}

static int drain(agg *a)
{
    int rc = 0;
    for (;;) {
        ring_slot *s = &ring[ring_tail & (RING_SLOTS - 1)];
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq != ring_tail + 1)
            break;
        if (rc == 0 && s->st.n > 0)
            rc = agg_add(a, &s->st);
        atomic_store_explicit(&s->seq, ring_tail + RING_SLOTS, memory_order_release);
        ring_tail++;
    }
    return rc;
}

/* ---- timers ------------------------------------------------------------------ */

static void arm_timer(pid_t tid)
{
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev._sigev_un._tid = tid;
    /* The kernel's per-thread CPU clock id: MAKE_THREAD_CPUCLOCK(tid, SCHED). */
    clockid_t cid = (clockid_t)(((unsigned)~tid << 3) | 6);
    timer_t t;
    if (timer_create(cid, &sev, &t) != 0)
        return; /* the thread exited meanwhile */
    struct itimerspec its = {{0, PERIOD_NS}, {0, PERIOD_NS}};
    pthread_mutex_lock(&timers_lock);
    if (n_timers < MAX_TIMERS && timer_settime(t, 0, &its, NULL) == 0) {
        timers[n_timers++] = t;
    } else {
        timer_delete(t);
    }
    pthread_mutex_unlock(&timers_lock);
}

void lw__cpu_after_fork_child(void)
{
    /* Timers are not inherited; the parent's profile is not ours. */
    atomic_store(&cpu_active, 0);
    n_timers = 0;
    pthread_mutex_init(&timers_lock, NULL);
    pthread_mutex_init(&cpu_lock, NULL);
}

void lw__cpu_thread_started(void)
{
    if (atomic_load_explicit(&cpu_active, memory_order_acquire))
        arm_timer(lw__gettid());
}

static int cpu_setup(void)
{
    if (!ring) {
        void *m = mmap(NULL, sizeof(ring_slot) * RING_SLOTS, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return -ENOMEM;
        ring = m;
        for (uint64_t i = 0; i < RING_SLOTS; i++)
            atomic_init(&ring[i].seq, i);
        atomic_store(&ring_head, 0);
        ring_tail = 0;
    }
    if (!timers) {
        timers = lw__real_malloc(MAX_TIMERS * sizeof(*timers));
        if (!timers)
            return -ENOMEM;
    }
    if (!prof_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigprof;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigfillset(&sa.sa_mask);
        if (sigaction(SIGPROF, &sa, NULL) != 0)
            return -errno;
        prof_installed = 1; /* stays: a late SIGPROF must never kill the host */
    }
    return 0;
}

static int build(const agg *a, int64_t start_ns, int64_t dur_ns, pprof_profile **out)
{
    int rc = -ENOMEM;
    lw_pb *b = lw__pb_new();
    if (!b)
        return -ENOMEM;
    pprof_profile *p = lw__pb_profile(b);
    if (pprof_add_sample_type(p, "samples", "count") != 0 ||
        pprof_add_sample_type(p, "cpu", "nanoseconds") != 0 ||
        pprof_set_period(p, "cpu", "nanoseconds", PERIOD_NS) != 0)
        goto fail;
    p->time_nanos = start_ns;
    p->duration_nanos = dur_ns;
    for (size_t i = 0; i < a->cap; i++) {
        const agg_entry *e = &a->v[i];
        if (!e->hash)
            continue;
        uint64_t ids[LW_MAX_FRAMES];
        int n = lw__pb_locations(b, e->st.pc, e->st.n, true, ids);
        if (n < 0)
            goto fail;
        int64_t vals[2] = {(int64_t)e->count, (int64_t)e->count * PERIOD_NS};
        if (pprof_add_sample(p, ids, (size_t)n, vals, NULL, 0) != 0)
            goto fail;
    }
    uint64_t dropped = atomic_exchange(&n_dropped, 0);
    if (dropped) {
        char msg[96];
        snprintf(msg, sizeof msg, "leakwatch: %llu samples dropped (ring full)",
                 (unsigned long long)dropped);
        if (pprof_add_comment(p, msg) != 0)
            goto fail;
    }
    *out = lw__pb_finish(b);
    return 0;
fail:
    lw__pb_free(b);
    return rc;
}

int lw__cpu_profile(int seconds, pprof_profile **out, char *err, size_t err_len)
{
    agg a = {0};
    pid_t *tids = NULL;
    size_t n = 0;
    int rc;
    if (pthread_mutex_trylock(&cpu_lock) != 0) {
        snprintf(err, err_len, "cpu profiling already in use");
        return -EBUSY;
    }
    rc = cpu_setup();
    if (rc != 0) {
        snprintf(err, err_len, "cannot set up the profiler: %s", strerror(-rc));
        goto out;
    }
    rc = lw__list_tids(&tids, &n);
    if (rc != 0) {
        snprintf(err, err_len, "cannot list threads: %s", strerror(-rc));
        goto out;
    }
    int64_t start = lw__now_ns();
    atomic_store(&n_dropped, 0);
    atomic_store_explicit(&cpu_active, 1, memory_order_release);
    for (size_t i = 0; i < n; i++)
        arm_timer(tids[i]);
    struct timespec step = {0, 100000000};
    for (int i = 0; i < seconds * 10 && rc == 0; i++) {
        nanosleep(&step, NULL);
        rc = drain(&a);
    }
    atomic_store_explicit(&cpu_active, 0, memory_order_release);
    pthread_mutex_lock(&timers_lock);
    for (size_t i = 0; i < n_timers; i++)
        timer_delete(timers[i]);
    n_timers = 0;
    pthread_mutex_unlock(&timers_lock);
    /* Handlers already past the active check finish within microseconds. */
    struct timespec settle = {0, 20000000};
    nanosleep(&settle, NULL);
    if (rc == 0)
        rc = drain(&a);
    int64_t dur = lw__now_ns() - start;
    if (rc == 0)
        rc = build(&a, start, dur, out);
    if (rc != 0)
        snprintf(err, err_len, "cannot build the profile: %s", strerror(-rc));
out:
    lw__real_free(tids);
    lw__real_free(a.v);
    pthread_mutex_unlock(&cpu_lock);
    return rc;
}
