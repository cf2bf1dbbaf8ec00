/* plain_service.c — an unmodified C program for the agent's LD_PRELOAD test:
 * it knows nothing about leakwatch (built without the agent). It starts
 * worker threads blocked in read(2) on a pipe and threads sleeping in a
 * sleep(3) loop, retains some heap memory from plain_retain_memory(),
 * prints "ready" and waits for SIGTERM.
 *
 * Usage: plain_service N_THREADS N_MIB [N_SLEEPERS]
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
