/* threads.c — thread tracking and stack capture for the goroutine and
 * threadcreate profiles.
 *
 * pthread_create is interposed: the creating stack is recorded (deduplicated
 * in an insert-only table, which is also the threadcreate profile) and the
 * new thread starts in a trampoline that registers it (tid, start time,
 * creator) in the live registry and unregisters it when it exits (return,
 * pthread_exit or cancellation, through a cleanup handler). Threads that
 * existed before the agent loaded, like the main thread, are found through
 * /proc/self/task and simply have no creation stack.
 *
 * Capturing a thread's current stack: the capturing thread publishes a slot
 * per thread, sends each one SIGURG with tgkill, and the handler unwinds its
 * own interrupted context with libunwind (async-signal-safe, no malloc) into
 * its slot. The capturer waits a bounded time (LW_CAPTURE_WAIT_MS); threads
 * that block the signal are reported without a stack. A counter of handlers
 * in flight keeps the slot array alive until no handler can touch it.
 * Threads blocked in a syscall that a signal would cut short (nanosleep,
 * epoll_wait, ...) are not signalled but scanned (see scan_stack).
 */
#include <dirent.h>
#include <link.h>
#include <sys/uio.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <dlfcn.h>


#include "agent_internal.h"

#define LW_EXPORT __attribute__((visibility("default")))
#define LW_CAPTURE_SIGNAL SIGURG
/* Long enough for a loaded machine to schedule every signalled thread (a
 * thread woken by the signal may wait behind busy threads for its turn). */
#define LW_CAPTURE_WAIT_MS 1000

/* ---- creation stacks (threadcreate) ---------------------------------------- */

typedef struct created {
    struct created *next;
    uint64_t hash;
    uint64_t count; /* threads created from this stack */
    lw_stack st;
} created;

#define CREATED_HEADS 1024
static created *created_heads[CREATED_HEADS];
static size_t n_created;

/* ---- live registry ----------------------------------------------------- */

typedef struct thread_rec {
    struct thread_rec *next, *prev;
    pid_t tid;
    pid_t creator_tid;
    int64_t start_ns; /* CLOCK_REALTIME */
    created *from;
    /* run_registered()'s frame [lo, hi): between the thread's function and
     * the trampoline; a stack scan skips it (its pthread_cleanup buffer
     * holds saved registers, e.g. stale code addresses that differ from
     * thread to thread). 0, 0 until set. */
    _Atomic uintptr_t skip_lo, skip_hi;
} thread_rec;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static thread_rec *reg_live;
static thread_rec *reg_free;
static char *reg_mem;
static size_t reg_mem_left;
static LW_TLS thread_rec *tls_rec;

static void *reg_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > reg_mem_left) {
        size_t sz = (size_t)1 << 20;
        void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        reg_mem = m;
        reg_mem_left = sz;
    }
    void *p = reg_mem;
    reg_mem += n;
    reg_mem_left -= n;
    return p;
}

