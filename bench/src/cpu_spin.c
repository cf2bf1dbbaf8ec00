/* cpu_spin.c — the CPU profiler benchmark: a CPU-bound program linked with
 * the agent, measuring its own work rate with the profiler off or running.
 *
 * It starts the agent on a free loopback port. With "on", a helper thread
 * asks the agent for /debug/pprof/profile?seconds=S+1 (100 Hz SIGPROF on
 * every thread) and the main thread starts working once the request is
 * sent; with "off" nobody asks. The main thread then runs S seconds of a
 * fixed integer workload in chunks and prints
 *   "mode=on chunks=N cpu_s=C wall_s=W chunks_per_cpu_s=R profile_bytes=B"
 * where cpu_s is the process's CPU time (every thread: the signal handlers
 * and the agent's own threads count against the profiler). B is the size of
 * the profile received (0 with "off"), a check that the profiler ran.
 *
 * Usage: cpu-spin on|off [SECONDS]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "leakwatch/agent.h"

static int g_port;
static int g_seconds = 5;
static long g_profile_bytes;
static volatile int g_sent;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *fetch_profile(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        g_sent = 1;
        return NULL;
    }
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /debug/pprof/profile?seconds=%d HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                     g_seconds + 1);
    if (write(fd, req, (size_t)n) != n)
        g_sent = 1;
    usleep(50000); /* let the agent arm its timers */
    g_sent = 1;
    char buf[65536];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0)
        g_profile_bytes += got;
    close(fd);
    return NULL;
}

static __attribute__((noinline)) uint64_t work_chunk(uint64_t x)
{
    for (int i = 0; i < 200000; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull + (x >> 29);
    return x;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "on") != 0 && strcmp(argv[1], "off") != 0)) {
        fprintf(stderr, "usage: cpu-spin on|off [SECONDS]\n");
        return 2;
    }
    bool on = strcmp(argv[1], "on") == 0;
    if (argc > 2)
        g_seconds = atoi(argv[2]) > 0 ? atoi(argv[2]) : 5;
    lw_agent_options o;
    lw_agent_options_init(&o);
    o.listen_addr = "127.0.0.1:0";
    char err[256];
    if (lw_agent_start(&o, err, sizeof err) != 0) {
        fprintf(stderr, "cpu-spin: agent: %s\n", err);
        return 1;
    }
    g_port = lw_agent_port();
    pthread_t t;
    if (on) {
        if (pthread_create(&t, NULL, fetch_profile, NULL) != 0)
            return 1;
        while (!g_sent)
            usleep(1000);
    }
    uint64_t x = 1;
    long chunks = 0;
    double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC), w;
    do {
        x = work_chunk(x);
        chunks++;
        w = clock_s(CLOCK_MONOTONIC);
    } while (w - w0 < g_seconds);
    double c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (on)
        pthread_join(t, NULL);
    printf("mode=%s chunks=%ld cpu_s=%.6f wall_s=%.6f chunks_per_cpu_s=%.3f profile_bytes=%ld x=%llu\n",
           argv[1], chunks, c1 - c0, w - w0, (double)chunks / (c1 - c0), g_profile_bytes,
           (unsigned long long)(x & 0xff));
    lw_agent_stop();
    return 0;
}
