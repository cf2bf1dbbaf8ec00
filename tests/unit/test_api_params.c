/* test_api_params.c — unit tests of the API's parameter parsing (api/params.h):
 * times, durations, integers, label values, profile types, signals,
 * formats, selectors, and the message of every kind of bad input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "params.h"

#define S API_NS_PER_SECOND
#define NOW (INT64_C(1800000000) * S)

static void ok_time(const char *in, int64_t want)
{
    int64_t got = -1;
    char err[256] = "";
    int rc = api_parse_time(in, NOW, &got, err, sizeof err);
    printf("time %-40s -> rc %d, %lld (want %lld) %s\n", in, rc, (long long)got, (long long)want, err);
    assert_int_equal(rc, 0);
    assert_int_equal(got, want);
}

static void bad_time(const char *in, const char *want_msg)
{
    int64_t got = 12345;
    char err[256] = "";
    int rc = api_parse_time(in, NOW, &got, err, sizeof err);
    printf("time %-40.40s -> rc %d, \"%s\" (want \"%s\")\n", in, rc, err, want_msg);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(got, 12345); /* untouched on failure */
    assert_non_null(strstr(err, want_msg));
}

static void times_good(void **state)
{
    (void)state;
    ok_time("now", NOW);
    ok_time("now-30m", NOW - 1800 * S);
    ok_time("now+1h30m", NOW + 5400 * S);
    ok_time("now-90", NOW - 90 * S);
    ok_time("1700000000", INT64_C(1700000000) * S);
    ok_time("1700000000.5", INT64_C(1700000000) * S + 500000000);
    ok_time("1700000000.123456789999", INT64_C(1700000000) * S + 123456789);
    ok_time("0", 0);
    ok_time("2023-11-14T22:13:20Z", INT64_C(1700000000) * S);
    ok_time("2023-11-14t22:13:20z", INT64_C(1700000000) * S);
    ok_time("2023-11-14T23:13:20+01:00", INT64_C(1700000000) * S);
    ok_time("2023-11-14T20:43:20-01:30", INT64_C(1700000000) * S);
    ok_time("2023-11-14T22:13:20.25Z", INT64_C(1700000000) * S + 250000000);
    ok_time("2024-02-29T00:00:00Z", INT64_C(1709164800) * S);
    ok_time("1970-01-01T00:00:00Z", 0);
    ok_time("2016-12-31T23:59:60Z", INT64_C(1483228799) * S); /* leap second */
}

static void times_bad(void **state)
{
    (void)state;
    bad_time("", "empty value");
    bad_time("yesterday", "cannot parse \"yesterday\" as a time (want RFC3339, Unix seconds, \"now\" or \"now-30m\")");
    bad_time("now-", "cannot parse \"now-\" as a time: empty value");
    bad_time("now-5x", "cannot parse \"now-5x\" as a time: cannot parse \"5x\" as a duration");
    bad_time("now*5", "cannot parse \"now*5\" as a time");
    bad_time("nowadays", "cannot parse \"nowadays\" as a time");
    bad_time("-1", "cannot parse \"-1\" as a time");
    bad_time("1e9", "cannot parse \"1e9\" as a time");
    bad_time("1700000000.", "cannot parse \"1700000000.\" as a time");
    bad_time(" 1700000000", "cannot parse \" 1700000000\" as a time");
    bad_time("2023-11-14T22:13:20", "cannot parse \"2023-11-14T22:13:20\" as a time");
    bad_time("2023-11-14", "cannot parse \"2023-11-14\" as a time");
    bad_time("2023-13-01T00:00:00Z", "time \"2023-13-01T00:00:00Z\" is out of range");
    bad_time("2023-02-29T00:00:00Z", "is out of range");
    bad_time("2023-04-31T00:00:00Z", "is out of range");
    bad_time("2023-01-01T24:00:00Z", "is out of range");
    bad_time("2023-01-01T00:00:00+24:00", "is out of range");
    bad_time("1969-12-31T23:59:59Z", "is out of range (1970 to 2262)");
    bad_time("2263-01-01T00:00:00Z", "is out of range");
    bad_time("99999999999999999999", "is out of range");
    bad_time("9300000000", "is out of range");
    bad_time("now-200y", "is out of range");
    bad_time("now+250y", "is out of range");
    bad_time("now+300y", "duration \"300y\" is too long");
    bad_time("now\x01", "cannot parse \"now?\" as a time");
    char long_in[2000];
    memset(long_in, '1', sizeof long_in - 1);
    long_in[sizeof long_in - 1] = '\0';
    bad_time(long_in, "value longer than 1024 bytes");
    /* The echoed value is shortened. */
    char err[256];
    int64_t t;
    memset(long_in, 'x', 1000);
    long_in[1000] = '\0';
    assert_int_equal(api_parse_time(long_in, NOW, &t, err, sizeof err), -EINVAL);
    printf("long bad time -> \"%s\"\n", err);
    assert_non_null(strstr(err, "xxx...\""));
    assert_true(strlen(err) < 200);
    /* NULL err is allowed. */
    assert_int_equal(api_parse_time("x", NOW, &t, NULL, 0), -EINVAL);
}