static uint64_t hash_pcs(const lw_stack *st)
{
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < st->n; i++) {
        h ^= st->pc[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Under reg_lock. */
static created *intern_created(const lw_stack *st)
{
    uint64_t h = hash_pcs(st);
    created **head = &created_heads[h % CREATED_HEADS];
    for (created *c = *head; c; c = c->next)
        if (c->hash == h && c->st.n == st->n &&
            memcmp(c->st.pc, st->pc, st->n * sizeof(uintptr_t)) == 0)
            return c;
    created *c = reg_alloc(sizeof(*c));
    if (!c)
        return NULL;
    c->hash = h;
    c->count = 0;
    c->st = *st;
    c->next = *head;
    *head = c;
    n_created++;
    return c;
}

int64_t lw__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct start_arg {
    void *(*fn)(void *);
    void *arg;
    created *from;
    pid_t creator;
    int internal;
} start_arg;

static void unregister_self(void *p)
{
    thread_rec *r = p;
    if (!r)
        return;
    pthread_mutex_lock(&reg_lock);
    if (r->prev)
        r->prev->next = r->next;
    else
        reg_live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = reg_free;
    reg_free = r;
    pthread_mutex_unlock(&reg_lock);
    tls_rec = NULL;
}

/* Run the thread's function; unregister when it returns, calls
 * pthread_exit() or is cancelled. */
static _Atomic uintptr_t trampoline_ret; /* return address into trampoline() */

static __attribute__((noinline)) void *run_registered(thread_rec *r, const start_arg *a)
{
    atomic_store_explicit(&trampoline_ret, (uintptr_t)__builtin_return_address(0),
                          memory_order_relaxed);
    void *volatile ret = NULL;
    pthread_cleanup_push(unregister_self, r);
#if defined(__x86_64__)
    if (r) {
        uintptr_t sp;
        __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
        atomic_store_explicit(&r->skip_lo, sp, memory_order_relaxed);
        /* up to the saved frame pointer; the return address above it stays */
        atomic_store_explicit(&r->skip_hi,
                              (uintptr_t)__builtin_frame_address(0) + sizeof(void *),
                              memory_order_relaxed);
    }
#endif
    ret = a->fn(a->arg);
    pthread_cleanup_pop(1);
    return ret;
}

static void *trampoline(void *p)
{
    start_arg a = *(start_arg *)p;
    lw__real_free(p);
    lw__tls_internal = a.internal;
    pthread_mutex_lock(&reg_lock);
    thread_rec *r = reg_free;
    if (r)
        reg_free = r->next;
    else
        r = reg_alloc(sizeof(*r));
    if (r) {
        r->tid = lw__gettid();
        r->creator_tid = a.creator;
        r->start_ns = lw__now_ns();
        r->from = a.from;
        r->prev = NULL;
        atomic_store_explicit(&r->skip_lo, 0, memory_order_relaxed);
        atomic_store_explicit(&r->skip_hi, 0, memory_order_relaxed);
        r->next = reg_live;
        if (reg_live)
            reg_live->prev = r;
        reg_live = r;
    }
    pthread_mutex_unlock(&reg_lock);
    tls_rec = r;
    lw__cpu_thread_started();
    return run_registered(r, &a);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static pthread_create_fn real_pthread_create;

LW_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                             void *arg)
{
    pthread_create_fn real = __atomic_load_n(&real_pthread_create, __ATOMIC_ACQUIRE);
    if (!real) {
        real = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        if (!real)
            return EAGAIN;
        __atomic_store_n(&real_pthread_create, real, __ATOMIC_RELEASE);
    }
    start_arg *a = lw__real_malloc(sizeof(*a));
    if (!a)
        return real(t, attr, fn, arg);
    lw_stack st;
    lw__stack_here(&st, 1);
    a->fn = fn;
    a->arg = arg;
    a->creator = lw__gettid();
    a->internal = lw__tls_internal || lw__tls_spawn_internal;
    a->from = NULL;
    if (!a->internal) { /* the agent's own threads stay out of threadcreate */
        pthread_mutex_lock(&reg_lock);
        a->from = intern_created(&st);
        if (a->from)
            a->from->count++;
        pthread_mutex_unlock(&reg_lock);
    }
    int rc = real(t, attr, trampoline, a);
    if (rc != 0) {
        pthread_mutex_lock(&reg_lock);
        if (a->from)
            a->from->count--;
        pthread_mutex_unlock(&reg_lock);
        lw__real_free(a);
    }
    return rc;
}

int lw__threads_created(lw_stack **out, size_t *n_out)
{
    pthread_mutex_lock(&reg_lock);
    size_t total = 0;
    for (size_t i = 0; i < CREATED_HEADS; i++)
        for (created *c = created_heads[i]; c; c = c->next)
            total += c->count;
    lw_stack *v = lw__real_malloc((total ? total : 1) * sizeof(*v));
    size_t n = 0;
    if (v) {
        for (size_t i = 0; i < CREATED_HEADS; i++)
            for (created *c = created_heads[i]; c; c = c->next)
                for (uint64_t k = 0; k < c->count && n < total; k++)
                    v[n++] = c->st;
    }
    pthread_mutex_unlock(&reg_lock);
    if (!v)
        return -ENOMEM;
    *out = v;
    *n_out = n;
    return 0;
}

/* ---- /proc helpers ----------------------------------------------------------- */

int lw__list_tids(pid_t **out, size_t *n_out)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -errno;
    size_t cap = 64, n = 0;
    pid_t *v = lw__real_malloc(cap * sizeof(*v));
    int rc = 0;
    if (!v) {
        rc = -ENOMEM;
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if (n == cap) {
            pid_t *nv = lw__real_realloc(v, cap * 2 * sizeof(*v));
            if (!nv) {
                rc = -ENOMEM;
                goto out;
            }
            v = nv;
            cap *= 2;
        }
        v[n++] = (pid_t)atoi(e->d_name);
    }
out:
    closedir(d);
    if (rc != 0) {
        lw__real_free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

static const char *syscall_name(long nr)
{
#if defined(__x86_64__)
    switch (nr) {
    case 0: return "read";
    case 1: return "write";
    case 7: return "poll";
    case 17: return "pread64";
    case 18: return "pwrite64";
    case 19: return "readv";
    case 20: return "writev";
    case 23: return "select";
    case 34: return "pause";
    case 35: return "nanosleep";
    case 42: return "connect";
    case 43: return "accept";
    case 44: return "sendto";
    case 45: return "recvfrom";
    case 46: return "sendmsg";
    case 47: return "recvmsg";
    case 61: return "wait4";
    case 70: return "msgrcv";
    case 72: return "fcntl";
    case 73: return "flock";
    case 74: return "fsync";
    case 75: return "fdatasync";
    case 128: return "rt_sigtimedwait";
    case 130: return "rt_sigsuspend";
    case 202: return "futex";
    case 208: return "io_getevents";
    case 220: return "semtimedop";
    case 230: return "clock_nanosleep";
    case 232: return "epoll_wait";
    case 243: return "mq_timedreceive";
    case 247: return "waitid";
    case 257: return "openat";
    case 270: return "pselect6";
    case 271: return "ppoll";
    case 281: return "epoll_pwait";
    case 288: return "accept4";
    case 299: return "recvmmsg";
    case 426: return "io_uring_enter";
    case 441: return "epoll_pwait2";
    default: return NULL;
    }
#else
    (void)nr;
    return NULL;
#endif
}

static int64_t boot_ticks_to_age(unsigned long long start_ticks)
{
    char buf[128];
    if (read_small("/proc/uptime", buf, sizeof buf) <= 0)
        return 0;
    double up = strtod(buf, NULL);
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    double age = up - (double)start_ticks / (double)hz;
    return age > 0 ? (int64_t)age : 0;
}

/* Fill state, name, wait and age from /proc/self/task/TID. */
static void read_task(lw_thread_info *ti)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)ti->tid);
    if (read_small(path, buf, sizeof buf) > 0) {
        buf[strcspn(buf, "\n")] = '\0';
        size_t l = strnlen(buf, sizeof ti->name - 1);
        memcpy(ti->name, buf, l);
        ti->name[l] = '\0';
    }
    ti->state = '?';
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)ti->tid);
    if (read_small(path, buf, sizeof buf) > 0) {
        char *rp = strrchr(buf, ')');
        if (rp && rp[1] == ' ') {
            ti->state = rp[2];
            /* Field 22 (starttime) is the 20th after the state field. */
            char *q = rp + 2;
            for (int f = 3; f < 22 && q; f++) {
                q = strchr(q, ' ');
                if (q)
                    q++;
            }
            if (q && ti->age_seconds == 0)
                ti->age_seconds = boot_ticks_to_age(strtoull(q, NULL, 10));
        }
    }
    ti->wait[0] = '\0';
    ti->sys_nr = -1;
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)ti->tid);
    if (ti->state != 'R' && read_small(path, buf, sizeof buf) > 0 &&
        strncmp(buf, "running", 7) != 0) {
        /* "nr arg1 .. arg6 sp pc" (or "-1 sp pc" outside a syscall) */
        char *q = buf;
        long nr = strtol(q, &q, 10);
        unsigned long v[8] = {0};
        int k = 0;
        while (k < 8 && q && *q == ' ')
            v[k++] = strtoul(q, &q, 0);
        ti->sys_nr = nr;
        if (nr >= 0 && k == 8) {
            ti->sys_sp = v[6];
            ti->sys_pc = v[7];
        }
        const char *nm = nr >= 0 ? syscall_name(nr) : NULL;
        if (nm)
            snprintf(ti->wait, sizeof ti->wait, "%s", nm);
        else if (nr >= 0)
            snprintf(ti->wait, sizeof ti->wait, "syscall %ld", nr);
    }
}

