/* detect.c — the leak detector on one series (see detect.h and detect/README.md).
 *
 * Pure computation on caller-owned arrays: the engine (engine.c), the unit
 * tests and any tool call the same detect_series(), so the labelled synthetic
 * set in tests/unit/test_detect.c exercises exactly what the daemon runs.
 */
#include "detect.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* Largest fall of the rolling low quantile (q25 over w points) of v[0..n):
 * max over i of (highest rolling value before i) - (rolling value at i). A
 * leak's floor only climbs; periodic load and rise-and-recover fall back.
 * The window is kept sorted in win[0..w) and slid by one removal and one
 * insertion per step: O(n w). */
static double floor_drawdown(const double *v, size_t n, size_t w, double *win)
{
    double peak = -INFINITY, dd = 0;
    if (w > n)
        w = n;
    if (w == 0)
        return 0;
    memcpy(win, v, w * sizeof(*win));
    for (size_t i = 1; i < w; i++) {
        double x = win[i];
        size_t j = i;
        while (j > 0 && win[j - 1] > x) {
            win[j] = win[j - 1];
            j--;
        }
        win[j] = x;
    }
    double pos = 0.25 * (double)(w - 1);
    size_t lo = (size_t)floor(pos);
    double frac = pos - (double)lo;
    for (size_t i = 0;; i++) {
        double r = win[lo] + (lo + 1 < w ? (win[lo + 1] - win[lo]) * frac : 0);
        if (r > peak)
            peak = r;
        if (peak - r > dd)
            dd = peak - r;
        if (i + w >= n)
            break;
        /* Slide: drop v[i], add v[i + w]. */
        size_t k = 0;
        while (k < w && win[k] != v[i])
            k++;
        if (k == w)
            k = w - 1; /* cannot happen: v[i] is in the window */
        memmove(win + k, win + k + 1, (w - 1 - k) * sizeof(*win));
        double x = v[i + w];
        size_t j = w - 1;
        while (j > 0 && win[j - 1] > x) {
            win[j] = win[j - 1];
            j--;
        }
        win[j] = x;
    }
    return dd;
}

/* Points before a candidate restart whose median it is compared with. */
#define RESTART_LOOKBACK 5

static const char *const signal_names[DETECT_N_SIGNALS] = {
    "goroutines", "heap_inuse_bytes", "heap_inuse_objects"};

const char *detect_signal_name(int signal)
{
    if (signal < 0 || signal >= DETECT_N_SIGNALS)
        return NULL;
    return signal_names[signal];
}

void detect_config_default(detect_config *c)
{
    memset(c, 0, sizeof(*c));
    c->window_ns = 30LL * 60 * 1000000000LL;
    c->min_samples = 10;
    c->z_min = 2.33;
    c->restart_frac = 0.5;
    c->recent_k = 1.64;
    c->recent_frac = 0.3;
    c->recent_own_frac = 0.3;
    c->floor_quantile = 0.1;
    c->floor_frac = 0.25;
    c->drawdown_frac = 0.5;
    c->top_stacks = 5;
    c->attribution_profiles = 10;
    c->signals[DETECT_GOROUTINES] = (detect_threshold){true, 10, 0.05, ""};
    c->signals[DETECT_HEAP_INUSE_BYTES] = (detect_threshold){true, 4.0 * 1024.0 * 1024.0, 0.05, ""};
    c->signals[DETECT_HEAP_INUSE_OBJECTS] = (detect_threshold){true, 10000, 0.05, ""};
}

/* Index where the analysed segment starts: just after the last restart. */
static size_t find_segment_start(const detect_config *cfg, const double *v, size_t n)
{
    size_t start = 0;
    double seg_min = n > 0 ? v[0] : 0;
    double prev[RESTART_LOOKBACK];
    for (size_t i = 1; i < n; i++) {
        size_t from = i > start + RESTART_LOOKBACK ? i - RESTART_LOOKBACK : start;
        size_t m = i - from;
        if (m >= 2) {
            memcpy(prev, v + from, m * sizeof(*prev));
            double med = stats_quantile_inplace(prev, m, 0.5);
            if (med > 0 && v[i] < cfg->restart_frac * med && v[i] < seg_min) {
                start = i;
                seg_min = v[i];
                continue;
            }
        }
        if (v[i] < seg_min)
            seg_min = v[i];
    }
    return start;
}

