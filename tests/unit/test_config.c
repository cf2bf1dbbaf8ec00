/* test_config.c — unit tests of collector/config.h: every malformed case's
 * exact message, defaults, flag parsing and overrides, durations, sizes and
 * file_sd target files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define S LW_NS_PER_SEC

/* Parse yaml as "config.yaml" and expect exactly message want. */
static void expect_err_flags(const char *yaml, const lw_flags *f, const char *want)
{
    lw_config *c = NULL;
    char err[LW_CONFIG_ERR_LEN] = "";
    int rc = lw_config_parse("config.yaml", yaml, yaml ? strlen(yaml) : 0, f, &c, err, sizeof(err));
    printf("yaml: %s\n  got:  rc=%d %s\n  want: %s\n", yaml ? yaml : "(none)", rc, err, want);
    assert_int_equal(rc, -EINVAL);
    assert_null(c);
    assert_string_equal(err, want);
}

static void expect_err(const char *yaml, const char *want)
{
    expect_err_flags(yaml, NULL, want);
}

static lw_config *parse_ok(const char *yaml, const lw_flags *f)
{
    lw_config *c = NULL;
    char err[LW_CONFIG_ERR_LEN] = "";
    int rc = lw_config_parse("config.yaml", yaml, yaml ? strlen(yaml) : 0, f, &c, err, sizeof(err));
    if (rc)
        printf("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    return c;
}

static void durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ns;
    } ok[] = {
        {"0", 0},
        {"15s", 15 * S},
        {"1h30m", 5400 * S},
        {"500ms", 500000000},
        {"7d", 7 * 86400 * S},
        {"1w", 7 * 86400 * S},
        {"1y", 365 * 86400 * S},
        {"1y2w3d4h5m6s7ms", (365 + 14 + 3) * 86400 * S + 4 * 3600 * S + 306 * S + 7000000},
        {"0s", 0},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        printf("duration %s -> want %lld\n", ok[i].s, (long long)ok[i].ns);
        assert_int_equal(lw_parse_duration(ok[i].s, &v), 0);
        assert_int_equal(v, ok[i].ns);
    }
    static const char *const bad[] = {"", "5x", "s", "1", "1.5s", "-1s", "1s1m", "1m1m", "1 s",
                                      "15S", "1ms1s", "99999999999999999999s", "300000y", "1h 30m"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v;
        printf("duration %s -> want -EINVAL\n", bad[i]);
        assert_int_equal(lw_parse_duration(bad[i], &v), -EINVAL);
    }
    char buf[32];
    assert_string_equal(lw_format_duration(5400 * S, buf, sizeof(buf)), "1h30m");
    assert_string_equal(lw_format_duration(10 * S, buf, sizeof(buf)), "10s");
    assert_string_equal(lw_format_duration(1500000000, buf, sizeof(buf)), "1s500ms");
    assert_string_equal(lw_format_duration(0, buf, sizeof(buf)), "0s");
}

static void sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t v;
    } ok[] = {
        {"0", 0},          {"1024", 1024},          {"100B", 100},
        {"1KB", 1024},     {"512MB", 512LL << 20},  {"1GiB", 1LL << 30},
        {"2GB", 2LL << 30}, {"3TiB", 3LL << 40},    {"1MiB", 1 << 20},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t v = -1;
        printf("size %s -> want %lld\n", ok[i].s, (long long)ok[i].v);
        assert_int_equal(lw_parse_size(ok[i].s, &v), 0);
        assert_int_equal(v, ok[i].v);
    }
    static const char *const bad[] = {"", "MB", "1.5GB", "-1", "1XB", "1 MB", "9999999EB", "1mb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v;
        printf("size %s -> want -EINVAL\n", bad[i]);
        assert_int_equal(lw_parse_size(bad[i], &v), -EINVAL);
    }
}

