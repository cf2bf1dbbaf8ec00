/* test_detect_engine.c — the engine on a real store file: detection, attribution, alerts, restart.
 *
 * Goroutine profiles are built with the pprof API (a leaking stack whose
 * count climbs by 5 per scrape, a worker stack that stays flat) and ingested
 * every 30 s of simulated time into a real SQLite store; the engine is
 * evaluated after each ingest exactly as the daemon does. Checks: the leak
 * goes pending, then firing after `for`; the top stack names the leaking
 * function and file:line; a simulated restart (engine and store closed and
 * reopened from the file) keeps the pending-since time; the alert resolves
 * after the leak stops; a flat target never alerts; outputs are well formed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "alerts.h"
#include "detect.h"
#include "pprof.h"
#include "store.h"

#define S_NS 1000000000LL
#define STEP_NS (30 * S_NS)
#define T0_NS (1764100000LL * S_NS)

typedef struct fixture {
    char dir[256];
    char db[300];
    store *s;
    detect_engine *e;
    int64_t tid_leak, tid_flat;
    detect_config dc;
    alerts_config ac;
} fixture;

static pprof_profile *goroutine_profile(int64_t leaky, int64_t workers)
{
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(pprof_add_sample_type(p, "goroutine", "count"), 0);
    assert_int_equal(pprof_set_period(p, "goroutine", "count", 1), 0);
    uint64_t f_park = pprof_add_function(p, "runtime.gopark", "", "/usr/lib/go/src/runtime/proc.go", 360);
    uint64_t f_leak = pprof_add_function(p, "main.leakyHandler.func1", "", "/src/gosvc/main.go", 40);
    uint64_t f_work = pprof_add_function(p, "main.worker", "", "/src/gosvc/main.go", 80);
    pprof_line l_park = {f_park, 364, 0}, l_leak = {f_leak, 42, 0}, l_work = {f_work, 85, 0};
    uint64_t park = pprof_add_location(p, 0, 0x1000, &l_park, 1);
    uint64_t leak = pprof_add_location(p, 0, 0x2000, &l_leak, 1);
    uint64_t work = pprof_add_location(p, 0, 0x3000, &l_work, 1);
    assert_true(park && leak && work);
    uint64_t s1[] = {park, leak}, s2[] = {park, work};
    assert_int_equal(pprof_add_sample(p, s1, 2, &leaky, NULL, 0), 0);
    assert_int_equal(pprof_add_sample(p, s2, 2, &workers, NULL, 0), 0);
    return p;
}

/* A Go-style heap profile: a stack retaining `retained` bytes (substrings
 * pinning 1 MiB buffers) and a churning stack whose in-use bytes come and go. */
static pprof_profile *heap_profile(int64_t retained, int64_t churn)
{
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(pprof_add_sample_type(p, "alloc_objects", "count"), 0);
    assert_int_equal(pprof_add_sample_type(p, "alloc_space", "bytes"), 0);
    assert_int_equal(pprof_add_sample_type(p, "inuse_objects", "count"), 0);
    assert_int_equal(pprof_add_sample_type(p, "inuse_space", "bytes"), 0);
    assert_int_equal(pprof_set_period(p, "space", "bytes", 524288), 0);
    uint64_t f_malloc = pprof_add_function(p, "runtime.mallocgc", "", "/usr/lib/go/src/runtime/malloc.go", 900);
    uint64_t f_keep = pprof_add_function(p, "main.retainSubstring", "", "/src/gosvc/main.go", 120);
    uint64_t f_churn = pprof_add_function(p, "main.churn", "", "/src/gosvc/main.go", 150);
    pprof_line l_malloc = {f_malloc, 1000, 0}, l_keep = {f_keep, 125, 0}, l_churn = {f_churn, 155, 0};
    uint64_t f_grow = pprof_add_function(p, "strings.(*Builder).grow", "", "/usr/lib/go/src/strings/builder.go", 60);
    pprof_line l_grow = {f_grow, 68, 0};
    uint64_t g = pprof_add_location(p, 0, 0x1800, &l_grow, 1);
    uint64_t m = pprof_add_location(p, 0, 0x1000, &l_malloc, 1);
    uint64_t k = pprof_add_location(p, 0, 0x2000, &l_keep, 1);
    uint64_t c = pprof_add_location(p, 0, 0x3000, &l_churn, 1);
    /* The standard library frame between the allocator and the application
     * must not be blamed. */
    uint64_t s1[] = {m, g, k}, s2[] = {m, c};
    int64_t v1[] = {retained >> 20, retained, retained >> 20, retained};
    int64_t v2[] = {1000, 64 << 20, churn >> 16, churn};
    assert_int_equal(pprof_add_sample(p, s1, 3, v1, NULL, 0), 0);
    assert_int_equal(pprof_add_sample(p, s2, 2, v2, NULL, 0), 0);
    return p;
}