/* ---- stack scanning for threads a signal would disturb ------------------------
 * Linux never restarts some syscalls after a signal handler ran, whatever
 * SA_RESTART says (signal(7)): nanosleep returns early, epoll_wait and poll
 * return EINTR. A program that does not expect that (sleep(30); exit) would
 * change behaviour because someone looked at its threads. Threads blocked in
 * such a syscall are therefore not signalled: their stack is recovered from
 * the user pc and sp the kernel reports in /proc/self/task/TID/syscall, by
 * scanning the stack for words that are return addresses (they point into
 * executable code right after a call instruction), as crash reporters do
 * without unwind info. Memory is read with process_vm_readv, so a stack that
 * goes away meanwhile gives an error, not a crash. */

static bool never_restarted(long nr)
{
#if defined(__x86_64__)
    switch (nr) {
    case 7:   /* poll */
    case 23:  /* select */
    case 34:  /* pause */
    case 35:  /* nanosleep */
    case 128: /* rt_sigtimedwait */
    case 130: /* rt_sigsuspend */
    case 208: /* io_getevents */
    case 220: /* semtimedop */
    case 230: /* clock_nanosleep */
    case 232: /* epoll_wait */
    case 270: /* pselect6 */
    case 271: /* ppoll */
    case 281: /* epoll_pwait */
    case 441: /* epoll_pwait2 */
        return true;
    default:
        return false;
    }
#else
    (void)nr;
    return false;
#endif
}

