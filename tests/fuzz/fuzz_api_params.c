/* fuzz_api_params.c — libFuzzer target for the API's query parameter
 * parsers (api/params.h): the input, cut at its first NUL as libmicrohttpd
 * hands values over, goes through every parser. Properties checked on
 * success: a parsed time formats as RFC3339 and parses back to the same
 * nanosecond; durations are >= 0; bounded integers stay in their bounds; a
 * selector has at most API_SELECTOR_MAX_LABELS matchers, each found again
 * by api_selector_get().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lw_buf.h"
#include "params.h"

/* A fixed "now" (2026-11-25T21:00:00Z) so that runs are reproducible. */
#define FUZZ_NOW_NS (INT64_C(1795640400) * API_NS_PER_SECOND)
#define FUZZ_ERR_LEN 256

static void check_time(const char *s)
{
    char err[FUZZ_ERR_LEN] = "";
    int64_t t = 0, again = 0;
    if (api_parse_time(s, FUZZ_NOW_NS, &t, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            fuzz_fail("api_parse_time failed without a message");
        return;
    }
    if (t < 0)
        fuzz_fail("time \"%s\" parsed before 1970: %lld", s, (long long)t);
    char text[64];
    api_format_time_buf(t, text, sizeof(text));
    if (api_parse_time(text, FUZZ_NOW_NS, &again, err, sizeof(err)) != 0 || again != t)
        fuzz_fail("time \"%s\" = %lld formats as \"%s\", which does not parse back (%s)", s,
                  (long long)t, text, err);
    lw_buf b;
    lw_buf_init(&b, 128);
    if (api_format_time(&b, t) != 0 || strcmp(b.data, text) != 0)
        fuzz_fail("api_format_time and api_format_time_buf disagree on %lld", (long long)t);
    lw_buf_cleanup(&b);
}

static void check_numbers(const char *s)
{
    char err[FUZZ_ERR_LEN] = "";
    int64_t d = 0;
    if (api_parse_duration(s, &d, err, sizeof(err)) == 0 && d < 0)
        fuzz_fail("duration \"%s\" parsed as negative %lld", s, (long long)d);
    uint64_t u = 0;
    if (api_parse_uint(s, 1, 1000, &u, err, sizeof(err)) == 0 && (u < 1 || u > 1000))
        fuzz_fail("uint \"%s\" parsed as %llu, outside [1, 1000]", s, (unsigned long long)u);
    if (api_parse_uint(s, 0, UINT64_MAX, &u, err, sizeof(err)) != 0 && err[0] == '\0')
        fuzz_fail("api_parse_uint failed without a message");
}

static void check_selector(const char *s)
{
    char err[FUZZ_ERR_LEN] = "";
    api_selector *sel = malloc(sizeof(*sel));
    if (!sel)
        return;
    if (api_parse_selector(s, sel, err, sizeof(err)) != 0)
        goto out;
    if (sel->n_matchers > API_SELECTOR_MAX_LABELS)
        fuzz_fail("selector has %zu matchers", sel->n_matchers);
    for (size_t i = 0; i < sel->n_matchers; i++) {
        const char *v = api_selector_get(sel, sel->matchers[i].name);
        if (!v || strcmp(v, sel->matchers[i].value) != 0)
            fuzz_fail("selector matcher %zu (%s) is not found again", i, sel->matchers[i].name);
    }
out:
    free(sel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly the value's bytes and a NUL: over-reads past it are caught. */
    size_t n = strnlen((const char *)data, size);
    char *s = malloc(n + 1);
    if (!s)
        return 0;
    memcpy(s, data, n);
    s[n] = '\0';

    char err[FUZZ_ERR_LEN] = "";
    api_format fmt;
    check_time(s);
    check_numbers(s);
    check_selector(s);
    (void)!api_check_label_value(s, err, sizeof(err));
    (void)!api_check_profile_type(s, err, sizeof(err));
    (void)!api_check_signal(s, err, sizeof(err));
    (void)!api_parse_format(s, &fmt, err, sizeof(err));
    free(s);
    return 0;
}