static const store_label leak_labels[] = {
    {"instance", "127.0.0.1:6061"}, {"job", "api"}, {"team", "payments"}};
static const store_label flat_labels[] = {{"instance", "127.0.0.1:6062"}, {"job", "churn"}};

static void open_all(fixture *f)
{
    char err[STORE_ERR_LEN];
    int rc = store_open(f->db, NULL, &f->s, err, sizeof(err));
    if (rc < 0)
        printf("store_open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(detect_engine_new(f->s, &f->dc, &f->ac, &f->e), 0);
}

static void close_all(fixture *f)
{
    detect_engine_free(f->e);
    f->e = NULL;
    store_close(f->s);
    f->s = NULL;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/test-work/detect-engine-XXXXXX", LW_BINARY_DIR);
    char parent[256];
    snprintf(parent, sizeof(parent), "%s/test-work", LW_BINARY_DIR);
    (void)mkdir(parent, 0755);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/leakwatch.db", f->dir);
    detect_config_default(&f->dc);
    f->dc.window_ns = 20 * 60 * S_NS;
    alerts_config_default(&f->ac);
    f->ac.for_ns = 5 * 60 * S_NS;
    snprintf(f->ac.external_url, sizeof(f->ac.external_url), "http://127.0.0.1:9999/");
    open_all(f);
    assert_int_equal(store_target_upsert(f->s, leak_labels, 3, &f->tid_leak), 0);
    assert_int_equal(store_target_upsert(f->s, flat_labels, 2, &f->tid_flat), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close_all(f);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        printf("cleanup of %s failed\n", f->dir);
    free(f);
    return 0;
}

/* Store p (and free it) as a profile of this type at t. */
static void store_profile(fixture *f, int64_t tid, const char *type, int64_t t, pprof_profile *p)
{
    char err[STORE_ERR_LEN];
    int rc = store_ingest(f->s, tid, type, t, p, NULL, err, sizeof(err));
    if (rc < 0)
        printf("store_ingest: %s\n", err);
    assert_int_equal(rc, 0);
    pprof_free(p);
}

static void ingest(fixture *f, int64_t tid, int64_t t, int64_t leaky, int64_t workers)
{
    store_profile(f, tid, "goroutine", t, goroutine_profile(leaky, workers));
}

static int alert_state(fixture *f, char *active_at, size_t len)
{
    lw_buf b;
    lw_buf_init(&b, 1 << 20);
    assert_int_equal(detect_alerts_json(f->e, &b), 0);
    int st = ALERTS_INACTIVE;
    const char *p = strstr(b.data, "\"alertname\":\"GoroutineLeak\"");
    if (p != NULL) {
        if (strstr(p, "\"state\":\"pending\""))
            st = ALERTS_PENDING;
        else if (strstr(p, "\"state\":\"firing\""))
            st = ALERTS_FIRING;
        const char *a = strstr(p, "\"activeAt\":\"");
        if (a != NULL && active_at != NULL)
            snprintf(active_at, len, "%.24s", a + 12);
    }
    lw_buf_cleanup(&b);
    return st;
}

static void leak_pending_firing_restart_resolve(void **state)
{
    fixture *f = *state;
    int64_t t = T0_NS, pending_at = 0, firing_at = 0;
    char active_at[32] = "", active_after_restart[32] = "";
    bool restarted = false;
    int i;
    for (i = 0; i < 80 && firing_at == 0; i++, t += STEP_NS) {
        ingest(f, f->tid_leak, t, 10 + 5 * i, 20 + i % 3);
        ingest(f, f->tid_flat, t, 3 + i % 2, 50 + (i * 7) % 5);
        assert_int_equal(detect_evaluate_target(f->e, f->tid_leak, leak_labels, 3, t), 0);
        assert_int_equal(detect_evaluate_target(f->e, f->tid_flat, flat_labels, 2, t), 0);
        int st = alert_state(f, active_at, sizeof(active_at));
        if (st == ALERTS_PENDING && pending_at == 0) {
            pending_at = t;
            printf("scrape %d: GoroutineLeak pending, activeAt %s\n", i, active_at);
        }
        if (st == ALERTS_FIRING)
            firing_at = t;
        /* Two scrapes into pending: restart engine and store from the file. */
        if (pending_at != 0 && !restarted && t == pending_at + 2 * STEP_NS) {
            close_all(f);
            open_all(f);
            restarted = true;
            assert_int_equal(detect_evaluate_target(f->e, f->tid_leak, leak_labels, 3, t), 0);
            assert_int_equal(alert_state(f, active_after_restart, sizeof(active_after_restart)),
                             ALERTS_PENDING);
            printf("after restart: activeAt %s (before: %s)\n", active_after_restart, active_at);
            assert_string_equal(active_after_restart, active_at);
        }
    }
    printf("pending at +%llds, firing at +%llds (for = 300 s)\n",
           (long long)((pending_at - T0_NS) / S_NS), (long long)((firing_at - T0_NS) / S_NS));
    assert_true(restarted);
    assert_true(pending_at > 0);
    assert_int_equal(firing_at - pending_at, 5 * 60 * S_NS);

    detect_verdict v;
    assert_int_equal(detect_verdict_get(f->e, f->tid_leak, DETECT_GOROUTINES, &v), 0);
    printf("verdict: %s; top %zu: %s (%s) +%.0f (%.0f/h)\n", v.reason, v.n_top, v.top[0].function,
           v.top[0].location, v.top[0].growth, v.top[0].rate_per_hour);
    assert_true(v.suspected);
    assert_true(v.n_top >= 1);
    assert_string_equal(v.top[0].function, "main.leakyHandler.func1");
    assert_string_equal(v.top[0].location, "/src/gosvc/main.go:42");
    /* +5 per 30 s = 600/h, both for the series and the stack. */
    assert_true(v.slope_per_second > 0.166 && v.slope_per_second < 0.167);
    assert_true(v.top[0].rate_per_hour > 590 && v.top[0].rate_per_hour < 610);
    assert_int_equal(v.n_top, 1); /* the flat worker stack is not reported */

    detect_verdict flat;
    assert_int_equal(detect_verdict_get(f->e, f->tid_flat, DETECT_GOROUTINES, &flat), 0);
    printf("flat target: %s\n", flat.reason);
    assert_false(flat.suspected);

    lw_buf b;
    lw_buf_init(&b, 1 << 20);
    assert_int_equal(detect_alerts_json(f->e, &b), 0);
    printf("alerts: %s\n", b.data);
    assert_non_null(strstr(b.data, "\"summary\":\"Goroutine leak in api/127.0.0.1:6061: +"));
    assert_non_null(strstr(b.data, "(600/h)\""));
    assert_non_null(strstr(b.data, "+95 goroutines (600 goroutines/h)"));
    assert_non_null(strstr(b.data, "main.leakyHandler.func1 (/src/gosvc/main.go:42)"));
    assert_non_null(strstr(b.data, "http://127.0.0.1:9999/api/v1/diff?job=api&instance=127.0.0.1%3A6061&type=goroutine&from="));
    assert_non_null(strstr(b.data, "\"team\":\"payments\""));
    assert_null(strstr(b.data, "churn"));
    lw_buf_reset(&b);
    assert_int_equal(detect_leaks_json(f->e, &b), 0);
    printf("leaks: %.600s...\n", b.data);
    assert_non_null(strstr(b.data, "\"signal\":\"goroutines\",\"evaluated\":true,\"suspected\":true"));
    assert_non_null(strstr(b.data, "\"function\":\"main.leakyHandler.func1\",\"location\":\"/src/gosvc/main.go:42\""));
    lw_buf_reset(&b);
    assert_int_equal(detect_metrics_text(f->e, &b), 0);
    printf("metrics:\n%s", b.data);
    assert_non_null(strstr(b.data, "leakwatch_leak_suspected{job=\"api\",instance=\"127.0.0.1:6061\",signal=\"goroutines\"} 1\n"));
    assert_non_null(strstr(b.data, "leakwatch_leak_suspected{job=\"churn\",instance=\"127.0.0.1:6062\",signal=\"goroutines\"} 0\n"));
    assert_non_null(strstr(b.data, "leakwatch_alerts{alertname=\"GoroutineLeak\",alertstate=\"firing\",job=\"api\",instance=\"127.0.0.1:6061\",severity=\"warning\"} 1\n"));
    /* promtool (Prometheus' own linter) must accept the exposition. */
    char mpath[400], cmd[600];
    snprintf(mpath, sizeof(mpath), "%s/metrics.txt", f->dir);
    FILE *mf = fopen(mpath, "w");
    assert_non_null(mf);
    assert_int_equal(fwrite(b.data, 1, b.len, mf), b.len);
    assert_int_equal(fclose(mf), 0);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", mpath);
    int prc = system(cmd);
    printf("promtool check metrics: exit %d\n", prc);
    assert_int_equal(prc, 0);

    /* The leak stops: flat from now on. The alert must resolve, stay listed
     * as inactive, and be forgotten after the 15 min retention. */
    int64_t leaked = 10 + 5 * (i - 1), resolved_at = 0, gone_at = 0;
    for (int k = 0; k < 80 && gone_at == 0; k++, t += STEP_NS) {
        ingest(f, f->tid_leak, t, leaked, 20 + k % 3);
        assert_int_equal(detect_evaluate_target(f->e, f->tid_leak, leak_labels, 3, t), 0);
        lw_buf_reset(&b);
        assert_int_equal(detect_alerts_json(f->e, &b), 0);
        bool listed = strstr(b.data, "GoroutineLeak") != NULL;
        if (resolved_at == 0 && strstr(b.data, "\"state\":\"inactive\"")) {
            resolved_at = t;
            assert_int_equal(detect_verdict_get(f->e, f->tid_leak, DETECT_GOROUTINES, &v), 0);
            printf("resolved %llds after the leak stopped: %s\n",
                   (long long)(k * STEP_NS / S_NS), v.reason);
        }
        if (resolved_at != 0 && !listed)
            gone_at = t;
    }
    lw_buf_cleanup(&b);
    assert_true(resolved_at != 0);
    printf("forgotten %llds after resolution\n", (long long)((gone_at - resolved_at) / S_NS));
    assert_int_equal(gone_at - resolved_at, 15 * 60 * S_NS);
    /* Nothing persisted any more. */
    char *val = NULL;
    char key[64];
    snprintf(key, sizeof(key), "alert/GoroutineLeak/%lld", (long long)f->tid_leak);
    assert_int_equal(store_state_get(f->s, key, &val), -ENOENT);
}

/* Substring pinning: +1 MiB in use per scrape under a churning stack. */
static void heap_leak(void **state)
{
    fixture *f = *state;
    int64_t t = T0_NS;
    for (int i = 0; i < 24; i++, t += STEP_NS) {
        static const int wobble[] = {0, 6, 3, 9, 1, 7};
        int64_t churn = (int64_t)(20 + wobble[i % 6]) << 20;
        store_profile(f, f->tid_leak, "heap", t, heap_profile((int64_t)(8 + i) << 20, churn));
        assert_int_equal(detect_evaluate_target(f->e, f->tid_leak, leak_labels, 3, t), 0);
    }
    detect_verdict v;
    assert_int_equal(detect_verdict_get(f->e, f->tid_leak, DETECT_HEAP_INUSE_BYTES, &v), 0);
    printf("heap_inuse_bytes: %s; top %zu: %s (%s) +%.0f B (%.0f B/h)\n", v.reason, v.n_top,
           v.n_top ? v.top[0].function : "-", v.n_top ? v.top[0].location : "-",
           v.n_top ? v.top[0].growth : 0, v.n_top ? v.top[0].rate_per_hour : 0);
    assert_true(v.suspected);
    assert_true(v.n_top >= 1);
    assert_string_equal(v.top[0].function, "main.retainSubstring");
    assert_string_equal(v.top[0].location, "/src/gosvc/main.go:125");
    assert_int_equal((int64_t)v.top[0].growth, (int64_t)23 << 20);
    assert_int_equal(v.n_top, 1); /* the churning stack does not rise on its own */
    lw_buf b;
    lw_buf_init(&b, 1 << 20);
    assert_int_equal(detect_alerts_json(f->e, &b), 0);
    printf("alerts: %s\n", b.data);
    assert_non_null(strstr(b.data, "\"alertname\":\"HeapLeak\""));
    assert_non_null(strstr(b.data, "Heap leak in api/127.0.0.1:6061: +23.0 MiB in 11m30s (120.0 MiB/h)"));
    assert_non_null(strstr(b.data, "main.retainSubstring (/src/gosvc/main.go:125)"));
    assert_non_null(strstr(b.data, "&type=heap&"));
    assert_non_null(strstr(b.data, "&sample_type=inuse_space"));
    assert_null(strstr(b.data, "GoroutineLeak"));
    lw_buf_cleanup(&b);
}

/* A firing alert of a target that leaves service discovery is resolved,
 * listed as inactive, then forgotten after retention; a state key restored
 * for a target that never comes back is dropped after window + for. */
static void orphans(void **state)
{
    fixture *f = *state;
    assert_int_equal(store_state_put(f->s, "alert/GoroutineLeak/777",
                                     "{\"state\":\"pending\",\"active_at_ns\":1,\"fired_at_ns\":0,"
                                     "\"resolved_at_ns\":0,\"last_sent_ns\":0,\"value\":3}"),
                     0);
    close_all(f);
    f->ac.for_ns = 0; /* fire at once */
    open_all(f);
    int64_t t = T0_NS;
    int i;
    for (i = 0; i < 30; i++, t += STEP_NS) {
        ingest(f, f->tid_leak, t, 10 + 5 * i, 20);
        ingest(f, f->tid_flat, t, 5, 50);
        assert_int_equal(detect_evaluate_target(f->e, f->tid_leak, leak_labels, 3, t), 0);
        assert_int_equal(detect_evaluate_target(f->e, f->tid_flat, flat_labels, 2, t), 0);
    }
    assert_int_equal(alert_state(f, NULL, 0), ALERTS_FIRING);
    assert_int_equal(detect_forget_target(f->e, f->tid_leak, t), 0);
    lw_buf b;
    lw_buf_init(&b, 1 << 20);
    assert_int_equal(detect_alerts_json(f->e, &b), 0);
    printf("after forgetting the target: %.300s\n", b.data);
    assert_non_null(strstr(b.data, "\"state\":\"inactive\""));
    int64_t forgot = t;
    char *val = NULL;
    /* 14.5 min < window (20 min) + for (0): target 777 may still come back. */
    assert_int_equal(store_state_get(f->s, "alert/GoroutineLeak/777", &val), 0);
    free(val);
    val = NULL;
    for (; t < forgot + 16 * 60 * S_NS; t += STEP_NS) {
        ingest(f, f->tid_flat, t, 5, 50);
        assert_int_equal(detect_evaluate_target(f->e, f->tid_flat, flat_labels, 2, t), 0);
    }
    lw_buf_reset(&b);
    assert_int_equal(detect_alerts_json(f->e, &b), 0);
    printf("16 min later: %s\n", b.data);
    assert_string_equal(b.data, "[]");
    char key[64];
    snprintf(key, sizeof(key), "alert/GoroutineLeak/%lld", (long long)f->tid_leak);
    assert_int_equal(store_state_get(f->s, key, &val), -ENOENT);
    assert_int_equal(store_state_get(f->s, "alert/GoroutineLeak/777", &val), -ENOENT);
    printf("forgotten target's alert and target 777's restored state are gone\n");
    lw_buf_cleanup(&b);
}

typedef struct reader_arg {
    detect_engine *e;
    atomic_bool *stop;
    long n_reads;
} reader_arg;

static void *reader_main(void *p)
{
    reader_arg *r = p;
    lw_buf b;
    lw_buf_init(&b, 1 << 22);
    while (!atomic_load(r->stop)) {
        lw_buf_reset(&b);
        if (detect_leaks_json(r->e, &b) != 0 || detect_alerts_json(r->e, &b) != 0 ||
            detect_metrics_text(r->e, &b) != 0)
            break;
        r->n_reads++;
    }
    lw_buf_cleanup(&b);
    return NULL;
}

/* API threads read while the ingest thread evaluates (run under TSan in a
 * TSan build; under ASan it checks nothing is freed under a reader). */
static void concurrent_readers(void **state)
{
    fixture *f = *state;
    atomic_bool stop = false;
    reader_arg ra[3];
    pthread_t th[3];
    for (int k = 0; k < 3; k++) {
        ra[k] = (reader_arg){f->e, &stop, 0};
        assert_int_equal(pthread_create(&th[k], NULL, reader_main, &ra[k]), 0);
    }
    int64_t t = T0_NS;
    for (int i = 0; i < 60; i++, t += STEP_NS) {
        ingest(f, f->tid_leak, t, 10 + 5 * i, 20);
        assert_int_equal(detect_evaluate_target(f->e, f->tid_leak, leak_labels, 3, t), 0);
        if (i == 45)
            assert_int_equal(detect_forget_target(f->e, f->tid_leak, t), 0);
    }
    atomic_store(&stop, true);
    long total = 0;
    for (int k = 0; k < 3; k++) {
        pthread_join(th[k], NULL);
        total += ra[k].n_reads;
    }
    printf("3 readers made %ld rounds of leaks/alerts/metrics during 60 evaluations\n", total);
    assert_true(total > 0);
}

static void ingest_heap(fixture *f, int64_t tid, int64_t t, int64_t retained)
{
    store_profile(f, tid, "heap", t, heap_profile(retained, 8 << 20));
}

/* The time of the last point a signal's latest verdict used, or 0. */
static int64_t judged_until(fixture *f, int64_t tid, int sig)
{
    detect_verdict v;
    int rc = detect_verdict_get(f->e, tid, sig, &v);
    return rc == -ENOENT ? 0 : (assert_int_equal(rc, 0), v.window_end_ns);
}

/* What leakwatchd calls: a profile judges the signals it feeds, each at
 * most once per evaluation interval, and the leak still alerts. */
static void evaluate_profile_rate_limited(void **state)
{
    fixture *f = *state;
    close_all(f);
    f->dc.evaluation_interval_ns = 60 * S_NS; /* two scrapes of 30 s */
    open_all(f);
    int64_t t = T0_NS, firing_at = 0;
    int judged_g = 0, judged_h = 0;
    int64_t pending_at = 0;
    bool restarted = false;
    for (int i = 0; i < 80 && firing_at == 0; i++, t += STEP_NS) {
        ingest(f, f->tid_leak, t, 10 + 5 * i, 20 + i % 3);
        int64_t g0 = judged_until(f, f->tid_leak, DETECT_GOROUTINES);
        int64_t h0 = judged_until(f, f->tid_leak, DETECT_HEAP_INUSE_BYTES);
        assert_int_equal(detect_evaluate_profile(f->e, f->tid_leak, leak_labels, 3, "goroutine", t), 0);
        int64_t g1 = judged_until(f, f->tid_leak, DETECT_GOROUTINES);
        /* A goroutine profile never judges the heap signals. */
        assert_int_equal(judged_until(f, f->tid_leak, DETECT_HEAP_INUSE_BYTES), h0);
        if (i % 2 == 0) { /* 0, 60, 120 s...: due */
            assert_int_equal(g1, t);
            judged_g++;
        } else { /* 30 s after the last judgment: skipped */
            assert_int_equal(g1, g0);
        }
        ingest_heap(f, f->tid_leak, t, (int64_t)(i + 1) << 20);
        assert_int_equal(detect_evaluate_profile(f->e, f->tid_leak, leak_labels, 3, "heap", t), 0);
        int64_t h1 = judged_until(f, f->tid_leak, DETECT_HEAP_INUSE_BYTES);
        assert_int_equal(judged_until(f, f->tid_leak, DETECT_GOROUTINES), g1);
        judged_h += h1 != h0;
        assert_int_equal(h1, i % 2 == 0 ? t : h0);
        /* Other profile types judge nothing. */
        assert_int_equal(detect_evaluate_profile(f->e, f->tid_leak, leak_labels, 3, "allocs", t), 0);
        char active_at[32] = "", after[32] = "";
        int st = alert_state(f, active_at, sizeof(active_at));
        if (st == ALERTS_PENDING && pending_at == 0)
            pending_at = t;
        /* Two judgments into pending (so activeAt is not "now"): */
        if (st == ALERTS_PENDING && !restarted && t >= pending_at + 4 * STEP_NS) {
            /* Restart; the first profile judged after it is a heap one:
             * the goroutine alert, not judged yet by this run, keeps its
             * restored state (unlisted until described) and, once judged,
             * its activeAt. */
            close_all(f);
            open_all(f);
            restarted = true;
            assert_int_equal(detect_evaluate_profile(f->e, f->tid_leak, leak_labels, 3, "heap", t), 0);
            int st2 = alert_state(f, after, sizeof(after));
            assert_true(st2 == ALERTS_INACTIVE || (st2 == ALERTS_PENDING && !strcmp(after, active_at)));
            assert_int_equal(detect_evaluate_profile(f->e, f->tid_leak, leak_labels, 3, "goroutine", t), 0);
            assert_int_equal(alert_state(f, after, sizeof(after)), ALERTS_PENDING);
            assert_string_equal(after, active_at);
        }
        if (st == ALERTS_FIRING)
            firing_at = t;
    }
    printf("rate-limited: goroutines judged %d times, heap %d; firing at +%llds\n", judged_g,
           judged_h, (long long)((firing_at - T0_NS) / S_NS));
    assert_true(firing_at > 0);
    assert_true(restarted);
    /* Out of order: a heap profile whose scrape began before the goroutine
     * profile judged just now is still judged (its verdict is newer than
     * the heap verdict it replaces); an older one than that is not. */
    t += 10 * STEP_NS;
    ingest(f, f->tid_leak, t + S_NS, 500, 20);
    ingest_heap(f, f->tid_leak, t, 100 << 20);
    assert_int_equal(detect_evaluate_profile(f->e, f->tid_leak, leak_labels, 3, "goroutine", t + S_NS), 0);
    assert_int_equal(judged_until(f, f->tid_leak, DETECT_GOROUTINES), t + S_NS);
    assert_int_equal(detect_evaluate_profile(f->e, f->tid_leak, leak_labels, 3, "heap", t), 0);
    assert_int_equal(judged_until(f, f->tid_leak, DETECT_HEAP_INUSE_BYTES), t);
    assert_int_equal(judged_until(f, f->tid_leak, DETECT_GOROUTINES), t + S_NS);
    assert_int_equal(detect_evaluate_target(f->e, f->tid_leak, leak_labels, 3, t - S_NS), 0);
    assert_int_equal(judged_until(f, f->tid_leak, DETECT_HEAP_INUSE_BYTES), t);
    assert_int_equal(judged_until(f, f->tid_leak, DETECT_GOROUTINES), t + S_NS);
    assert_int_equal(detect_evaluate_profile(NULL, 1, NULL, 0, "heap", t), -EINVAL);
    assert_int_equal(detect_evaluate_profile(f->e, 1, NULL, 0, NULL, t), -EINVAL);
}

static void bad_arguments(void **state)
{
    fixture *f = *state;
    detect_verdict v;
    assert_int_equal(detect_verdict_get(f->e, 999, DETECT_GOROUTINES, &v), -ENOENT);
    assert_int_equal(detect_verdict_get(f->e, f->tid_leak, DETECT_N_SIGNALS, &v), -EINVAL);
    assert_int_equal(detect_evaluate_target(NULL, 1, NULL, 0, 0), -EINVAL);
    /* A target with no data: evaluated, nothing suspected. */
    assert_int_equal(detect_evaluate_target(f->e, f->tid_flat, flat_labels, 2, T0_NS), 0);
    assert_int_equal(detect_verdict_get(f->e, f->tid_flat, DETECT_GOROUTINES, &v), 0);
    printf("empty target: %s\n", v.reason);
    assert_false(v.evaluated);
    assert_int_equal(detect_forget_target(f->e, f->tid_flat, T0_NS), 0);
    assert_int_equal(detect_verdict_get(f->e, f->tid_flat, DETECT_GOROUTINES, &v), -ENOENT);
    detect_engine_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(leak_pending_firing_restart_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(heap_leak, setup, teardown),
        cmocka_unit_test_setup_teardown(orphans, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(evaluate_profile_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