static void defaults(void **state)
{
    (void)state;
    lw_config *c = parse_ok("scrape_configs:\n  - job_name: a\n    static_configs:\n"
                            "      - targets: ['127.0.0.1:6060', 'localhost']\n",
                            NULL);
    assert_int_equal(c->scrape_interval_ns, 15 * S);
    assert_int_equal(c->scrape_timeout_ns, 10 * S);
    assert_int_equal(c->evaluation_interval_ns, 60 * S);
    assert_int_equal(c->n_scrape_configs, 1);
    const lw_scrape_config *sc = lw_config_job(c, "a");
    assert_non_null(sc);
    assert_int_equal(sc->scrape_interval_ns, 15 * S);
    assert_int_equal(sc->scrape_timeout_ns, 10 * S);
    assert_string_equal(sc->scheme, "http");
    assert_string_equal(sc->path_prefix, "");
    assert_int_equal(sc->static_configs[0].n_targets, 2);
    assert_string_equal(sc->static_configs[0].targets[1], "localhost:80");
    const lw_profile_config *g = lw_config_profile(sc, "goroutine");
    assert_true(g->enabled);
    assert_string_equal(g->path, "/debug/pprof/goroutine");
    assert_true(lw_config_profile(sc, "heap")->enabled);
    assert_false(lw_config_profile(sc, "allocs")->enabled);
    assert_false(lw_config_profile(sc, "mutex")->enabled);
    assert_false(lw_config_profile(sc, "block")->enabled);
    assert_false(lw_config_profile(sc, "threadcreate")->enabled);
    const lw_profile_config *cpu = lw_config_profile(sc, "profile");
    assert_false(cpu->enabled);
    assert_true(cpu->delta);
    assert_int_equal(cpu->seconds, 14);
    assert_int_equal(c->leak.window_ns, 1800 * S);
    assert_int_equal(c->leak.min_samples, 10);
    assert_int_equal(c->leak.for_ns, 600 * S);
    assert_true(c->leak.signals[LW_SIGNAL_GOROUTINES].enabled);
    assert_string_equal(c->leak.signals[LW_SIGNAL_HEAP_INUSE_BYTES].severity, "warning");
    assert_int_equal(c->alerting.resend_delay_ns, 60 * S);
    assert_int_equal(c->alerting.n_alertmanagers, 0);
    lw_config_free(c);

    /* An empty file is a valid (empty) configuration. */
    c = parse_ok("", NULL);
    assert_int_equal(c->n_scrape_configs, 0);
    lw_config_free(c);
    /* A short global interval caps the default timeout. */
    c = parse_ok("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: x\n"
                 "    scrape_interval: 500ms\n", NULL);
    assert_int_equal(c->scrape_timeout_ns, 1 * S);
    assert_int_equal(c->scrape_configs[0].scrape_timeout_ns, 500000000);
    lw_config_free(c);
}

