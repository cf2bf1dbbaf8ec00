/* malloc_ring.c — the agent's heap-sampling microbenchmark: N malloc/free
 * pairs of 16..1040 bytes in a ring of live blocks, so the allocator sees a
 * steady live set and every free is of a block allocated earlier.
 *
 * Built without the agent; the bench driver runs it plain, under a bare
 * forwarding LD_PRELOAD wrapper (the floor) and under the agent. It prints
 * one line: "ops=N cpu_s=S wall_s=W ns_per_op=X" where cpu_s is the
 * process's CPU time (all threads) for the loop only.
 *
 * Usage: malloc-ring [N] [RING]   (defaults 20000000, 4096)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000000L;
    long ring = argc > 2 ? atol(argv[2]) : 4096;
    if (n <= 0 || ring <= 0 || ring > (1L << 24)) {
        fprintf(stderr, "usage: malloc-ring [N] [RING]\n");
        return 2;
    }
    char **slots = calloc((size_t)ring, sizeof(*slots));
    if (!slots)
        return 1;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint64_t sum = 0;
    double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = (size_t)(x % (uint64_t)ring);
        size_t sz = 16 + (size_t)((x >> 32) % 1025);
        free(slots[k]);
        char *p = malloc(sz);
        if (!p)
            return 1;
        p[0] = (char)i;
        sum += (uint64_t)(unsigned char)p[0];
        slots[k] = p;
    }
    double c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w1 = clock_s(CLOCK_MONOTONIC);
    for (long k = 0; k < ring; k++)
        free(slots[k]);
    free(slots);
    printf("ops=%ld cpu_s=%.6f wall_s=%.6f ns_per_op=%.3f sum=%llu\n", n, c1 - c0, w1 - w0,
           (c1 - c0) * 1e9 / (double)n, (unsigned long long)(sum & 0xff));
    return 0;
}