typedef struct code_range {
    uintptr_t start, end;
} code_range;

typedef struct code_ranges {
    code_range *v;
    size_t n, cap;
} code_ranges;

static int collect_code(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    code_ranges *cr = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        if (cr->n == cr->cap) {
            size_t nc = cr->cap ? cr->cap * 2 : 64;
            code_range *nv = lw__real_realloc(cr->v, nc * sizeof(*nv));
            if (!nv)
                return 1;
            cr->v = nv;
            cr->cap = nc;
        }
        cr->v[cr->n].start = info->dlpi_addr + ph->p_vaddr;
        cr->v[cr->n].end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        cr->n++;
    }
    return 0;
}

static bool in_code(const code_ranges *cr, uintptr_t a)
{
    for (size_t i = 0; i < cr->n; i++)
        if (a >= cr->v[i].start + 8 && a < cr->v[i].end)
            return true;
    return false;
}

static ssize_t read_mem(uintptr_t addr, void *buf, size_t len)
{
    struct iovec local = {buf, len}, remote = {(void *)addr, len};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
}

/* Does the code just before a look like a call instruction (x86-64)? */
static bool after_call(uintptr_t a)
{
#if defined(__x86_64__)
    unsigned char b[8];
    if (read_mem(a - 8, b, 8) != 8)
        return false;
    /* b[7] is the byte at a-1. */
    if (b[3] == 0xE8)
        return true; /* call rel32 */
    if (b[6] == 0xFF && (b[7] & 0x38) == 0x10)
        return true; /* call *%reg or (%reg) */
    if (b[5] == 0xFF && (b[6] & 0x38) == 0x10)
        return true; /* call disp8(%reg) */
    if (b[2] == 0xFF && (b[3] & 0x38) == 0x10)
        return true; /* call disp32(%reg) / *disp32(%rip) */
    if (b[1] == 0xFF && (b[2] & 0x38) == 0x10)
        return true; /* call disp32(%reg,%idx) */
    if (b[4] == 0xFF && (b[5] & 0x38) == 0x10)
        return true; /* call disp8(%reg,%idx) */
    return false;
#else
    (void)a;
    return false;
#endif
}

#define SCAN_BYTES (64 * 1024)

/* A thread started through our trampoline ends with trampoline,
 * start_thread and clone: past those, the scan would only find debris. */
#define FRAMES_AFTER_TRAMPOLINE 2