static void full_config(void **state)
{
    (void)state;
    const char *yaml =
        "global:\n"
        "  scrape_interval: 30s\n"
        "  scrape_timeout: 5s\n"
        "  evaluation_interval: 2m\n"
        "  external_labels: {cluster: eu1, replica: \"a\"}\n"
        "scrape_configs:\n"
        "  - job_name: go\n"
        "    scrape_interval: 1m\n"
        "    scheme: https\n"
        "    params: {debug: ['0'], gc: ['1', '2']}\n"
        "    basic_auth: {username: u, password_file: /etc/pw}\n"
        "    tls_config:\n"
        "      ca_file: ca.pem\n"
        "      cert_file: c.pem\n"
        "      key_file: k.pem\n"
        "      server_name: svc.local\n"
        "      insecure_skip_verify: true\n"
        "    static_configs:\n"
        "      - targets: ['10.0.0.1:6060', '[::1]']\n"
        "        labels: {env: prod}\n"
        "    file_sd_configs:\n"
        "      - files: ['sd/*.json', 'sd/t.yml']\n"
        "        refresh_interval: 30s\n"
        "    profiling_config:\n"
        "      path_prefix: /app/\n"
        "      pprof_config:\n"
        "        allocs: {enabled: true}\n"
        "        heap: {enabled: false}\n"
        "        profile: {enabled: true}\n"
        "        fgprof: {path: debug/fgprof, delta: true, seconds: 5}\n"
        "  - job_name: c\n"
        "    authorization: {credentials: secret}\n"
        "leak_detection:\n"
        "  window: 1h\n"
        "  min_samples: 20\n"
        "  for: 0s\n"
        "  signals:\n"
        "    goroutines: {min_growth: 50, min_relative_growth: 0.2, severity: critical}\n"
        "    heap_inuse_objects: {enabled: false}\n"
        "alerting:\n"
        "  resend_delay: 30s\n"
        "  alertmanagers:\n"
        "    - static_configs: [{targets: ['127.0.0.1:9093', 'am2:9093']}]\n"
        "      path_prefix: am\n"
        "      timeout: 3s\n";
    lw_config *c = parse_ok(yaml, NULL);
    assert_int_equal(c->scrape_interval_ns, 30 * S);
    assert_int_equal(c->scrape_timeout_ns, 5 * S);
    assert_int_equal(c->evaluation_interval_ns, 120 * S);
    assert_int_equal(c->n_external_labels, 2);
    assert_string_equal(c->external_labels[0].name, "cluster");
    assert_string_equal(c->external_labels[1].value, "a");
    const lw_scrape_config *go = lw_config_job(c, "go");
    assert_int_equal(go->scrape_interval_ns, 60 * S);
    assert_int_equal(go->scrape_timeout_ns, 5 * S);
    assert_string_equal(go->scheme, "https");
    assert_int_equal(go->n_params, 3);
    assert_string_equal(go->params[2].name, "gc");
    assert_string_equal(go->params[2].value, "2");
    assert_true(go->basic_auth.set);
    assert_string_equal(go->basic_auth.username, "u");
    assert_null(go->basic_auth.password);
    assert_string_equal(go->basic_auth.password_file, "/etc/pw");
    assert_string_equal(go->tls.server_name, "svc.local");
    assert_true(go->tls.insecure_skip_verify);
    assert_string_equal(go->static_configs[0].targets[1], "[::1]:443");
    assert_string_equal(go->static_configs[0].labels[0].name, "env");
    assert_int_equal(go->file_sd_configs[0].n_files, 2);
    assert_int_equal(go->file_sd_configs[0].refresh_interval_ns, 30 * S);
    assert_string_equal(go->path_prefix, "/app");
    assert_true(lw_config_profile(go, "allocs")->enabled);
    assert_false(lw_config_profile(go, "heap")->enabled);
    assert_true(lw_config_profile(go, "goroutine")->enabled);
    assert_int_equal(lw_config_profile(go, "profile")->seconds, 59);
    const lw_profile_config *fg = lw_config_profile(go, "fgprof");
    assert_non_null(fg);
    assert_true(fg->enabled);
    assert_string_equal(fg->path, "/debug/fgprof");
    assert_int_equal(fg->seconds, 5);
    const lw_scrape_config *cj = lw_config_job(c, "c");
    assert_true(cj->authorization.set);
    assert_string_equal(cj->authorization.type, "Bearer");
    assert_string_equal(cj->authorization.credentials, "secret");
    assert_int_equal(cj->scrape_interval_ns, 30 * S);
    assert_int_equal(c->leak.window_ns, 3600 * S);
    assert_int_equal(c->leak.min_samples, 20);
    assert_int_equal(c->leak.for_ns, 0);
    assert_true(c->leak.signals[0].min_growth == 50.0);
    assert_true(c->leak.signals[0].min_relative_growth == 0.2);
    assert_string_equal(c->leak.signals[0].severity, "critical");
    assert_false(c->leak.signals[2].enabled);
    assert_int_equal(c->alerting.resend_delay_ns, 30 * S);
    assert_int_equal(c->alerting.n_alertmanagers, 1);
    assert_int_equal(c->alerting.alertmanagers[0].n_targets, 2);
    assert_string_equal(c->alerting.alertmanagers[0].targets[1], "am2:9093");
    assert_string_equal(c->alerting.alertmanagers[0].path_prefix, "/am");
    assert_int_equal(c->alerting.alertmanagers[0].timeout_ns, 3 * S);
    lw_config_free(c);
}

