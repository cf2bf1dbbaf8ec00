/* detect.h — leakwatch's leak detector: trend tests over stored series, attribution, engine.
 *
 * The algorithm (why each step exists is in detect/README.md):
 *   1. Take the target's points of one signal over the last `window`.
 *   2. Restarts: a point that falls below restart_frac x the median of the
 *      previous few points AND below the lowest value seen so far in the
 *      window starts the window afresh at that point (a restarted process
 *      forgets its leak; a GC sawtooth returns to its usual floor, not below).
 *   3. At least min_samples points must remain.
 *   4. Mann–Kendall Z >= z_min (one-sided "rising", default 2.33 = 1%).
 *   5. Theil–Sen slope > 0; growth = slope x span of the points.
 *   6. growth >= the signal's min_growth and >= min_relative_growth x level
 *      (level = median of the first third).
 *   7. Still rising now, with m1, m2, m3 the medians of the window's thirds:
 *      m3 - m2 exceeds recent_k standard errors of a median difference
 *      (noise from first differences); m3 - m2 >= recent_frac x (m2 - m1);
 *      and the last third's own Theil–Sen growth plus one standard error is
 *      >= recent_own_frac x (m3 - m2). Warm-ups that level off, leaks that
 *      stopped, one-off steps (flat on both sides) and rise-then-recover
 *      fail here.
 *   8. The floor rises: the floor_quantile of the last third minus that of the
 *      first third must be > 0 and >= floor_frac x growth. A GC sawtooth or
 *      periodic load keeps its floor; a leak lifts it.
 *   9. The floor never falls far: the rolling 25% quantile over n/6 points
 *      (at least 4) may drop from its running peak by at most drawdown_frac x
 *      growth. Periodic load whose cycle does not fit the thirds, and rises
 *      that recover, fall back; a leak's floor only climbs.
 * All must hold for `suspected`. `reason` names the first that failed, or
 * summarizes the rise.
 *
 * Engine: detect_engine ties the detector to the store (series, profiles,
 * per-stack values), keeps the latest verdict per target and signal, drives
 * the alert state machine (alerts.h) with state persisted in the store's
 * key/value table, and feeds the Alertmanager notifier. All engine functions
 * are thread-safe: evaluation (the daemon's ingest thread) and the JSON/text
 * outputs (the API's threads) may run at the same time.
 *
 * Errors: 0 on success, negative errno codes (-EINVAL, -ENOMEM, -E2BIG when
 * an output buffer's cap is reached, store errors passed through).
 */
#ifndef LW_DETECT_H
#define LW_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"

/* Signals the detector watches, named as in store_series_get(). */
enum detect_signal {
    DETECT_GOROUTINES = 0,     /* "goroutines" (threads for C services) */
    DETECT_HEAP_INUSE_BYTES,   /* "heap_inuse_bytes" */
    DETECT_HEAP_INUSE_OBJECTS, /* "heap_inuse_objects" */
    DETECT_N_SIGNALS
};

#define DETECT_MAX_TOP 10

typedef struct detect_threshold {
    bool enabled;               /* evaluate this signal at all */
    double min_growth;          /* minimum absolute growth over the window, signal units */
    double min_relative_growth; /* minimum growth as a fraction of the level (0.05 = 5%) */
    char severity[32];          /* alert severity label; "" = alerts_config.severity
                                 * (GoroutineLeak uses goroutines', HeapLeak heap_inuse_bytes') */
} detect_threshold;

typedef struct detect_config {
    int64_t window_ns;           /* sliding window, default 30 min */
    size_t min_samples;          /* points needed in the window, default 10 (6 at least:
                                  * the thirds need two points each) */
    double z_min;                /* Mann–Kendall Z needed, default 2.33 (one-sided 1%) */
    double restart_frac;         /* drop below this x recent median = restart, default 0.5 */
    double recent_k;             /* m3 - m2 in standard errors, default 1.64 */
    double recent_frac;          /* m3 - m2 >= this x (m2 - m1), default 0.3 */
    double recent_own_frac;      /* last third's own Theil–Sen growth >= this x (m3 - m2), default 0.3 */
    double floor_quantile;       /* quantile used as a segment's floor, default 0.1 */
    double floor_frac;           /* floor rise >= this x growth, default 0.25 */
    double drawdown_frac;        /* largest fall of the rolling floor <= this x growth, default 0.5 */
    size_t top_stacks;           /* stacks reported per leak, default 5, <= DETECT_MAX_TOP */
    size_t attribution_profiles; /* profiles sampled per stack series, default 10 */
    int64_t evaluation_interval_ns; /* engine: detect_evaluate_profile() judges a target's
                                     * signal at most this often, default 0 (every call) */
    detect_threshold signals[DETECT_N_SIGNALS];
} detect_config;

typedef struct detect_stack {
    int64_t stack_id;       /* store stack id */
    char function[160];     /* leaf-most non-runtime function */
    char location[256];     /* "file:line" of that frame */
    double growth;          /* value(last profile) - value(first profile) in the window */
    double rate_per_hour;   /* growth / (time between those profiles) x 3600 */
} detect_stack;

