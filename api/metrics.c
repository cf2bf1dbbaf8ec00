/* metrics.c — the process_* metric families of the running process, read
 * from /proc/self like Prometheus' client libraries do.
 *
 * Families: process_cpu_seconds_total, process_open_fds, process_max_fds,
 * process_virtual_memory_bytes, process_resident_memory_bytes,
 * process_start_time_seconds, process_threads. A value that cannot be read
 * (no /proc) is left out together with its HELP/TYPE lines, never faked.
 */
#include "api_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Read a small /proc file into buf (NUL-terminated). 0 or -errno. */
static int read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n ? 0 : -EIO;
}

static int family(lw_buf *out, const char *name, const char *type, const char *help, double v)
{
    return lw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static long long boot_time_seconds(void)
{
    char buf[8192];
    if (read_small("/proc/stat", buf, sizeof buf))
        return -1;
    const char *p = strstr(buf, "\nbtime ");
    return p ? strtoll(p + 7, NULL, 10) : -1;
}

static long long count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

int api__process_metrics(lw_buf *out)
{
    int rc = 0;
    char stat[2048];
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (read_small("/proc/self/stat", stat, sizeof stat) == 0 && ticks > 0 && page > 0) {
        /* Fields after the command name, which is in parentheses and may hold spaces. */
        const char *p = strrchr(stat, ')');
        unsigned long long utime = 0, stime = 0, starttime = 0, vsize = 0;
        long long rss = 0, threads = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %lld "
                        "%*d %llu %llu %lld",
                        &utime, &stime, &threads, &starttime, &vsize, &rss) == 6) {
            rc = family(out, "process_cpu_seconds_total", "counter",
                        "Total user and system CPU time spent in seconds.",
                        (double)(utime + stime) / (double)ticks);
            if (!rc)
                rc = family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                            (double)vsize);
            if (!rc)
                rc = family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                            (double)rss * (double)page);
            if (!rc)
                rc = family(out, "process_threads", "gauge", "Number of OS threads in the process.",
                            (double)threads);
            long long btime = boot_time_seconds();
            if (!rc && btime >= 0)
                rc = family(out, "process_start_time_seconds", "gauge",
                            "Start time of the process since unix epoch in seconds.",
                            (double)btime + (double)starttime / (double)ticks);
        }
    }
    long long fds = count_open_fds();
    if (!rc && fds >= 0)
        rc = family(out, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    struct rlimit rl;
    if (!rc && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        rc = family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                    (double)rl.rlim_cur);
    return rc;
}
