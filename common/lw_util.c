/* lw_util.c — error-message and clock helpers (see lw_util.h). */
#include "lw_util.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void lw_set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * LW_NS_PER_SECOND + ts.tv_nsec;
}

int64_t lw_wall_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

int64_t lw_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

void lw_malloc_keep_freed(void)
{
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

void lw_malloc_release_freed(void)
{
#ifdef M_TRIM_THRESHOLD
    malloc_trim(0);
#endif
}