typedef struct detect_verdict {
    int signal;              /* enum detect_signal */
    bool evaluated;          /* enough points to judge (false: reason says why) */
    bool suspected;          /* every guard held */
    double score;            /* Mann–Kendall Z (higher = more surely rising) */
    double p_value;          /* one-sided p of "rising" */
    double slope_per_second; /* Theil–Sen slope, signal units per second */
    double growth;           /* slope x span of the points used */
    double level;            /* median of the first third */
    double first_value;      /* median of the first third (robust start) */
    double last_value;       /* median of the last third (robust end) */
    int64_t window_start_ns; /* time of the first point used */
    int64_t window_end_ns;   /* time of the last point used */
    int64_t restart_ns;      /* time of the restart that cut the window, 0 if none */
    size_t n_samples;        /* points used */
    char reason[256];        /* why (not) suspected, one line */
    size_t n_top;            /* filled by attribution for suspected leaks */
    detect_stack top[DETECT_MAX_TOP];
} detect_verdict;

/* Defaults as documented on detect_config; thresholds (the same as the
 * collector's config defaults): goroutines +10, heap_inuse_bytes +4 MiB,
 * heap_inuse_objects +10000, each also >= 5% of the level. Cannot fail. */
void detect_config_default(detect_config *c);

/* "goroutines", "heap_inuse_bytes", "heap_inuse_objects"; NULL if out of range. */
const char *detect_signal_name(int signal);

/* Judge one series: times_ns/values[0..n) oldest first, already limited to
 * the window by the caller (non-finite values and points that go back in
 * time are ignored). Fills *out (attribution fields zero). 0 on
 * success (including "not enough samples", see out->evaluated); -EINVAL for
 * bad arguments; -ENOMEM. This is the exact code the daemon runs. */
int detect_series(const detect_config *cfg, int signal, const int64_t *times_ns,
                  const double *values, size_t n, detect_verdict *out) LW_WUR;

/* ---- engine (needs the store; see engine.c) ----------------------------- */

struct store;
struct store_label;
struct alerts_config;
typedef struct detect_engine detect_engine;

/* A new engine reading from and persisting alert state into s (not owned;
 * must outlive the engine). dc/ac are copied; ac may be NULL (alerts kept
 * and listed but never sent). Restores alert state saved by a previous run
 * and starts the notifier thread when Alertmanagers are configured. */
int detect_engine_new(struct store *s, const detect_config *dc, const struct alerts_config *ac,
                      detect_engine **out) LW_WUR;

/* Stop the notifier (pending sends get a short grace period) and free.
 * detect_engine_free(NULL) is safe. */
void detect_engine_free(detect_engine *e);

/* Evaluate every enabled signal of one target at now_ns: detector, then
 * attribution for suspected ones, then the GoroutineLeak / HeapLeak alert
 * state machines (persisting changes) and notifications. labels are the
 * target's label set (job and instance among them), copied. Call it after
 * each ingest of the target (or once per evaluation interval). */
int detect_evaluate_target(detect_engine *e, int64_t target_id, const struct store_label *labels,
                           size_t n_labels, int64_t now_ns) LW_WUR;

/* What leakwatchd calls after each stored profile: as
 * detect_evaluate_target(), for the signals a profile of this type feeds
 * ("goroutine": goroutines; "heap": heap_inuse_bytes and _objects; other
 * types: none), each only when it was last judged evaluation_interval_ns
 * or longer ago (Prometheus' rule evaluation_interval). The other signals
 * keep their verdicts. A judgment costs O(n²) in the window's points (the
 * Mann–Kendall and Theil–Sen pairs: ~65 µs at 180 points), so judging
 * every signal at every scrape would cost a 1000-target daemon several
 * percent of a core once its windows are full. */
int detect_evaluate_profile(detect_engine *e, int64_t target_id, const struct store_label *labels,
                            size_t n_labels, const char *profile_type, int64_t now_ns) LW_WUR;

/* Forget a target (it left service discovery): its verdicts and its alerts
 * (firing ones are sent resolved). */
int detect_forget_target(detect_engine *e, int64_t target_id, int64_t now_ns) LW_WUR;

/* The latest verdict of one target and signal, copied. -ENOENT if never
 * evaluated. */
int detect_verdict_get(detect_engine *e, int64_t target_id, int signal, detect_verdict *out) LW_WUR;

/* JSON array of the latest verdicts, one object per target and signal:
 * {job, instance, target_id, signal, evaluated, suspected, score,
 *  slope_per_second, growth, window_start, window_end (RFC 3339),
 *  n_samples, reason, top_stacks:[{function, location, growth,
 *  rate_per_hour, stack_id}]}. Appended to out. */
int detect_leaks_json(detect_engine *e, lw_buf *out) LW_WUR;

/* JSON array of alerts in the shape of Prometheus /api/v1/alerts' "alerts":
 * {labels, annotations, state ("pending"|"firing"|"inactive" for recently
 * resolved), activeAt, value}. Appended to out. */
int detect_alerts_json(detect_engine *e, lw_buf *out) LW_WUR;

/* Prometheus text exposition (HELP/TYPE) of leakwatch_leak_growth_per_second,
 * leakwatch_leak_suspected and leakwatch_alerts (like Prometheus' ALERTS).
 * Appended to out. */
int detect_metrics_text(detect_engine *e, lw_buf *out) LW_WUR;

#endif
