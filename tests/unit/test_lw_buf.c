/* test_lw_buf.c — unit tests of the capped growable buffer (common/lw_buf.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lw_buf.h"

static void append_within_cap(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 16);
    assert_int_equal(lw_buf_puts(&b, "hello"), 0);
    assert_int_equal(lw_buf_printf(&b, " %d", 42), 0);
    assert_string_equal(b.data, "hello 42");
    assert_int_equal(b.len, 8);
    lw_buf_cleanup(&b);
    assert_null(b.data);
}

static void reserve_then_write_in_place(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 10);
    assert_int_equal(lw_buf_puts(&b, "ab"), 0);
    assert_int_equal(lw_buf_reserve(&b, 8), 0);
    assert_true(b.cap >= b.len + 8 + 1);
    assert_string_equal(b.data, "ab"); /* contents unchanged */
    memcpy(b.data + b.len, "cdefghij", 8);
    b.len += 8;
    b.data[b.len] = '\0';
    assert_string_equal(b.data, "abcdefghij");
    /* Full: even one more byte is over the cap, and nothing changes. */
    size_t cap = b.cap;
    assert_int_equal(lw_buf_reserve(&b, 1), -E2BIG);
    assert_int_equal(b.cap, cap);
    assert_int_equal(lw_buf_reserve(&b, 0), 0);
    assert_int_equal(lw_buf_reserve(&b, SIZE_MAX), -E2BIG);
    lw_buf_cleanup(&b);
}

static void append_over_cap_fails_and_keeps_contents(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 8);
    assert_int_equal(lw_buf_puts(&b, "12345678"), 0);
    assert_int_equal(lw_buf_puts(&b, "9"), -E2BIG);
    assert_int_equal(lw_buf_printf(&b, "%s", "x"), -E2BIG);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(b.len, 8);
    lw_buf_cleanup(&b);
}

static void json_string_escapes(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 64);
    assert_int_equal(lw_buf_json_str(&b, "a\"b\\c\n\x01"), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    lw_buf_reset(&b);
    assert_int_equal(b.len, 0);
    lw_buf_cleanup(&b);
}

static void json_string_over_cap_rolls_back(void **state)
{
    (void)state;
    lw_buf b;
    lw_buf_init(&b, 6);
    assert_int_equal(lw_buf_puts(&b, "ab"), 0);
    assert_int_equal(lw_buf_json_str(&b, "xyzw"), -E2BIG);
    assert_string_equal(b.data, "ab");
    size_t n = 0;
    char *d = lw_buf_detach(&b, &n);
    assert_int_equal(n, 2);
    assert_string_equal(d, "ab");
    free(d);
    assert_null(b.data);
}

static void read_file_whole_capped_and_missing(void **state)
{
    (void)state;
    char path[] = "/tmp/lw_buf_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello file", 10), 10);
    close(fd);

    lw_buf b;
    lw_buf_init(&b, 64);
    assert_int_equal(lw_buf_read_file(&b, path), 0);
    assert_string_equal(b.data, "hello file");
    lw_buf_cleanup(&b);

    lw_buf_init(&b, 4);
    assert_int_equal(lw_buf_read_file(&b, path), -E2BIG);
    lw_buf_cleanup(&b);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    close(fd);
    lw_buf_init(&b, 64);
    assert_int_equal(lw_buf_read_file(&b, path), 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    lw_buf_cleanup(&b);

    unlink(path);
    lw_buf_init(&b, 64);
    assert_int_equal(lw_buf_read_file(&b, path), -ENOENT);
    lw_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(append_within_cap),
        cmocka_unit_test(append_over_cap_fails_and_keeps_contents),
        cmocka_unit_test(reserve_then_write_in_place),
        cmocka_unit_test(json_string_escapes),
        cmocka_unit_test(json_string_over_cap_rolls_back),
        cmocka_unit_test(read_file_whole_capped_and_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
