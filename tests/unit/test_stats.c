/* test_stats.c — detect/stats.c against hand-computed values.
 *
 * Every expected number below is worked out by hand in the comment above its
 * check, so a reader can verify the formula rather than trust the code.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stats.h"

static void near(double got, double want, double tol, const char *what)
{
    printf("  %-40s got %.6f want %.6f (tol %.g)\n", what, got, want, tol);
    assert_true(fabs(got - want) <= tol);
}

/* x = 1 3 2 5 4, n = 5, no ties.
 * Pairs i<j, sign(x_j - x_i):
 *   x0=1: 3 2 5 4 all larger          +4
 *   x1=3: 2(-) 5(+) 4(+)              +1
 *   x2=2: 5(+) 4(+)                   +2
 *   x3=5: 4(-)                        -1   => S = 6
 * Var(S) = n(n-1)(2n+5)/18 = 5*4*15/18 = 16.6667
 * Z = (S-1)/sqrt(Var) = 5/4.08248 = 1.22474
 * p = 1 - Phi(1.22474) = 0.11033 */
static void mk_no_ties(void **state)
{
    (void)state;
    const double x[] = {1, 3, 2, 5, 4};
    stats_mk mk;
    assert_int_equal(stats_mann_kendall(x, 5, &mk), 0);
    near(mk.s, 6, 0, "S");
    near(mk.var_s, 300.0 / 18.0, 1e-9, "Var(S)");
    near(mk.z, 1.224745, 1e-5, "Z");
    near(mk.p_rising, 0.110335, 1e-5, "p");
}

/* x = 1 2 2 3 3 3, n = 6, tie groups of 2 (value 2) and 3 (value 3).
 *   x0=1: five larger                 +5
 *   x1=2: 2(0) 3 3 3(+)               +3
 *   x2=2: 3 3 3                       +3
 *   x3..x5 = 3: ties only              0   => S = 11
 * n(n-1)(2n+5) = 6*5*17 = 510; ties: t=2: 2*1*9 = 18; t=3: 3*2*11 = 66
 * Var(S) = (510 - 18 - 66)/18 = 426/18 = 23.6667
 * Z = (11-1)/sqrt(23.6667) = 10/4.86484 = 2.05556 */
static void mk_ties(void **state)
{
    (void)state;
    const double x[] = {1, 2, 2, 3, 3, 3};
    stats_mk mk;
    assert_int_equal(stats_mann_kendall(x, 6, &mk), 0);
    near(mk.s, 11, 0, "S");
    near(mk.var_s, 426.0 / 18.0, 1e-9, "Var(S) tie-corrected");
    near(mk.z, 2.055566, 1e-5, "Z");
}

/* Falling 5 4 3: S = -3, Var = 3*2*11/18 = 3.6667, Z = (S+1)/sqrt(Var)
 * = -2/1.91485 = -1.04447. All equal 2 2 2 2: S = 0 and Var = (4*3*13 -
 * 4*3*13)/18 = 0, so Z = 0 and p = 0.5. */
static void mk_falling_and_flat(void **state)
{
    (void)state;
    const double down[] = {5, 4, 3};
    const double flat[] = {2, 2, 2, 2};
    stats_mk mk;
    assert_int_equal(stats_mann_kendall(down, 3, &mk), 0);
    near(mk.s, -3, 0, "S falling");
    near(mk.z, -1.044466, 1e-5, "Z falling");
    assert_int_equal(stats_mann_kendall(flat, 4, &mk), 0);
    near(mk.s, 0, 0, "S flat");
    near(mk.var_s, 0, 0, "Var flat");
    near(mk.z, 0, 0, "Z flat");
    near(mk.p_rising, 0.5, 1e-12, "p flat");
    assert_int_equal(stats_mann_kendall(flat, 2, &mk), -EINVAL);
}

/* t = 0 1 2 3, y = 0 1 2 10. Pairwise slopes:
 *   (0,1) 1  (0,2) 1  (0,3) 10/3  (1,2) 1  (1,3) 9/2  (2,3) 8
 * sorted 1 1 1 3.3333 4.5 8 -> median (1 + 3.3333)/2 = 2.16667
 * intercept: y - 2.16667 t = 0, -1.16667, -2.33333, 3.5
 *   sorted -2.33333 -1.16667 0 3.5 -> median -0.583333 */
static void theil_sen_small(void **state)
{
    (void)state;
    const double t[] = {0, 1, 2, 3}, y[] = {0, 1, 2, 10};
    double b, a;
    assert_int_equal(stats_theil_sen(t, y, 4, &b, &a), 0);
    near(b, 13.0 / 6.0, 1e-9, "slope");
    near(a, -0.583333, 1e-5, "intercept");
}

