/* test_lw_log.c — unit tests of common/lw_log.h: logfmt quoting, JSON
 * escaping, level filtering, name parsing. Output goes to a pipe. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lw_log.h"

/* Log through fn into a pipe and return what was written (static buffer). */
static const char *capture(void (*fn)(void))
{
    static char buf[16384];
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    lw_log_set_fd(fds[1]);
    fn();
    lw_log_set_fd(2);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    printf("captured: %s", buf);
    return buf;
}

static void emit(void)
{
    lw_log(LW_LOG_INFO, "scrape failed", "job", "a b", "err", "HTTP \"500\"\n", "empty", "", "plain",
           "x=y", "null", NULL, NULL);
    lw_log(LW_LOG_DEBUG, "hidden", NULL);
}

static void logfmt(void **state)
{
    (void)state;
    lw_log_setup(LW_LOG_INFO, LW_LOG_LOGFMT);
    const char *out = capture(emit);
    assert_non_null(strstr(out, " level=info msg=\"scrape failed\" job=\"a b\" err=\"HTTP \\\"500\\\"\\n\" "
                                "empty=\"\" plain=\"x=y\" null=\"\"\n"));
    assert_int_equal(strncmp(out, "ts=", 3), 0);
    assert_null(strstr(out, "hidden"));
}

static void json(void **state)
{
    (void)state;
    lw_log_setup(LW_LOG_DEBUG, LW_LOG_JSON);
    const char *out = capture(emit);
    assert_non_null(strstr(out, ",\"level\":\"info\",\"msg\":\"scrape failed\",\"job\":\"a b\","
                                "\"err\":\"HTTP \\\"500\\\"\\n\",\"empty\":\"\",\"plain\":\"x=y\",\"null\":\"\"}\n"));
    assert_non_null(strstr(out, "\"level\":\"debug\",\"msg\":\"hidden\"}\n"));
    assert_int_equal(strncmp(out, "{\"ts\":\"", 7), 0);
    lw_log_setup(LW_LOG_INFO, LW_LOG_LOGFMT);
}

static void names(void **state)
{
    (void)state;
    lw_log_level l;
    lw_log_format f;
    assert_int_equal(lw_log_level_parse("warn", &l), 0);
    assert_int_equal(l, LW_LOG_WARN);
    assert_int_equal(lw_log_level_parse("verbose", &l), -EINVAL);
    assert_int_equal(lw_log_format_parse("json", &f), 0);
    assert_int_equal(f, LW_LOG_JSON);
    assert_int_equal(lw_log_format_parse("text", &f), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(logfmt),
        cmocka_unit_test(json),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
