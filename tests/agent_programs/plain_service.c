/* plain_service.c — an unmodified C program for the agent's LD_PRELOAD test:
 * it knows nothing about leakwatch (built without the agent). It starts
 * worker threads blocked in read(2) on a pipe and threads sleeping in a
 * sleep(3) loop, retains some heap memory from plain_retain_memory(),
 * prints "ready" and waits for SIGTERM.
 *
 * Usage: plain_service N_THREADS N_MIB [N_SLEEPERS [N_FDS]]
 * N_FDS: keep that many more descriptors open (of /dev/null), raising the
 * soft RLIMIT_NOFILE as far as the hard one allows, so that the agent's
 * connections get descriptors past FD_SETSIZE (1024) as in a busy server.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int pipe_fds[2];

static void *plain_blocked_worker(void *arg)
{
    (void)arg;
    char c;
    while (read(pipe_fds[0], &c, 1) != 0)
        ;
    return NULL;
}

static void *plain_sleeping_worker(void *arg)
{
    (void)arg;
    for (;;)
        sleep(3600); /* never awake when captured: always scanned, never signalled */
    return NULL;
}

static __attribute__((noinline)) char **plain_retain_memory(int mib)
{
    char **v = calloc((size_t)mib, sizeof(*v));
    for (int i = 0; v && i < mib; i++) {
        v[i] = malloc(1 << 20);
        if (v[i])
            memset(v[i], 1, 1 << 20);
    }
    return v;
}

int main(int argc, char **argv)
{
    int n_threads = argc > 1 ? atoi(argv[1]) : 4;
    int mib = argc > 2 ? atoi(argv[2]) : 8;
    int n_sleepers = argc > 3 ? atoi(argv[3]) : 0;
    int n_fds = argc > 4 ? atoi(argv[4]) : 0;
    if (n_fds > 0) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        int last = -1;
        for (int i = 0; i < n_fds; i++) {
            int fd = open("/dev/null", O_RDONLY); /* kept open until exit */
            if (fd < 0) {
                perror("open /dev/null");
                return 1;
            }
            last = fd;
        }
        printf("descriptors up to %d open\n", last);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (pipe(pipe_fds) != 0)
        return 1;
    for (int i = 0; i < n_threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, plain_blocked_worker, NULL) != 0)
            return 1;
        pthread_detach(t);
    }
    for (int i = 0; i < n_sleepers; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, plain_sleeping_worker, NULL) != 0)
            return 1;
        pthread_detach(t);
    }
    char **kept = plain_retain_memory(mib);
    printf("ready threads=%d mib=%d\n", n_threads, mib);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    for (int i = 0; kept && i < mib; i++)
        free(kept[i]);
    free(kept);
    return 0;
}