static void scan_stack(const code_ranges *cr, uintptr_t sp, uintptr_t pc, uintptr_t skip_lo,
                       uintptr_t skip_hi, lw_stack *st)
{
    st->n = 0;
    st->pc[st->n++] = pc;
    uintptr_t page[512];
    uintptr_t tramp = atomic_load_explicit(&trampoline_ret, memory_order_relaxed);
    int left = -1; /* frames still wanted after the trampoline, -1 before it */
    for (uintptr_t at = sp & ~(uintptr_t)7;
         at < sp + SCAN_BYTES && st->n < LW_MAX_FRAMES && left != 0;) {
        size_t want = sizeof page - (at & (sizeof page - 1));
        ssize_t got = read_mem(at, page, want);
        if (got <= 0)
            break;
        for (size_t i = 0; i < (size_t)got / sizeof(uintptr_t) && st->n < LW_MAX_FRAMES && left != 0;
             i++) {
            uintptr_t slot = at + i * sizeof(uintptr_t);
            if (slot >= skip_lo && slot < skip_hi)
                continue; /* run_registered()'s frame: debris */
            if (page[i] == st->pc[st->n - 1] || !in_code(cr, page[i]) || !after_call(page[i]))
                continue; /* not a return address, or a stale copy of the last one */
            st->pc[st->n++] = page[i];
            if (left > 0)
                left--;
            else if (tramp && page[i] == tramp)
                left = FRAMES_AFTER_TRAMPOLINE;
        }
        at += (uintptr_t)got;
    }
}

/* ---- capture ----------------------------------------------------------------- */

typedef struct cap_slot {
    pid_t tid;
    _Atomic int done;
    lw_stack st;
    uintptr_t skip_lo, skip_hi; /* its thread_rec's, for a stack scan */
} cap_slot;

static cap_slot *_Atomic cap_slots;
static _Atomic size_t cap_n;
static _Atomic int cap_in_handler;
static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static int cap_installed;
static struct sigaction cap_prev;

static void on_capture(int sig, siginfo_t *si, void *uctx)
{
    int saved = errno;
    bool ours = si && si->si_code == SI_TKILL && si->si_pid == getpid();
    if (ours) {
        atomic_fetch_add(&cap_in_handler, 1);
        cap_slot *slots = atomic_load(&cap_slots);
        size_t n = atomic_load(&cap_n);
        pid_t me = lw__gettid();
        for (size_t i = 0; slots && i < n; i++) {
            if (slots[i].tid == me && !atomic_load(&slots[i].done)) {
                lw__stack_from_signal(uctx, &slots[i].st);
                atomic_store(&slots[i].done, 1);
                break;
            }
        }
        atomic_fetch_sub(&cap_in_handler, 1);
    } else if ((cap_prev.sa_flags & SA_SIGINFO) && cap_prev.sa_sigaction) {
        cap_prev.sa_sigaction(sig, si, uctx);
    } else if (cap_prev.sa_handler != SIG_DFL && cap_prev.sa_handler != SIG_IGN &&
               cap_prev.sa_handler) {
        cap_prev.sa_handler(sig);
    }
    errno = saved;
}

static int install_capture_handler(void)
{
    if (cap_installed)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_capture;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(LW_CAPTURE_SIGNAL, &sa, &cap_prev) != 0)
        return -errno;
    cap_installed = 1;
    return 0;
}

static thread_rec *find_rec(pid_t tid)
{
    for (thread_rec *r = reg_live; r; r = r->next)
        if (r->tid == tid)
            return r;
    return NULL;
}

