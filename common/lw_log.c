/* lw_log.c — logfmt/JSON line logger (see lw_log.h).
 *
 * The line is assembled in a fixed stack buffer (truncated, never
 * allocated) and written with a single write(2): small writes to stderr are
 * atomic enough that concurrent threads do not interleave within a line.
 */
#include "lw_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

static atomic_int g_level = LW_LOG_INFO;
static atomic_int g_format = LW_LOG_LOGFMT;
static atomic_int g_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int lw_log_level_parse(const char *name, lw_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (lw_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

int lw_log_format_parse(const char *name, lw_log_format *out)
{
    if (strcmp(name, "logfmt") == 0)
        *out = LW_LOG_LOGFMT;
    else if (strcmp(name, "json") == 0)
        *out = LW_LOG_JSON;
    else
        return -EINVAL;
    return 0;
}

void lw_log_setup(lw_log_level level, lw_log_format format)
{
    atomic_store(&g_level, (int)level);
    atomic_store(&g_format, (int)format);
}

void lw_log_set_fd(int fd)
{
    atomic_store(&g_fd, fd);
}

int lw_log_enabled(lw_log_level level)
{
    return (int)level >= atomic_load(&g_level);
}

/* A bounded line under construction; overflow silently truncates. */
typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
} line;

static void put_char(line *l, char c)
{
    if (l->len < sizeof(l->buf) - 2)
        l->buf[l->len++] = c;
}

static void put_str(line *l, const char *s)
{
    for (; *s; s++)
        put_char(l, *s);
}

static bool logfmt_needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c >= 0x7f)
            return true;
    }
    return false;
}

/* Quoted string with JSON-style escapes (valid for logfmt and JSON). */
static void put_quoted(line *l, const char *s)
{
    put_char(l, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            put_char(l, '\\');
            put_char(l, (char)c);
        } else if (c == '\n') {
            put_str(l, "\\n");
        } else if (c == '\t') {
            put_str(l, "\\t");
        } else if (c == '\r') {
            put_str(l, "\\r");
        } else if (c < 0x20) {
            char tmp[8];
            snprintf(tmp, sizeof(tmp), "\\u%04x", c);
            put_str(l, tmp);
        } else {
            put_char(l, (char)c);
        }
    }
    put_char(l, '"');
}

static void put_pair(line *l, bool json, bool first, const char *k, const char *v)
{
    if (json) {
        if (!first)
            put_char(l, ',');
        put_quoted(l, k);
        put_char(l, ':');
        put_quoted(l, v);
    } else {
        if (!first)
            put_char(l, ' ');
        put_str(l, k);
        put_char(l, '=');
        if (logfmt_needs_quotes(v))
            put_quoted(l, v);
        else
            put_str(l, v);
    }
}

void lw_vlog(lw_log_level level, const char *msg, va_list kv)
{
    if (!lw_log_enabled(level))
        return;
    bool json = atomic_load(&g_format) == LW_LOG_JSON;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[96];
    snprintf(tbuf, sizeof(tbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    line l;
    l.len = 0;
    if (json)
        put_char(&l, '{');
    put_pair(&l, json, true, "ts", tbuf);
    put_pair(&l, json, false, "level", level_names[level]);
    put_pair(&l, json, false, "msg", msg ? msg : "");
    for (;;) {
        const char *k = va_arg(kv, const char *);
        if (!k)
            break;
        const char *v = va_arg(kv, const char *);
        put_pair(&l, json, false, k, v ? v : "");
    }
    if (json)
        put_char(&l, '}');
    l.buf[l.len++] = '\n';
    ssize_t n = write(atomic_load(&g_fd), l.buf, l.len);
    (void)n;
}

void lw_log(lw_log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    lw_vlog(level, msg, ap);
    va_end(ap);
}