/* y = 2t + 1 for t = 0..4 except y(2) = 100 (an outlier). Slopes of the six
 * pairs without t=2 are all 2; with t=2: 99/2, 97, -93, -91/2. Sorted: -93,
 * -45.5, 2, 2, 2, 2, 2, 2, 49.5, 97 -> median 2: the outlier is ignored. */
static void theil_sen_outlier(void **state)
{
    (void)state;
    const double t[] = {0, 1, 2, 3, 4}, y[] = {1, 3, 100, 7, 9};
    double b, a;
    assert_int_equal(stats_theil_sen(t, y, 5, &b, &a), 0);
    near(b, 2, 1e-12, "slope with outlier");
    near(a, 1, 1e-12, "intercept with outlier");
    const double same_t[] = {1, 1};
    assert_int_equal(stats_theil_sen(same_t, y, 2, &b, NULL), -EINVAL);
}

/* 1000 points on y = 3t + 5: subsampled to STATS_TS_MAX_POINTS, still 3. */
static void theil_sen_subsampled(void **state)
{
    (void)state;
    enum { N = 1000 };
    double *t = malloc(N * sizeof(*t)), *y = malloc(N * sizeof(*y));
    assert_non_null(t);
    assert_non_null(y);
    for (int i = 0; i < N; i++) {
        t[i] = i * 15.0;
        y[i] = 3 * t[i] + 5;
    }
    double b, a;
    assert_int_equal(stats_theil_sen(t, y, N, &b, &a), 0);
    near(b, 3, 1e-9, "slope n=1000");
    near(a, 5, 1e-6, "intercept n=1000");
    stats_mk mk;
    assert_int_equal(stats_mann_kendall(y, N, &mk), 0);
    /* Strictly rising: S = n(n-1)/2 = 499500. */
    near(mk.s, 499500, 0, "S n=1000");
    free(t);
    free(y);
}

/* Quantiles of 3 1 2 4 (sorted 1 2 3 4): q=0.5 -> position 1.5 -> 2.5;
 * q=0.1 -> position 0.3 -> 1 + 0.3 = 1.3; q=1 -> 4.
 * Noise sigma of 0 2 1 4 2: differences 2 -1 3 -2, median 0.5, absolute
 * deviations 1.5 1.5 2.5 2.5, MAD 2 -> 1.4826 * 2 / sqrt(2) = 2.96520 / 1.41421 = 2.09671. */
static void quantile_and_noise(void **state)
{
    (void)state;
    const double x[] = {3, 1, 2, 4};
    near(stats_quantile(x, 4, 0.5), 2.5, 1e-12, "median");
    near(stats_quantile(x, 4, 0.1), 1.3, 1e-12, "q10");
    near(stats_quantile(x, 4, 1.0), 4, 1e-12, "q100");
    near(x[0], 3, 0, "input untouched");
    assert_true(isnan(stats_quantile(x, 0, 0.5)));
    const double y[] = {0, 2, 1, 4, 2};
    near(stats_noise_sigma(y, 5), 2.096713, 1e-5, "noise sigma");
    near(stats_norm_sf(0), 0.5, 1e-12, "1-Phi(0)");
    near(stats_norm_sf(2.33), 0.009903, 1e-6, "1-Phi(2.33)");
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quickselect against a full sort on 2000 random arrays (sizes 1..400,
 * with and without many ties) at several quantiles. */
static void quantile_matches_sort(void **state)
{
    (void)state;
    double x[400], sorted[400];
    unsigned seed = 12345;
    int checked = 0;
    for (int rep = 0; rep < 2000; rep++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % 400);
        int ties = rep % 3 == 0;
        for (size_t i = 0; i < n; i++)
            x[i] = ties ? (double)(rand_r(&seed) % 7) : (double)rand_r(&seed) / RAND_MAX;
        memcpy(sorted, x, n * sizeof(*x));
        qsort(sorted, n, sizeof(*sorted), cmp_d);
        const double qs[] = {0, 0.1, 0.25, 0.5, 0.9, 1};
        for (size_t k = 0; k < 6; k++) {
            double pos = qs[k] * (double)(n - 1);
            size_t lo = (size_t)floor(pos);
            size_t hi = lo + 1 < n ? lo + 1 : lo;
            double want = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - (double)lo);
            double got = stats_quantile(x, n, qs[k]);
            if (fabs(got - want) > 1e-12) {
                printf("n=%zu q=%g: got %.17g want %.17g\n", n, qs[k], got, want);
                fail();
            }
            checked++;
        }
    }
    printf("  %d quantiles equal to the sorted reference\n", checked);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mk_no_ties),         cmocka_unit_test(mk_ties),
        cmocka_unit_test(mk_falling_and_flat), cmocka_unit_test(theil_sen_small),
        cmocka_unit_test(theil_sen_outlier),   cmocka_unit_test(theil_sen_subsampled),
        cmocka_unit_test(quantile_and_noise),  cmocka_unit_test(quantile_matches_sort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
