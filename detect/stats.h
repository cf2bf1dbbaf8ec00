/* stats.h — robust trend statistics for leak detection: Mann–Kendall, Theil–Sen, quantiles.
 *
 * Mann–Kendall answers "is this series rising?" without assuming a shape or a
 * noise distribution: S counts concordant minus discordant pairs, Var(S) is
 * corrected for ties (integer goroutine counts tie a lot), and Z applies the
 * usual continuity correction. Theil–Sen answers "how fast?": the median of
 * all pairwise slopes, which ignores up to ~29% outliers (bursts, GC spikes).
 *
 * Cost: both are O(n^2) in time over pairs; Theil–Sen also keeps the pairwise
 * slopes in memory, so inputs longer than STATS_TS_MAX_POINTS are subsampled
 * to that many evenly spaced points (the slope estimate is unchanged in
 * expectation; at 200 points that is 19,900 slopes, 160 KiB, and the median
 * is found by quickselect). A detection window is 30 min at a 15 s scrape
 * interval = 120 points, under the bound. Mann–Kendall is computed exactly
 * on all points up to STATS_MK_MAX_POINTS and subsampled the same way beyond
 * it. Measured (-O2, one core): detect_series() takes 0.13 ms at 120 points,
 * 1.3 ms at 400, 3.4 ms at 1000.
 *
 * Errors: 0 on success, -EINVAL for bad arguments (n too small, NULL),
 * -ENOMEM when scratch memory cannot be allocated. Inputs are never modified
 * unless the function says so. All functions are thread-safe (no state).
 */
#ifndef LW_STATS_H
#define LW_STATS_H

#include <stddef.h>

#include "lw_buf.h"

#define STATS_TS_MAX_POINTS 200
#define STATS_MK_MAX_POINTS 4000

typedef struct stats_mk {
    double s;        /* Mann–Kendall S: #(x_j > x_i) - #(x_j < x_i) over i < j */
    double var_s;    /* tie-corrected variance of S under "no trend" */
    double z;        /* (S - sgn(S)) / sqrt(Var(S)), 0 when S == 0 */
    double p_rising; /* one-sided p-value of "rising": 1 - Phi(z) */
    size_t n;        /* points used (after subsampling) */
} stats_mk;

/* Mann–Kendall test of x[0..n) taken in order (oldest first). n >= 3.
 * Var(S) = [n(n-1)(2n+5) - sum over tie groups t(t-1)(2t+5)] / 18. When
 * Var(S) is 0 (all values equal) z is 0 and p_rising 0.5. */
int stats_mann_kendall(const double *x, size_t n, stats_mk *out) LW_WUR;

/* Theil–Sen estimate of y = a + b*t over points (t[i], y[i]), n >= 2:
 * *slope = median of (y_j - y_i) / (t_j - t_i) over pairs with t_j != t_i,
 * *intercept (may be NULL) = median of y_i - slope * t_i. -EINVAL when no
 * pair has distinct times. */
int stats_theil_sen(const double *t, const double *y, size_t n, double *slope,
                    double *intercept) LW_WUR;

/* The q-quantile (0 <= q <= 1, linear interpolation between order
 * statistics, like numpy's default) of x[0..n), n >= 1, by quickselect in
 * O(n): reorders x in place (the values stay the same multiset). Cannot
 * fail for valid arguments; returns NAN for n == 0. */
double stats_quantile_inplace(double *x, size_t n, double q);

/* The same on a copy: x is left untouched. NAN when n == 0 or out of memory. */
double stats_quantile(const double *x, size_t n, double q);

/* Robust noise scale of a series: 1.4826 * MAD of first differences / sqrt(2),
 * an estimate of the per-point noise sigma that a linear trend or a few steps
 * do not inflate. 0 for n < 3 or when most differences are equal. */
double stats_noise_sigma(const double *x, size_t n);

/* Standard normal upper tail 1 - Phi(z). Cannot fail. */
double stats_norm_sf(double z);

#endif