int lw__threads_capture(lw_thread_info **out, size_t *n_out)
{
    pid_t *tids = NULL;
    size_t n = 0;
    cap_slot *slots = NULL;
    lw_thread_info *info = NULL;
    int rc;

    pthread_mutex_lock(&cap_lock);
    rc = lw__list_tids(&tids, &n);
    if (rc != 0)
        goto out;
    info = lw__real_calloc(n ? n : 1, sizeof(*info));
    slots = lw__real_calloc(n ? n : 1, sizeof(*slots));
    if (!info || !slots) {
        rc = -ENOMEM;
        goto out;
    }
    int64_t now = lw__now_ns();
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < n; i++) {
        info[i].tid = tids[i];
        thread_rec *r = find_rec(tids[i]);
        if (r) {
            slots[i].skip_lo = atomic_load_explicit(&r->skip_lo, memory_order_relaxed);
            slots[i].skip_hi = atomic_load_explicit(&r->skip_hi, memory_order_relaxed);
            info[i].age_seconds = (now - r->start_ns) / 1000000000;
            if (info[i].age_seconds == 0)
                info[i].age_seconds = -1; /* known, under a second */
            info[i].creator_tid = r->creator_tid;
            if (r->from) {
                info[i].has_created_by = true;
                info[i].created_by = r->from->st;
            }
        }
    }
    pthread_mutex_unlock(&reg_lock);
    /* State first: the capture signal interrupts the syscall being waited in. */
    for (size_t i = 0; i < n; i++) {
        read_task(&info[i]);
        if (info[i].age_seconds < 0)
            info[i].age_seconds = 0;
    }

    rc = install_capture_handler();
    if (rc != 0)
        goto out;
    pid_t self = lw__gettid();
    for (size_t i = 0; i < n; i++)
        slots[i].tid = tids[i];
    atomic_store(&cap_n, n);
    atomic_store(&cap_slots, slots);
    pid_t pid = getpid();
    code_ranges cr = {NULL, 0, 0};
    lw__dl_iterate_phdr(collect_code, &cr);
    for (size_t i = 0; i < n; i++) {
        if (tids[i] != self && info[i].sys_pc && never_restarted(info[i].sys_nr)) {
            scan_stack(&cr, info[i].sys_sp, info[i].sys_pc, slots[i].skip_lo, slots[i].skip_hi,
                       &slots[i].st);
            info[i].stack_scanned = true;
            atomic_store(&slots[i].done, 1);
        } else if (tids[i] == self) {
            lw__stack_here(&slots[i].st, 0);
            atomic_store(&slots[i].done, 1);
        } else if (syscall(SYS_tgkill, pid, tids[i], LW_CAPTURE_SIGNAL) != 0) {
            atomic_store(&slots[i].done, -1); /* exited meanwhile */
        }
    }
    struct timespec start, now_ts;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        size_t pending = 0;
        for (size_t i = 0; i < n; i++)
            pending += atomic_load(&slots[i].done) == 0;
        if (pending == 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now_ts);
        int64_t waited_ms = (int64_t)(now_ts.tv_sec - start.tv_sec) * 1000 +
                            (now_ts.tv_nsec - start.tv_nsec) / 1000000;
        if (waited_ms >= LW_CAPTURE_WAIT_MS)
            break;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    lw__real_free(cr.v);
    atomic_store(&cap_slots, NULL);
    atomic_store(&cap_n, 0);
    while (atomic_load(&cap_in_handler) != 0)
        sched_yield();

    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int d = atomic_load(&slots[i].done);
        if (d < 0)
            continue; /* the thread is gone */
        info[k] = info[i];
        info[k].has_stack = d > 0 && slots[i].st.n > 0;
        if (info[k].has_stack)
            info[k].stack = slots[i].st;
        k++;
    }
    *out = info;
    *n_out = k;
    info = NULL;
out:
    pthread_mutex_unlock(&cap_lock);
    lw__real_free(tids);
    lw__real_free(slots);
    lw__real_free(info);
    return rc;
}

/* ---- fork ------------------------------------------------------------------ */

static void fork_prepare(void)
{
    pthread_mutex_lock(&reg_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&reg_lock);
}

static void fork_child(void)
{
    /* Only the forking thread exists in the child. */
    thread_rec *keep = tls_rec;
    for (thread_rec *r = reg_live, *next; r; r = next) {
        next = r->next;
        if (r != keep) {
            r->next = reg_free;
            reg_free = r;
        }
    }
    reg_live = keep;
    if (keep) {
        keep->next = keep->prev = NULL;
        keep->tid = lw__gettid();
    }
    pthread_mutex_unlock(&reg_lock);
    /* A capture in progress in the parent belongs to a thread that does not
     * exist here; its slots are the parent's business. */
    pthread_mutex_init(&cap_lock, NULL);
    atomic_store(&cap_slots, NULL);
    atomic_store(&cap_n, 0);
    atomic_store(&cap_in_handler, 0);
}

void lw__threads_init(void)
{
    if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
        lw__log("leakwatch-agent: pthread_atfork failed; fork() may deadlock\n");
}