static void malformed(void **state)
{
    (void)state;
    expect_err("global:\n  scrape_interval: 5x\n",
               "config.yaml:2:20: scrape_interval: invalid duration \"5x\"");
    expect_err("global:\n  scrape_interval: 15s\n  foo: 1\n",
               "config.yaml:3:3: foo: unknown key in global");
    expect_err("globl: {}\n", "config.yaml:1:1: globl: unknown key in the top level");
    expect_err("scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n",
               "config.yaml:3:5: scrape_intervall: unknown key in scrape_config");
    expect_err("scrape_configs:\n  - job_name: a\n  - job_name: a\n",
               "config.yaml:3:15: job_name: duplicate job name \"a\" (first defined at line 2)");
    expect_err("scrape_configs:\n  - job_name: a\n    scrape_interval: 10s\n    scrape_timeout: 20s\n",
               "config.yaml:4:21: scrape_timeout: scrape timeout 20s is greater than scrape "
               "interval 10s");
    expect_err("global:\n  scrape_interval: 10s\n  scrape_timeout: 1m\n",
               "config.yaml:3:19: scrape_timeout: scrape timeout 1m is greater than scrape interval "
               "10s");
    expect_err("scrape_configs:\n  - scrape_interval: 1s\n",
               "config.yaml:2:5: job_name: missing job_name in scrape config");
    expect_err("scrape_configs: {job_name: a}\n",
               "config.yaml:1:17: scrape_configs: expected a list, got a mapping");
    expect_err("global: [1, 2]\n", "config.yaml:1:9: global: expected a mapping, got a list");
    expect_err("global:\n  scrape_interval: [1s]\n",
               "config.yaml:2:20: scrape_interval: expected a scalar, got a list");
    expect_err("scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
               "config.yaml:3:13: scheme: invalid scheme \"ftp\" (want http or https)");
    expect_err("scrape_configs:\n  - job_name: a\n    static_configs:\n"
               "      - targets: ['http://x:1']\n",
               "config.yaml:4:19: targets: invalid target \"http://x:1\": want host:port without "
               "scheme or path");
    expect_err("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['x:99999']\n",
               "config.yaml:4:19: targets: invalid target \"x:99999\": invalid port");
    expect_err("scrape_configs:\n  - job_name: a\n    static_configs:\n"
               "      - targets: [a:1]\n        labels: {1bad: x}\n",
               "config.yaml:5:18: labels: invalid label name \"1bad\"");
    expect_err("scrape_configs:\n  - job_name: a\n    tls_config: {insecure_skip_verify: maybe}\n",
               "config.yaml:3:40: insecure_skip_verify: invalid boolean \"maybe\" (want true or "
               "false)");
    expect_err("scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p, "
               "password_file: f}\n",
               "config.yaml:3:59: password_file: at most one of password and password_file may be "
               "set");
    expect_err("scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n"
               "    authorization: {credentials: c}\n",
               "config.yaml:4:20: authorization: at most one of basic_auth and authorization may be "
               "set");
    expect_err("scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['x.txt']\n",
               "config.yaml:4:17: files: \"x.txt\" must end in .json, .yml or .yaml");
    expect_err("scrape_configs:\n  - job_name: a\n    file_sd_configs:\n"
               "      - files: ['x.json']\n        refresh_interval: 0s\n",
               "config.yaml:5:27: refresh_interval: must be greater than 0");
    expect_err("scrape_configs:\n  - job_name: a\n    profiling_config:\n      pprof_config:\n"
               "        custom: {enabled: true}\n",
               "config.yaml:5:9: custom: path is required for a custom profile");
    expect_err("scrape_configs:\n  - job_name: a\n    profiling_config:\n      pprof_config:\n"
               "        custom:\n",
               "config.yaml:5:9: custom: path is required for a custom profile");
    expect_err("scrape_configs:\n  - job_name: a\n    profiling_config:\n      pprof_config:\n"
               "        heap: {enabled: true, bogus: 1}\n",
               "config.yaml:5:31: bogus: unknown key in pprof_config entry");
    expect_err("scrape_configs:\n  - job_name: a\n    profiling_config:\n      pprof_config:\n"
               "        profile: {seconds: abc}\n",
               "config.yaml:5:28: seconds: invalid integer \"abc\"");
    expect_err("global:\n  scrape_interval: 1s\n  scrape_interval: 2s\n",
               "config.yaml:3:3: scrape_interval: duplicate key in global (first at line 2)");
    expect_err("leak_detection:\n  min_samples: 2\n",
               "config.yaml:2:16: min_samples: 2 out of range [3, 1000000]");
    expect_err("leak_detection:\n  window: 30\n",
               "config.yaml:2:11: window: invalid duration \"30\"");
    expect_err("leak_detection:\n  signals:\n    threads: {}\n",
               "config.yaml:3:5: threads: unknown key in signals");
    expect_err("leak_detection:\n  signals:\n    goroutines: {min_growth: -3}\n",
               "config.yaml:3:30: min_growth: must not be negative");
    expect_err("leak_detection:\n  signals:\n    goroutines: {min_relative_growth: lots}\n",
               "config.yaml:3:39: min_relative_growth: invalid number \"lots\"");
    expect_err("alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['am:9093']}]\n"
               "      scheme: udp\n",
               "config.yaml:4:15: scheme: invalid scheme \"udp\" (want http or https)");
    expect_err("global:\n  evaluation_interval: 0s\n",
               "config.yaml:2:24: evaluation_interval: must be greater than 0");
    expect_err("global:\n  evaluation_interval: often\n",
               "config.yaml:2:24: evaluation_interval: invalid duration \"often\"");
    expect_err("alerting:\n  resend_delay: soon\n",
               "config.yaml:2:17: resend_delay: invalid duration \"soon\"");
    expect_err("- a\n- b\n", "config.yaml:1:1: config: expected a mapping at the top level, got a list");
    expect_err("global:\n  scrape_interval: 1s\n bad indent: x\n",
               "config.yaml:3:2: yaml: did not find expected key while parsing a block mapping");
}