static void ok_dur(const char *in, int64_t want)
{
    int64_t got = -1;
    char err[256] = "";
    int rc = api_parse_duration(in, &got, err, sizeof err);
    printf("duration %-16s -> rc %d, %lld (want %lld) %s\n", in, rc, (long long)got, (long long)want, err);
    assert_int_equal(rc, 0);
    assert_int_equal(got, want);
}

static void bad_dur(const char *in, const char *want_msg)
{
    int64_t got = 777;
    char err[256] = "";
    int rc = api_parse_duration(in, &got, err, sizeof err);
    printf("duration %-16.16s -> rc %d, \"%s\" (want \"%s\")\n", in, rc, err, want_msg);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(got, 777);
    assert_non_null(strstr(err, want_msg));
}

static void durations(void **state)
{
    (void)state;
    ok_dur("30s", 30 * S);
    ok_dur("5m", 300 * S);
    ok_dur("1h30m", 5400 * S);
    ok_dur("2d", 2 * 86400 * S);
    ok_dur("1w", 7 * 86400 * S);
    ok_dur("1y", 365 * 86400 * S);
    ok_dur("500ms", 500000000);
    ok_dur("1m30s500ms", 90 * S + 500000000);
    ok_dur("1h0m", 3600 * S);
    ok_dur("90", 90 * S);
    ok_dur("1.5", 1500000000);
    ok_dur("0", 0);
    ok_dur("0s", 0);
    bad_dur("", "empty value");
    bad_dur("5x", "cannot parse \"5x\" as a duration (want e.g. \"30s\", \"5m\", \"1h30m\", \"2d\" or seconds)");
    bad_dur("30m1h", "units must go from largest to smallest, each at most once");
    bad_dur("1h1h", "units must go from largest to smallest");
    bad_dur("1ms1s", "units must go from largest to smallest");
    bad_dur("m", "cannot parse \"m\" as a duration");
    bad_dur("-5m", "cannot parse \"-5m\" as a duration");
    bad_dur("1.5h", "cannot parse \"1.5h\" as a duration");
    bad_dur(" 5m", "cannot parse \" 5m\" as a duration");
    bad_dur("5m ", "cannot parse \"5m \" as a duration");
    bad_dur("99999999999y", "duration \"99999999999y\" is too long");
    bad_dur("9223372036854775807", "is too long");
    bad_dur("300y", "is too long");
}