static void fmt_reason(detect_verdict *out, const char *fmt, ...) LW_PRINTF(2, 3);
static void fmt_reason(detect_verdict *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
}

/* detect_series() on points that are finite and in time order. */
static int judge(const detect_config *cfg, int signal, const int64_t *times_ns, const double *values,
                 size_t n, detect_verdict *out)
{
    int rc = 0;
    double *t = NULL, *scratch = NULL;
    memset(out, 0, sizeof(*out));
    out->signal = signal;
    if (n == 0) {
        fmt_reason(out, "no samples in the window");
        return 0;
    }

    size_t s0 = find_segment_start(cfg, values, n);
    const double *v = values + s0;
    const int64_t *tn = times_ns + s0;
    size_t m = n - s0;
    out->restart_ns = s0 > 0 ? times_ns[s0] : 0;
    out->window_start_ns = tn[0];
    out->window_end_ns = tn[m - 1];
    out->n_samples = m;
    size_t need = cfg->min_samples < 6 ? 6 : cfg->min_samples;
    if (m < need) {
        fmt_reason(out, "%zu samples%s, need %zu", m, s0 > 0 ? " since a restart" : " in the window",
                   need);
        return 0;
    }

    t = malloc(m * sizeof(*t));
    scratch = malloc(m * sizeof(*scratch));
    if (t == NULL || scratch == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m; i++)
        t[i] = (double)(tn[i] - tn[0]) / 1e9;
    double span = t[m - 1];
    if (span <= 0) {
        fmt_reason(out, "all %zu samples at the same time", m);
        goto out;
    }

    stats_mk mk;
    rc = stats_mann_kendall(v, m, &mk);
    if (rc < 0)
        goto out;
    double slope = 0;
    rc = stats_theil_sen(t, v, m, &slope, NULL);
    if (rc < 0)
        goto out;
    out->evaluated = true;
    out->score = mk.z;
    out->p_value = mk.p_rising;
    out->slope_per_second = slope;
    out->growth = slope * span;

    /* Thirds by index: scrapes are regular, and a third then always holds
     * the same number of points. */
    size_t a = m / 3, b = (2 * m) / 3;
    size_t n1 = a, n2 = b - a, n3 = m - b;
    memcpy(scratch, v, n1 * sizeof(*scratch));
    double m1 = stats_quantile_inplace(scratch, n1, 0.5);
    double q1 = stats_quantile_inplace(scratch, n1, cfg->floor_quantile);
    memcpy(scratch, v + a, n2 * sizeof(*scratch));
    double m2 = stats_quantile_inplace(scratch, n2, 0.5);
    memcpy(scratch, v + b, n3 * sizeof(*scratch));
    double m3 = stats_quantile_inplace(scratch, n3, 0.5);
    double q3 = stats_quantile_inplace(scratch, n3, cfg->floor_quantile);
    double slope3 = 0;
    rc = stats_theil_sen(t + b, v + b, n3, &slope3, NULL);
    if (rc == -ENOMEM)
        goto out;
    rc = 0; /* -EINVAL: the last third shares one time; treat as flat */
    double growth3 = slope3 * (t[m - 1] - t[b]);
    double dd = floor_drawdown(v, m, m / 6 < 4 ? 4 : m / 6, scratch);
    double sigma = stats_noise_sigma(v, m);
    /* Standard error of a difference of two medians of n2 and n3 points with
     * normal noise: 1.2533 sigma sqrt(1/n2 + 1/n3). */
    double se_med = 1.2533 * sigma * sqrt(1.0 / (double)n2 + 1.0 / (double)n3);
    /* Standard error of a fitted rise over n3 evenly spaced points with
     * noise sigma: sigma sqrt(12 / n3) (least squares; Theil–Sen is close). */
    double se_growth3 = sigma * sqrt(12.0 / (double)n3);
    out->level = m1;
    out->first_value = m1;
    out->last_value = m3;

    const detect_threshold *th = &cfg->signals[signal];
    double rel_need = th->min_relative_growth * fabs(m1);
    if (mk.z < cfg->z_min) {
        fmt_reason(out, "no significant rise: Mann-Kendall Z=%.2f < %.2f", mk.z, cfg->z_min);
    } else if (slope <= 0) {
        fmt_reason(out, "Theil-Sen slope %.4g/s is not positive", slope);
    } else if (out->growth < th->min_growth) {
        fmt_reason(out, "growth %.6g over %.0fs is below the minimum %.6g", out->growth, span,
                   th->min_growth);
    } else if (out->growth < rel_need) {
        fmt_reason(out, "growth %.6g is %.1f%% of the level %.6g, below %.1f%%", out->growth,
                   m1 != 0 ? 100.0 * out->growth / fabs(m1) : 0.0, m1,
                   100.0 * th->min_relative_growth);
    } else if (m3 - m2 <= cfg->recent_k * se_med || m3 <= m2) {
        fmt_reason(out,
                   "not rising recently: median of the last third %.6g vs middle third %.6g "
                   "(noise threshold %.3g)",
                   m3, m2, cfg->recent_k * se_med);
    } else if (m2 - m1 > 0 && m3 - m2 < cfg->recent_frac * (m2 - m1)) {
        fmt_reason(out,
                   "levelling off: last third rose %.6g, middle third %.6g (need %.0f%% of it)",
                   m3 - m2, m2 - m1, 100.0 * cfg->recent_frac);
    } else if (growth3 + se_growth3 < cfg->recent_own_frac * (m3 - m2)) {
        fmt_reason(out,
                   "last third flat on its own (growth %.6g vs %.6g between thirds): a one-off step",
                   growth3, m3 - m2);
    } else if (q3 - q1 <= 0 || q3 - q1 < cfg->floor_frac * out->growth) {
        fmt_reason(out, "floor not rising: q%.0f %.6g -> %.6g while growth is %.6g (sawtooth or periodic load)",
                   100.0 * cfg->floor_quantile, q1, q3, out->growth);
    } else if (dd > cfg->drawdown_frac * out->growth) {
        fmt_reason(out, "floor fell by %.6g on the way (%.0f%% of the growth %.6g): periodic load or "
                        "rise and recover", dd, 100.0 * dd / out->growth, out->growth);
    } else {
        out->suspected = true;
        fmt_reason(out, "rising %.6g over %.0fs (%.4g/h), Mann-Kendall Z=%.2f, floor %.6g -> %.6g",
                   out->growth, span, slope * 3600.0, mk.z, q1, q3);
    }
out:
    free(t);
    free(scratch);
    return rc;
}

int detect_series(const detect_config *cfg, int signal, const int64_t *times_ns,
                  const double *values, size_t n, detect_verdict *out)
{
    if (cfg == NULL || out == NULL || signal < 0 || signal >= DETECT_N_SIGNALS ||
        (n > 0 && (times_ns == NULL || values == NULL)))
        return -EINVAL;
    /* Points that are not finite or go back in time (never written by the
     * store, but this is the detector's contract) are left out. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(values[i]) && (m == 0 || times_ns[i] >= times_ns[m - 1]))
            m++;
    if (m == n)
        return judge(cfg, signal, times_ns, values, n, out);
    int64_t *t = malloc((m ? m : 1) * sizeof(*t));
    double *v = malloc((m ? m : 1) * sizeof(*v));
    int rc = -ENOMEM;
    if (t != NULL && v != NULL) {
        m = 0;
        for (size_t i = 0; i < n; i++) {
            if (isfinite(values[i]) && (m == 0 || times_ns[i] >= t[m - 1])) {
                t[m] = times_ns[i];
                v[m++] = values[i];
            }
        }
        rc = judge(cfg, signal, t, v, m, out);
    }
    free(t);
    free(v);
    return rc;
}
