/* lw_util.h — tiny helpers every component needs: error messages and clocks.
 *
 * Kept here so each module does not grow its own copy. All functions are
 * thread-safe and cannot fail.
 */
#ifndef LW_UTIL_H
#define LW_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"

#define LW_NS_PER_SECOND INT64_C(1000000000)

/* Format a one-line message into err (err_len bytes, always NUL-terminated).
 * Does nothing when err is NULL or err_len is 0. */
void lw_set_err(char *err, size_t err_len, const char *fmt, ...) LW_PRINTF(3, 4);

/* Wall-clock time (CLOCK_REALTIME) in nanoseconds since the Unix epoch. */
int64_t lw_wall_ns(void);

/* Monotonic time (CLOCK_MONOTONIC) in nanoseconds, for intervals. */
int64_t lw_mono_ns(void);

/* For a process that decodes big profiles again and again (leakwatchd and
 * the storage tools): keep freed heap memory for reuse instead of handing
 * it back to the kernel after every profile. glibc otherwise serves each
 * big buffer (a 67k-sample heap profile decodes to ~15 MB) with fresh
 * mmap'd or re-grown pages and faults them in anew: a third of the decode
 * time in bench/ (see bench/README.md §5). Allocations up to 32 MiB come
 * from the heap and up to 256 MiB of free heap top stays mapped (a batch of
 * big profiles, freed together, leaves more than 64 MiB there: glibc gave
 * it back after every batch). Peak memory is unchanged; what is kept is
 * handed back by lw_malloc_release_freed(), which a long-running process
 * calls now and then. Call once, first thing in main(); a no-op under
 * allocators other than glibc's. Never called by the agent, which lives
 * inside someone else's process. */
void lw_malloc_keep_freed(void);

/* Hand the free memory kept since the last call back to the kernel
 * (glibc's malloc_trim): leakwatchd does so once a retention interval, so
 * memory kept after a burst of big profiles does not stay resident. */
void lw_malloc_release_freed(void);

#endif