static void integers(void **state)
{
    (void)state;
    uint64_t v = 0;
    char err[256];
    assert_int_equal(api_parse_uint("42", 1, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 42);
    assert_int_equal(api_parse_uint("18446744073709551615", 0, UINT64_MAX, &v, err, sizeof err), 0);
    assert_true(v == UINT64_MAX);
    struct {
        const char *in;
        const char *msg;
    } bad[] = {
        {"0", "\"0\" is out of range (1 to 100)"},
        {"101", "\"101\" is out of range (1 to 100)"},
        {"-1", "cannot parse \"-1\" as a non-negative integer"},
        {"1a", "cannot parse \"1a\" as a non-negative integer"},
        {"+1", "cannot parse \"+1\" as a non-negative integer"},
        {"99999999999999999999999", "is out of range (1 to 100)"},
        {"", "empty value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 5;
        int rc = api_parse_uint(bad[i].in, 1, 100, &v, err, sizeof err);
        printf("uint %-24s -> rc %d \"%s\" (want \"%s\")\n", bad[i].in, rc, err, bad[i].msg);
        assert_int_equal(rc, -EINVAL);
        assert_int_equal(v, 5);
        assert_non_null(strstr(err, bad[i].msg));
    }
}

static void names_and_enums(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(api_check_label_value("api", err, sizeof err), 0);
    assert_int_equal(api_check_label_value("10.0.0.1:8080", err, sizeof err), 0);
    assert_int_equal(api_check_label_value("a\nb", err, sizeof err), -EINVAL);
    printf("label a\\nb -> \"%s\"\n", err);
    assert_string_equal(err, "control character at byte 1");
    char longv[300];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(api_check_label_value(longv, err, sizeof err), -EINVAL);
    assert_string_equal(err, "value longer than 256 bytes");

    assert_int_equal(api_check_profile_type("goroutine", err, sizeof err), 0);
    assert_int_equal(api_check_profile_type("heap", err, sizeof err), 0);
    assert_int_equal(api_check_profile_type("heap profile", err, sizeof err), -EINVAL);
    printf("type 'heap profile' -> \"%s\"\n", err);
    assert_non_null(strstr(err, "\"heap profile\" is not a profile type"));
    assert_int_equal(api_check_profile_type("abcdefghijabcdefghijabcdefghijab", err, sizeof err), -EINVAL);

    assert_int_equal(api_check_signal("goroutines", err, sizeof err), 0);
    assert_int_equal(api_check_signal("heap_inuse_bytes", err, sizeof err), 0);
    assert_int_equal(api_check_signal("threads", err, sizeof err), -EINVAL);
    printf("signal threads -> \"%s\"\n", err);
    assert_non_null(strstr(err, "unknown signal \"threads\" (want goroutines"));

    api_format f = API_FORMAT_JSON;
    assert_int_equal(api_parse_format("pprof", &f, err, sizeof err), 0);
    assert_int_equal(f, API_FORMAT_PPROF);
    assert_int_equal(api_parse_format("folded", &f, err, sizeof err), 0);
    assert_int_equal(f, API_FORMAT_FOLDED);
    assert_int_equal(api_parse_format("text", &f, err, sizeof err), 0);
    assert_int_equal(f, API_FORMAT_TEXT);
    assert_int_equal(api_parse_format("xml", &f, err, sizeof err), -EINVAL);
    assert_int_equal(f, API_FORMAT_TEXT);
    printf("format xml -> \"%s\"\n", err);
    assert_string_equal(err, "unknown format \"xml\" (want pprof, json, text or folded)");
}

static void selectors_good(void **state)
{
    (void)state;
    api_selector sel;
    char err[256] = "";
    assert_int_equal(api_parse_selector("{job=\"api\",instance=\"h:8080\"}", &sel, err, sizeof err), 0);
    assert_int_equal(sel.n_matchers, 2);
    assert_string_equal(api_selector_get(&sel, "job"), "api");
    assert_string_equal(api_selector_get(&sel, "instance"), "h:8080");
    assert_null(api_selector_get(&sel, "env"));
    assert_int_equal(api_parse_selector(" { job = \"a\\\"b\\\\c\\n\" , } ", &sel, err, sizeof err), 0);
    assert_int_equal(sel.n_matchers, 1);
    assert_string_equal(api_selector_get(&sel, "job"), "a\"b\\c\n");
    assert_int_equal(api_parse_selector("{}", &sel, err, sizeof err), 0);
    assert_int_equal(sel.n_matchers, 0);
    assert_int_equal(api_parse_selector("{job=\"\"}", &sel, err, sizeof err), 0);
    assert_string_equal(api_selector_get(&sel, "job"), "");
}

static void selectors_bad(void **state)
{
    (void)state;
    struct {
        const char *in;
        const char *msg;
    } bad[] = {
        {"job=\"a\"", "selector must start with '{'"},
        {"{job=~\"a\"}", "only '=' matchers are supported"},
        {"{job!=\"a\"}", "only '=' matchers are supported"},
        {"{job!~\"a\"}", "only '=' matchers are supported"},
        {"{job=\"a\"", "expected ',' or '}'"},
        {"{job=\"a", "unterminated value for \"job\""},
        {"{job=\"a\",job=\"b\"}", "label \"job\" given twice"},
        {"{1job=\"a\"}", "expected a label name at offset 1"},
        {"{job=a}", "expected a double-quoted value for \"job\""},
        {"{job}", "expected '=' after \"job\""},
        {"{job=\"a\"} x", "unexpected text after '}'"},
        {"{job=\"\\x\"}", "bad escape in value for \"job\""},
        {"{job=\"a\" instance=\"b\"}", "expected ',' or '}'"},
        {"", "empty value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        api_selector sel;
        char err[256] = "";
        int rc = api_parse_selector(bad[i].in, &sel, err, sizeof err);
        printf("selector %-28s -> rc %d \"%s\" (want \"%s\")\n", bad[i].in, rc, err, bad[i].msg);
        assert_int_equal(rc, -EINVAL);
        assert_non_null(strstr(err, bad[i].msg));
    }
    /* 17 matchers */
    char many[512] = "{";
    for (int i = 0; i < 17; i++) {
        char m[32];
        snprintf(m, sizeof m, "%sl%d=\"v\"", i ? "," : "", i);
        strcat(many, m);
    }
    strcat(many, "}");
    api_selector sel;
    char err[256];
    assert_int_equal(api_parse_selector(many, &sel, err, sizeof err), -EINVAL);
    printf("17 matchers -> \"%s\"\n", err);
    assert_string_equal(err, "selector has more than 16 matchers");
    /* A maximal selector fits the storage. */
    char big[API_PARAM_MAX_LEN + 1];
    size_t n = (size_t)snprintf(big, sizeof big, "{a=\"");
    memset(big + n, 'v', API_PARAM_MAX_LEN - n - 2);
    memcpy(big + API_PARAM_MAX_LEN - 2, "\"}", 3);
    assert_int_equal(strlen(big), API_PARAM_MAX_LEN);
    assert_int_equal(api_parse_selector(big, &sel, err, sizeof err), 0);
    assert_int_equal(strlen(api_selector_get(&sel, "a")), API_PARAM_MAX_LEN - 6);
}

static void time_format_round_trip(void **state)
{
    (void)state;
    char buf[48];
    assert_string_equal(api_format_time_buf(0, buf, sizeof buf), "1970-01-01T00:00:00Z");
    assert_string_equal(api_format_time_buf(INT64_C(1700000000) * S + 500000000, buf, sizeof buf),
                        "2023-11-14T22:13:20.5Z");
    assert_string_equal(api_format_time_buf(INT64_C(1709164800) * S + 1, buf, sizeof buf),
                        "2024-02-29T00:00:00.000000001Z");
    int64_t samples[] = {0, 1, INT64_C(951782400) * S, INT64_C(1700000000123456789), INT64_C(9000000000) * S};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        int64_t back = -1;
        char err[256];
        api_format_time_buf(samples[i], buf, sizeof buf);
        assert_int_equal(api_parse_time(buf, NOW, &back, err, sizeof err), 0);
        printf("round trip %lld -> %s -> %lld\n", (long long)samples[i], buf, (long long)back);
        assert_int_equal(back, samples[i]);
    }
    lw_buf b;
    lw_buf_init(&b, 10);
    assert_int_equal(api_format_time(&b, 0), -E2BIG);
    lw_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(times_good),      cmocka_unit_test(times_bad),
        cmocka_unit_test(durations),       cmocka_unit_test(integers),
        cmocka_unit_test(names_and_enums), cmocka_unit_test(selectors_good),
        cmocka_unit_test(selectors_bad),   cmocka_unit_test(time_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
