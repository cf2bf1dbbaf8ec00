/* test_api_json.c — unit tests of the capped JSON reader the CLI uses
 * (common/lw_json.h): values, escapes, limits and the message of bad input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lw_json.h"

static void parses_envelope(void **state)
{
    (void)state;
    const char *t = "{\"status\":\"success\",\"data\":[{\"id\":12,\"x\":-1.5e3,\"ok\":true,\"n\":null,"
                    "\"s\":\"a\\\"b\\u00e9\\ud83d\\ude00\\n\"},[],{}]}";
    lw_json_doc *doc = NULL;
    const lw_json *root = NULL;
    char err[128] = "";
    assert_int_equal(lw_json_parse(t, strlen(t), &doc, &root, err, sizeof err), 0);
    assert_string_equal(lw_json_str(lw_json_get(root, "status")), "success");
    const lw_json *data = lw_json_get(root, "data");
    assert_int_equal(data->type, LW_JSON_ARRAY);
    assert_int_equal(data->n_children, 3);
    const lw_json *o = lw_json_at(data, 0);
    char buf[64];
    assert_string_equal(lw_json_text(lw_json_get(o, "id"), buf, sizeof buf), "12");
    assert_true(lw_json_get(o, "x")->num == -1500.0);
    assert_string_equal(lw_json_text(lw_json_get(o, "ok"), buf, sizeof buf), "true");
    assert_string_equal(lw_json_text(lw_json_get(o, "n"), buf, sizeof buf), "");
    assert_string_equal(lw_json_str(lw_json_get(o, "s")), "a\"b\xc3\xa9\xf0\x9f\x98\x80\n");
    assert_null(lw_json_get(o, "missing"));
    assert_null(lw_json_at(data, 3));
    assert_null(lw_json_str(lw_json_get(o, "id")));
    lw_json_free(doc);
    lw_json_free(NULL);
}

static void refuses_bad_input(void **state)
{
    (void)state;
    struct {
        const char *in;
        int rc;
        const char *msg;
    } bad[] = {
        {"", -EINVAL, "1:1: unexpected end of input"},
        {"{", -EINVAL, "expected a member name"},
        {"{\"a\" 1}", -EINVAL, "expected ':'"},
        {"[1,]", -EINVAL, "bad number"},
        {"[1 2]", -EINVAL, "expected ',' or ']'"},
        {"\"abc", -EINVAL, "unterminated string"},
        {"\"a\\qb\"", -EINVAL, "bad escape \\q"},
        {"\"\\u12\"", -EINVAL, "bad \\u escape"},
        {"\"a\nb\"", -EINVAL, "control character in string"},
        {"tru", -EINVAL, "unexpected character"},
        {"01", -EINVAL, "unexpected text after the value"},
        {"1.", -EINVAL, "bad number"},
        {"-", -EINVAL, "bad number"},
        {"{} {}", -EINVAL, "unexpected text after the value"},
        {"[\n\n  x]", -EINVAL, "3:3: bad number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lw_json_doc *doc = (lw_json_doc *)1;
        const lw_json *root = NULL;
        char err[128] = "";
        int rc = lw_json_parse(bad[i].in, strlen(bad[i].in), &doc, &root, err, sizeof err);
        printf("json %-12s -> rc %d \"%s\" (want \"%s\")\n", bad[i].in, rc, err, bad[i].msg);
        assert_int_equal(rc, bad[i].rc);
        assert_null(doc);
        assert_non_null(strstr(err, bad[i].msg));
    }
}

static void depth_limit(void **state)
{
    (void)state;
    char deep[LW_JSON_MAX_DEPTH * 2 + 8];
    size_t n = 0;
    for (int i = 0; i < LW_JSON_MAX_DEPTH + 1; i++)
        deep[n++] = '[';
    for (int i = 0; i < LW_JSON_MAX_DEPTH + 1; i++)
        deep[n++] = ']';
    lw_json_doc *doc = NULL;
    const lw_json *root = NULL;
    char err[128] = "";
    int rc = lw_json_parse(deep, n, &doc, &root, err, sizeof err);
    printf("depth %d -> rc %d \"%s\"\n", LW_JSON_MAX_DEPTH + 1, rc, err);
    assert_int_equal(rc, -E2BIG);
    /* One less fits. */
    assert_int_equal(lw_json_parse(deep + 1, n - 2, &doc, &root, err, sizeof err), 0);
    lw_json_free(doc);
}

static void big_array(void **state)
{
    (void)state;
    size_t n = 200000;
    char *t = malloc(n * 2 + 2);
    assert_non_null(t);
    t[0] = '[';
    for (size_t i = 0; i < n; i++) {
        t[1 + 2 * i] = '7';
        t[2 + 2 * i] = i + 1 < n ? ',' : ']';
    }
    lw_json_doc *doc = NULL;
    const lw_json *root = NULL;
    assert_int_equal(lw_json_parse(t, n * 2 + 1, &doc, &root, NULL, 0), 0);
    assert_int_equal(root->n_children, n);
    lw_json_free(doc);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_envelope),
        cmocka_unit_test(refuses_bad_input),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(big_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
