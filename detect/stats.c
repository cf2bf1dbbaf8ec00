/* stats.c — Mann–Kendall, Theil–Sen and quantiles (see stats.h).
 *
 * Everything here is plain arithmetic on caller-owned arrays plus short-lived
 * scratch copies; no global state, so it is safe from any thread.
 */
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double stats_norm_sf(double z)
{
    return 0.5 * erfc(z / sqrt(2.0));
}

/* Index of the k-th of m evenly spaced picks from n points (first and last
 * always included). */
static size_t pick(size_t k, size_t m, size_t n)
{
    if (m <= 1)
        return 0;
    return (size_t)(((double)k * (double)(n - 1)) / (double)(m - 1) + 0.5);
}

int stats_mann_kendall(const double *x, size_t n, stats_mk *out)
{
    int rc = 0;
    double *v = NULL;
    if (x == NULL || out == NULL || n < 3)
        return -EINVAL;
    size_t m = n > STATS_MK_MAX_POINTS ? STATS_MK_MAX_POINTS : n;
    v = malloc(m * sizeof(*v));
    if (v == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < m; k++)
        v[k] = x[pick(k, m, n)];

    double s = 0;
    for (size_t i = 0; i + 1 < m; i++)
        for (size_t j = i + 1; j < m; j++)
            s += (v[j] > v[i]) - (v[j] < v[i]);

    /* Tie groups: sort the values and measure runs of equal ones. */
    qsort(v, m, sizeof(*v), cmp_double);
    double dn = (double)m;
    double var = dn * (dn - 1) * (2 * dn + 5);
    for (size_t i = 0; i < m;) {
        size_t j = i + 1;
        while (j < m && v[j] == v[i])
            j++;
        double t = (double)(j - i);
        if (t > 1)
            var -= t * (t - 1) * (2 * t + 5);
        i = j;
    }
    var /= 18.0;

    double z = 0;
    if (var > 0) {
        if (s > 0)
            z = (s - 1) / sqrt(var);
        else if (s < 0)
            z = (s + 1) / sqrt(var);
    }
    out->s = s;
    out->var_s = var;
    out->z = z;
    out->p_rising = stats_norm_sf(z);
    out->n = m;
out:
    free(v);
    return rc;
}

int stats_theil_sen(const double *t, const double *y, size_t n, double *slope, double *intercept)
{
    int rc = 0;
    double *sl = NULL, *res = NULL;
    size_t *idx = NULL;
    if (t == NULL || y == NULL || slope == NULL || n < 2)
        return -EINVAL;
    size_t m = n > STATS_TS_MAX_POINTS ? STATS_TS_MAX_POINTS : n;
    idx = malloc(m * sizeof(*idx));
    sl = malloc((m * (m - 1) / 2) * sizeof(*sl));
    res = malloc(n * sizeof(*res));
    if (idx == NULL || sl == NULL || res == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < m; k++)
        idx[k] = pick(k, m, n);

    size_t ns = 0;
    for (size_t a = 0; a + 1 < m; a++) {
        for (size_t b = a + 1; b < m; b++) {
            double dt = t[idx[b]] - t[idx[a]];
            if (dt != 0)
                sl[ns++] = (y[idx[b]] - y[idx[a]]) / dt;
        }
    }
    if (ns == 0) {
        rc = -EINVAL;
        goto out;
    }
    double b = stats_quantile_inplace(sl, ns, 0.5);
    *slope = b;
    if (intercept != NULL) {
        for (size_t i = 0; i < n; i++)
            res[i] = y[i] - b * t[i];
        *intercept = stats_quantile_inplace(res, n, 0.5);
    }
out:
    free(idx);
    free(sl);
    free(res);
    return rc;
}

static void swap_d(double *a, double *b)
{
    double t = *a;
    *a = *b;
    *b = t;
}

/* Reorder x so that x[k] is the k-th smallest, everything before it <= and
 * everything after it >= (Hoare's quickselect, median-of-three pivot,
 * insertion sort for short ranges): O(n) expected, no allocation. */
static void select_kth(double *x, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (hi > lo + 16) {
        size_t mid = lo + (hi - lo) / 2;
        if (x[mid] < x[lo])
            swap_d(&x[mid], &x[lo]);
        if (x[hi] < x[lo])
            swap_d(&x[hi], &x[lo]);
        if (x[hi] < x[mid])
            swap_d(&x[hi], &x[mid]);
        double pivot = x[mid];
        size_t i = lo, j = hi;
        for (;;) {
            while (x[i] < pivot)
                i++;
            while (pivot < x[j])
                j--;
            if (i >= j)
                break;
            swap_d(&x[i], &x[j]);
            i++;
            j--;
        }
        /* x[lo..j] <= pivot <= x[j+1..hi] */
        if (k <= j)
            hi = j;
        else
            lo = j + 1;
    }
    for (size_t i = lo + 1; i <= hi; i++) {
        double v = x[i];
        size_t j = i;
        while (j > lo && x[j - 1] > v) {
            x[j] = x[j - 1];
            j--;
        }
        x[j] = v;
    }
}

double stats_quantile_inplace(double *x, size_t n, double q)
{
    if (x == NULL || n == 0)
        return NAN;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    if (lo > n - 1)
        lo = n - 1;
    double frac = pos - (double)lo;
    select_kth(x, n, lo);
    double v = x[lo];
    if (frac > 0 && lo + 1 < n) {
        /* The next order statistic is the smallest of the upper part. */
        double next = x[lo + 1];
        for (size_t i = lo + 2; i < n; i++)
            if (x[i] < next)
                next = x[i];
        v += (next - v) * frac;
    }
    return v;
}

double stats_quantile(const double *x, size_t n, double q)
{
    if (x == NULL || n == 0)
        return NAN;
    double *c = malloc(n * sizeof(*c));
    if (c == NULL)
        return NAN;
    memcpy(c, x, n * sizeof(*c));
    double r = stats_quantile_inplace(c, n, q);
    free(c);
    return r;
}

double stats_noise_sigma(const double *x, size_t n)
{
    if (x == NULL || n < 3)
        return 0;
    size_t m = n - 1;
    double *d = malloc(m * sizeof(*d));
    if (d == NULL)
        return 0;
    for (size_t i = 0; i < m; i++)
        d[i] = x[i + 1] - x[i];
    double med = stats_quantile_inplace(d, m, 0.5);
    for (size_t i = 0; i < m; i++)
        d[i] = fabs(d[i] - med);
    double mad = stats_quantile_inplace(d, m, 0.5);
    free(d);
    return 1.4826 * mad / sqrt(2.0);
}
