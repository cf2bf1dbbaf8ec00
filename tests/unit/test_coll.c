/* test_coll.c — unit tests of the scrape manager (collector/coll.h) without
 * real services: targets on a closed loopback port fail fast with
 * "connection refused", which exercises scheduling, label building, health,
 * the targets JSON, the metrics text and reload state keeping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "coll.h"
#include "lw_log.h"

static char tmpdir[512];

static store *open_store(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/test-work/test_coll-XXXXXX", LW_BINARY_DIR);
    assert_non_null(mkdtemp(tmpdir));
    char path[600];
    snprintf(path, sizeof(path), "%s/lw.db", tmpdir);
    store *s = NULL;
    char err[STORE_ERR_LEN];
    assert_int_equal(store_open(path, NULL, &s, err, sizeof(err)), 0);
    return s;
}

static void close_store(store *s)
{
    store_close(s);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static lw_config *cfg_of(const char *yaml)
{
    lw_config *c = NULL;
    char err[LW_CONFIG_ERR_LEN] = "";
    int rc = lw_config_parse("t.yml", yaml, strlen(yaml), NULL, &c, err, sizeof(err));
    if (rc)
        printf("config error: %s\n", err);
    assert_int_equal(rc, 0);
    return c;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the loop until `needle` appears in the targets JSON (or 10 s pass). */
static void run_until(coll *c, const char *needle)
{
    double end = now_s() + 10;
    lw_buf b;
    lw_buf_init(&b, 1 << 20);
    for (;;) {
        assert_int_equal(coll_run_once(c, 50), 0);
        lw_buf_reset(&b);
        assert_int_equal(coll_targets_json(c, &b), 0);
        if (strstr(b.data, needle))
            break;
        if (now_s() > end) {
            printf("never saw %s in %s\n", needle, b.data);
            fail();
        }
    }
    lw_buf_cleanup(&b);
}

static const char *yaml1 =
    "global: {scrape_interval: 100ms, external_labels: {cluster: c1, team: ext}}\n"
    "scrape_configs:\n"
    "  - job_name: j\n"
    "    static_configs:\n"
    "      - targets: ['127.0.0.1:1']\n"
    "        labels: {team: t, __scheme__: http, __other__: x}\n"
    "      - targets: ['127.0.0.1:1']\n"
    "        labels: {instance: custom}\n"
    "      - targets: ['127.0.0.1:1']\n"
    "        labels: {instance: custom}\n";

static void health_json_metrics(void **state)
{
    (void)state;
    store *s = open_store();
    lw_config *cfg = cfg_of(yaml1);
    coll *c = NULL;
    char err[256];
    assert_int_equal(coll_new(cfg, s, NULL, NULL, &c, err, sizeof(err)), 0);
    /* The duplicate group collapses: two targets. */
    assert_int_equal(coll_n_targets(c), 2);
    run_until(c, "\"scrapesError\":2");
    lw_buf b;
    lw_buf_init(&b, 1 << 20);
    assert_int_equal(coll_targets_json(c, &b), 0);
    printf("%s\n", b.data);
    assert_non_null(strstr(b.data, "{\"activeTargets\":[{\"labels\":{\"cluster\":\"c1\",\"instance\":"
                                   "\"127.0.0.1:1\",\"job\":\"j\",\"team\":\"t\"}"));
    assert_non_null(strstr(b.data, "{\"labels\":{\"cluster\":\"c1\",\"instance\":\"custom\",\"job\":\"j\","
                                   "\"team\":\"ext\"}"));
    assert_non_null(strstr(b.data, "\"health\":\"down\""));
    assert_non_null(strstr(b.data, "\"lastError\":\"connection refused\""));
    assert_non_null(strstr(b.data, "\"url\":\"http://127.0.0.1:1/debug/pprof/goroutine\""));
    assert_null(strstr(b.data, "__"));
    lw_buf_reset(&b);
    assert_int_equal(coll_metrics_text(c, &b), 0);
    printf("%s\n", b.data);
    assert_non_null(strstr(b.data, "# TYPE leakwatch_target_up gauge\n"));
    assert_non_null(strstr(b.data, "leakwatch_target_up{job=\"j\",instance=\"custom\"} 0\n"));
    assert_non_null(strstr(b.data, "# TYPE leakwatch_scrapes_total counter\n"));
    assert_non_null(strstr(b.data, "leakwatch_scrapes_total{job=\"j\",instance=\"127.0.0.1:1\","
                                   "profile=\"heap\",result=\"success\"} 0\n"));
    assert_non_null(strstr(b.data, "leakwatch_targets 2\n"));

    /* A full output buffer is an error, not a truncated answer. */
    lw_buf small;
    lw_buf_init(&small, 64);
    assert_int_equal(coll_targets_json(c, &small), -E2BIG);
    assert_int_equal(coll_metrics_text(c, &small), -E2BIG);
    lw_buf_cleanup(&small);

    /* Reload with one more job: the old targets keep their counters. */
    char yaml2[2048];
    snprintf(yaml2, sizeof(yaml2), "%s  - job_name: k\n    static_configs: [{targets: ['127.0.0.1:1']}]\n",
             yaml1);
    lw_config *cfg2 = cfg_of(yaml2);
    assert_int_equal(coll_apply_config(c, cfg2, err, sizeof(err)), 0);
    lw_config_free(cfg);
    assert_int_equal(coll_n_targets(c), 3);
    lw_buf_reset(&b);
    assert_int_equal(coll_targets_json(c, &b), 0);
    printf("after reload: %s\n", b.data);
    /* Kept: still down with its error (a new target would be "unknown"). */
    assert_non_null(strstr(b.data, "\"job\":\"j\",\"team\":\"t\"},\"scrapePool\":\"j\",\"scrapeUrl\":\"http://127.0.0.1:1\","
                                   "\"health\":\"down\""));
    assert_non_null(strstr(b.data, "\"job\":\"k\",\"team\":\"ext\"},\"scrapePool\":\"k\",\"scrapeUrl\":\"http://127.0.0.1:1\","
                                   "\"health\":\"unknown\""));
    run_until(c, "\"job\":\"k\",\"team\":\"ext\"},\"scrapePool\":\"k\",\"scrapeUrl\":\"http://127.0.0.1:1\",\"health\":\"down\"");

    /* Reload to nothing. */
    lw_config *cfg3 = cfg_of("scrape_configs: []\n");
    assert_int_equal(coll_apply_config(c, cfg3, err, sizeof(err)), 0);
    lw_config_free(cfg2);
    assert_int_equal(coll_n_targets(c), 0);
    lw_buf_reset(&b);
    assert_int_equal(coll_targets_json(c, &b), 0);
    assert_string_equal(b.data, "{\"activeTargets\":[],\"droppedTargets\":[]}");
    lw_buf_cleanup(&b);
    coll_free(c);
    lw_config_free(cfg3);
    close_store(s);
}

int main(void)
{
    lw_log_setup(LW_LOG_ERROR, LW_LOG_LOGFMT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_json_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
