/* malloc_stress.c — the agent's stress program (built without the agent,
 * run with LD_PRELOAD). N worker threads each do OPS mixed operations
 * (malloc, calloc, realloc, free, posix_memalign, aligned_alloc, and swaps
 * with a shared exchange array so blocks are freed by other threads than
 * allocated them). Workers exit and are replaced every OPS/GENERATIONS
 * operations; a forker thread keeps forking children that allocate, free and
 * then either exec /bin/true or _exit. At the end it prints
 *   LIVE <bytes> <count> FORKS <n> FAILED_CHILDREN <n> SIGMA <bytes>
 * (the requested sizes of every block still allocated by stress_worker, and
 * the standard deviation of a Poisson-sampled, unsampled estimate of those
 * bytes at LEAKWATCH_HEAP_RATE: sum of s^2 (1-p)/p with p = 1-exp(-s/rate)) and
 * waits for SIGTERM, so a test can compare the heap profile with the truth.
 *
 * Usage: malloc_stress THREADS OPS [GENERATIONS]
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 2048
#define EXCHANGE 1024

typedef struct block {
    void *p;
    size_t size;
} block;

typedef struct worker {
    block slots[SLOTS];
    uint64_t rng;
    long ops;
} worker;

static block exchange[EXCHANGE];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int stop_forking;
static atomic_long n_forks, n_failed_children;

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = next(s) % 1000;
    if (r < 900)
        return 1 + next(s) % 512;
    if (r < 995)
        return 512 + next(s) % 16384;
    return 65536 + next(s) % (1 << 20);
}

static void release(block *b)
{
    free(b->p);
    b->p = NULL;
    b->size = 0;
}

static __attribute__((noinline)) void *stress_worker(void *arg)
{
    worker *w = arg;
    for (long i = 0; i < w->ops; i++) {
        block *b = &w->slots[next(&w->rng) % SLOTS];
        uint64_t op = next(&w->rng) % 10;
        size_t n = pick_size(&w->rng);
        if (b->p && op < 4) {
            if (op == 0) {
                void *q = realloc(b->p, n);
                if (q) {
                    b->p = q;
                    b->size = n;
                }
            } else if (op == 1) {
                pthread_mutex_lock(&exchange_lock);
                block *e = &exchange[next(&w->rng) % EXCHANGE];
                block t = *e;
                *e = *b;
                *b = t;
                pthread_mutex_unlock(&exchange_lock);
            } else {
                release(b);
            }
            continue;
        }
        if (b->p)
            release(b);
        void *p = NULL;
        switch (op % 5) {
        case 0:
            p = calloc(1, n);
            break;
        case 1:
            if (posix_memalign(&p, 64, n) != 0)
                p = NULL;
            break;
        case 2:
            p = aligned_alloc(32, (n + 31) & ~(size_t)31);
            if (p)
                n = (n + 31) & ~(size_t)31;
            break;
        default:
            p = malloc(n);
            break;
        }
        if (p) {
            ((char *)p)[0] = 1;
            b->p = p;
            b->size = n;
        }
    }
    return NULL;
}

static void *forker(void *arg)
{
    (void)arg;
    int k = 0;
    while (!atomic_load(&stop_forking)) {
        pid_t pid = fork();
        if (pid == 0) {
            /* The child: the allocator and the agent must still work. */
            for (int i = 0; i < 1000; i++) {
                char *p = malloc(100 + (size_t)i);
                if (!p)
                    _exit(3);
                free(p);
            }
            if (k % 2 == 0) {
                char *argv[] = {"/bin/true", NULL};
                execv("/bin/true", argv);
                _exit(4);
            }
            _exit(0);
        }
        if (pid > 0) {
            int st = 0;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            atomic_fetch_add(&n_forks, 1);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                atomic_fetch_add(&n_failed_children, 1);
        }
        k++;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    long ops = argc > 2 ? atol(argv[2]) : 2000000;
    int gens = argc > 3 ? atoi(argv[3]) : 4;
    if (threads < 1 || threads > 64 || ops < 1 || gens < 1)
        return 2;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    worker *w = calloc((size_t)threads, sizeof(*w));
    if (!w)
        return 1;
    pthread_t fk;
    if (pthread_create(&fk, NULL, forker, NULL) != 0)
        return 1;
    for (int t = 0; t < threads; t++)
        w[t].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
    for (int g = 0; g < gens; g++) {
        /* Each generation's threads exit; the next ones continue their data. */
        pthread_t th[64];
        for (int t = 0; t < threads; t++) {
            w[t].ops = ops / gens;
            if (pthread_create(&th[t], NULL, stress_worker, &w[t]) != 0)
                return 1;
        }
        for (int t = 0; t < threads; t++)
            pthread_join(th[t], NULL);
    }
    atomic_store(&stop_forking, 1);
    pthread_join(fk, NULL);

    const char *rate_env = getenv("LEAKWATCH_HEAP_RATE");
    double rate = rate_env ? atof(rate_env) : 524288.0;
    unsigned long long bytes = 0, count = 0;
    double var = 0;
    for (int t = 0; t <= threads; t++) {
        block *v = t < threads ? w[t].slots : exchange;
        int n = t < threads ? SLOTS : EXCHANGE;
        for (int i = 0; i < n; i++) {
            if (!v[i].p)
                continue;
            double sz = (double)v[i].size;
            bytes += v[i].size;
            count++;
            if (rate > 1) {
                double p = 1.0 - exp(-sz / rate);
                var += sz * sz * (1.0 - p) / p;
            }
        }
    }
    printf("LIVE %llu %llu FORKS %ld FAILED_CHILDREN %ld SIGMA %.0f\n", bytes, count,
           atomic_load(&n_forks), atomic_load(&n_failed_children), sqrt(var));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    return 0;
}