static void flags_parse(void **state)
{
    (void)state;
    char *argv[] = {"leakwatchd",
                    "--config.file=c.yml",
                    "--storage.path",
                    "/tmp/x.db",
                    "--storage.retention.time=1d",
                    "--storage.retention.size=512MB",
                    "--web.listen-address=127.0.0.1:1",
                    "--target=http://127.0.0.1:6060",
                    "--target",
                    "https://h/app/",
                    "--scrape.interval=1s",
                    "--scrape.timeout=500ms",
                    "--alertmanager.url=http://127.0.0.1:9093",
                    "--detection.window=2m",
                    "--detection.for=0s",
                    "--detection.min-samples=5",
                    "--detection.evaluation-interval=15s",
                    "--log.level=debug",
                    "--log.format",
                    "json",
                    "--agent.enable",
                    "--config.check",
                    "--web.config.file=web.yml",
                    "--storage.max-page-count=100"};
    lw_flags f;
    char err[256] = "";
    int rc = lw_flags_parse((int)(sizeof(argv) / sizeof(argv[0])), argv, &f, err, sizeof(err));
    printf("flags rc=%d err=%s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_string_equal(f.config_file, "c.yml");
    assert_string_equal(f.storage_path, "/tmp/x.db");
    assert_int_equal(f.retention_time_ns, 86400 * S);
    assert_int_equal(f.retention_size_bytes, 512LL << 20);
    assert_string_equal(f.web_listen_address, "127.0.0.1:1");
    assert_int_equal(f.n_targets, 2);
    assert_string_equal(f.targets[1], "https://h/app/");
    assert_int_equal(f.scrape_interval_ns, S);
    assert_int_equal(f.scrape_timeout_ns, S / 2);
    assert_int_equal(f.n_alertmanager_urls, 1);
    assert_int_equal(f.detection_window_ns, 120 * S);
    assert_int_equal(f.detection_for_ns, 0);
    assert_int_equal(f.detection_min_samples, 5);
    assert_int_equal(f.detection_evaluation_interval_ns, 15 * S);
    assert_string_equal(f.log_level, "debug");
    assert_string_equal(f.log_format, "json");
    assert_true(f.agent_enable);
    assert_true(f.config_check);
    assert_string_equal(f.web_config_file, "web.yml");
    assert_int_equal(f.storage_max_page_count, 100);
    assert_false(f.help);

    /* Flags applied to a config: --target job, overrides. */
    lw_config *c = parse_ok("global: {evaluation_interval: 2m}\nscrape_configs:\n  - job_name: other\n", &f);
    assert_int_equal(c->scrape_interval_ns, S);
    assert_int_equal(c->scrape_timeout_ns, S / 2);
    assert_int_equal(c->evaluation_interval_ns, 15 * S); /* the flag wins */
    assert_int_equal(c->scrape_configs[0].scrape_interval_ns, S);
    const lw_scrape_config *lw = lw_config_job(c, "leakwatch");
    assert_non_null(lw);
    assert_int_equal(lw->n_static_configs, 2);
    assert_string_equal(lw->static_configs[0].targets[0], "127.0.0.1:6060");
    assert_string_equal(lw->static_configs[0].labels[0].name, "__scheme__");
    assert_string_equal(lw->static_configs[0].labels[0].value, "http");
    assert_string_equal(lw->static_configs[1].targets[0], "h:443");
    assert_string_equal(lw->static_configs[1].labels[0].value, "https");
    assert_string_equal(lw->static_configs[1].labels[1].name, "__path_prefix__");
    assert_string_equal(lw->static_configs[1].labels[1].value, "/app");
    assert_int_equal(c->leak.window_ns, 120 * S);
    assert_int_equal(c->leak.for_ns, 0);
    assert_int_equal(c->leak.min_samples, 5);
    assert_int_equal(c->alerting.n_alertmanagers, 1);
    assert_string_equal(c->alerting.alertmanagers[0].targets[0], "127.0.0.1:9093");
    lw_config_free(c);
    expect_err_flags("scrape_configs:\n  - job_name: leakwatch\n", &f,
                     "--target: job \"leakwatch\" is already defined in config.yaml");
    lw_flags_cleanup(&f);

    /* Defaults. */
    char *argv0[] = {"leakwatchd"};
    assert_int_equal(lw_flags_parse(1, argv0, &f, err, sizeof(err)), 0);
    assert_string_equal(f.storage_path, "./data/leakwatch.db");
    assert_int_equal(f.retention_time_ns, 7 * 86400 * S);
    assert_int_equal(f.retention_size_bytes, 0);
    assert_int_equal(f.retention_interval_ns, 60 * S);
    assert_string_equal(f.web_listen_address, "127.0.0.1:9475");
    assert_string_equal(f.log_level, "info");
    assert_string_equal(f.log_format, "logfmt");
    assert_null(f.config_file);
    lw_config *none = NULL;
    rc = lw_config_load(&f, &none, err, sizeof(err));
    printf("no config: %s\n", err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err, "nothing to scrape: give --config.file=FILE or at least one "
                             "--target=URL (see --help)");
    lw_flags_cleanup(&f);
}

static void flags_errors(void **state)
{
    (void)state;
    static const struct {
        const char *arg;
        const char *want;
    } cases[] = {
        {"--foo=1", "unknown flag --foo (see --help)"},
        {"--scrape.interval=5x", "--scrape.interval: invalid duration \"5x\""},
        {"--scrape.interval=0", "--scrape.interval: must be greater than 0"},
        {"--detection.evaluation-interval=0s", "--detection.evaluation-interval: must be greater than 0"},
        {"--storage.retention.size=lots", "--storage.retention.size: invalid size \"lots\" (e.g. "
                                          "512MB, 1GiB, 0)"},
        {"--log.level=trace", "--log.level: invalid level \"trace\" (want debug, info, warn or error)"},
        {"--log.format=xml", "--log.format: invalid format \"xml\" (want logfmt or json)"},
        {"--detection.min-samples=x", "--detection.min-samples: invalid count \"x\""},
        {"--config.file", "--config.file needs a value"},
        {"--config.check=maybe", "--config.check: invalid boolean \"maybe\""},
        {"positional", "unexpected argument \"positional\" (flags start with --)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = {"leakwatchd", (char *)cases[i].arg};
        lw_flags f;
        char err[256] = "";
        int rc = lw_flags_parse(2, argv, &f, err, sizeof(err));
        printf("%s -> rc=%d %s (want %s)\n", cases[i].arg, rc, err, cases[i].want);
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(err, cases[i].want);
        lw_flags_cleanup(&f);
    }
    /* Flag/config interplay errors. */
    char *argv[] = {"leakwatchd", "--scrape.interval=1s", "--scrape.timeout=2s", "--target=h:1"};
    lw_flags f;
    char err[256];
    assert_int_equal(lw_flags_parse(4, argv, &f, err, sizeof(err)), 0);
    expect_err_flags(NULL, &f, "--scrape.timeout: scrape timeout 2s is greater than scrape interval 1s");
    lw_flags_cleanup(&f);
    char *argv2[] = {"leakwatchd", "--target=ftp://h:1"};
    assert_int_equal(lw_flags_parse(2, argv2, &f, err, sizeof(err)), 0);
    lw_config *c = NULL;
    assert_int_equal(lw_config_load(&f, &c, err, sizeof(err)), -EINVAL);
    printf("got %s\n", err);
    assert_string_equal(err, "--target: invalid URL \"ftp://h:1\": scheme must be http or https");
    lw_flags_cleanup(&f);
    char *argv3[] = {"leakwatchd", "--config.file=/nonexistent/leakwatch.yml"};
    assert_int_equal(lw_flags_parse(2, argv3, &f, err, sizeof(err)), 0);
    assert_int_equal(lw_config_load(&f, &c, err, sizeof(err)), -ENOENT);
    printf("got %s\n", err);
    assert_string_equal(err, "/nonexistent/leakwatch.yml: No such file or directory");
    lw_flags_cleanup(&f);
    /* --help and --no-bool. */
    char *argv4[] = {"leakwatchd", "--help", "--no-agent.enable", "--version"};
    assert_int_equal(lw_flags_parse(4, argv4, &f, err, sizeof(err)), 0);
    assert_true(f.help);
    assert_true(f.version);
    assert_false(f.agent_enable);
    lw_flags_cleanup(&f);
    lw_buf usage;
    lw_buf_init(&usage, 1 << 16);
    assert_int_equal(lw_flags_usage(&usage), 0);
    printf("%s", usage.data);
    static const char *const names[] = {"--config.file", "--config.check", "--storage.path",
                                        "--storage.retention.time", "--storage.retention.size",
                                        "--storage.retention.interval", "--storage.max-page-count",
                                        "--web.listen-address", "--web.config.file", "--target",
                                        "--scrape.interval", "--scrape.timeout",
                                        "--alertmanager.url", "--detection.window",
                                        "--detection.for", "--detection.min-samples", "--log.level",
                                        "--log.format", "--agent.enable", "--help", "--version"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_non_null(strstr(usage.data, names[i]));
    lw_buf_cleanup(&usage);
}

static void file_sd(void **state)
{
    (void)state;
    lw_target_group *g;
    size_t n;
    struct lw_arena *a;
    char err[LW_CONFIG_ERR_LEN] = "";
    const char *json = "[\n  {\"targets\": [\"127.0.0.1:1\", \"h\"], \"labels\": {\"env\": \"x\"}},\n"
                       "  {\"targets\": []}\n]\n";
    assert_int_equal(lw_file_sd_parse("t.json", json, strlen(json), "http", &g, &n, &a, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(g[0].n_targets, 2);
    assert_string_equal(g[0].targets[1], "h:80");
    assert_string_equal(g[0].labels[0].value, "x");
    assert_int_equal(g[1].n_targets, 0);
    lw_arena_free(a);
    const char *yml = "- targets: ['a:1']\n  labels:\n    team: t\n";
    assert_int_equal(lw_file_sd_parse("t.yml", yml, strlen(yml), "https", &g, &n, &a, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_string_equal(g[0].labels[0].name, "team");
    lw_arena_free(a);
    assert_int_equal(lw_file_sd_parse("e.json", "", 0, "http", &g, &n, &a, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    lw_arena_free(a);
    static const struct {
        const char *text;
        const char *want;
    } bad[] = {
        {"{\"targets\": []}", "t.json:1:1: file_sd: expected a list, got a mapping"},
        {"[{\"targets\": [\"a:1\"], \"lables\": {}}]", "t.json:1:23: lables: unknown key in target group"},
        {"[{\"targets\": \"a:1\"}]", "t.json:1:14: targets: expected a list, got a scalar"},
        {"[{\"targets\": [\"a b\"]}]", "t.json:1:15: targets: invalid target \"a b\": want host:port "
                                      "without scheme or path"},
        {"[{\"targets\": [\"a:1\"]", "t.json:2:1: yaml: did not find expected ',' or '}' while parsing a flow mapping"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = lw_file_sd_parse("t.json", bad[i].text, strlen(bad[i].text), "http", &g, &n, &a, err,
                                  sizeof(err));
        printf("%s -> rc=%d %s\n  want %s\n", bad[i].text, rc, err, bad[i].want);
        assert_int_equal(rc, -EINVAL);
        assert_string_equal(err, bad[i].want);
    }
}

static void alias_bomb_is_bounded(void **state)
{
    (void)state;
    /* One list of 2000 strings referenced by 600 params: 1.2 million values
     * if expanded, from a 12 KB file. The walk must give up, not allocate. */
    lw_buf y;
    lw_buf_init(&y, 1 << 20);
    assert_int_equal(lw_buf_puts(&y, "scrape_configs:\n  - job_name: a\n    params:\n      p0: &l ["), 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(lw_buf_puts(&y, i ? ",x" : "x"), 0);
    assert_int_equal(lw_buf_puts(&y, "]\n"), 0);
    for (int i = 1; i < 600; i++)
        assert_int_equal(lw_buf_printf(&y, "      p%d: *l\n", i), 0);
    lw_config *c = NULL;
    char err[LW_CONFIG_ERR_LEN] = "";
    int rc = lw_config_parse("bomb.yaml", y.data, y.len, NULL, &c, err, sizeof(err));
    printf("%zu bytes: rc=%d err=%s\n", y.len, rc, err);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, "document too large"));
    lw_buf_cleanup(&y);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

static void sample_configs(void **state)
{
    (void)state;
    lw_flags f;
    char err[LW_CONFIG_ERR_LEN] = "";
    char *argv[] = {"leakwatchd", "--config.file=" LW_SOURCE_DIR "/tests/data/config/leakwatch.yml"};
    assert_int_equal(lw_flags_parse(2, argv, &f, err, sizeof(err)), 0);
    lw_config *c = NULL;
    int rc = lw_config_load(&f, &c, err, sizeof(err));
    printf("leakwatch.yml: rc=%d %s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_int_equal(c->n_scrape_configs, 3);
    const lw_scrape_config *cs = lw_config_job(c, "c-service");
    assert_string_equal(cs->path_prefix, "/admin");
    assert_true(lw_config_profile(cs, "threadcreate")->enabled);
    assert_string_equal(cs->authorization.credentials_file, "/etc/leakwatch/token");
    assert_false(c->leak.signals[LW_SIGNAL_HEAP_INUSE_OBJECTS].enabled);
    lw_config_free(c);
    lw_flags_cleanup(&f);

    size_t len;
    char *json = slurp(LW_SOURCE_DIR "/tests/data/config/targets.json", &len);
    lw_target_group *g;
    size_t n;
    struct lw_arena *a;
    rc = lw_file_sd_parse("targets.json", json, len, "http", &g, &n, &a, err, sizeof(err));
    printf("targets.json: rc=%d %s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_string_equal(g[1].targets[0], "worker-3.internal:6060");
    lw_arena_free(a);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations),   cmocka_unit_test(sizes),
        cmocka_unit_test(defaults),    cmocka_unit_test(full_config),
        cmocka_unit_test(malformed),   cmocka_unit_test(flags_parse),
        cmocka_unit_test(flags_errors), cmocka_unit_test(file_sd),
        cmocka_unit_test(alias_bomb_is_bounded), cmocka_unit_test(sample_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
