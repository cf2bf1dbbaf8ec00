/* params.c — API query parameter parsing (see params.h).
 *
 * All parsers are hand-written over bounded input (no sscanf/strtod, which
 * accept spaces, signs, hex and locale quirks): a value is checked against
 * API_PARAM_MAX_LEN first, then scanned once. Arithmetic on nanoseconds uses
 * overflow-checked builtins, so any input maps to a result or an error.
 * Calendar conversion uses the days-from-civil algorithm (H. Hinnant), which
 * needs neither timegm() nor the TZ environment.
 */
#include "params.h"
#include "lw_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define QUOTE_MAX 64 /* bytes of a bad value echoed in an error message */

/* A printable, shortened copy of s for messages: control bytes become '?'. */
static const char *quoted(const char *s, char *buf, size_t buf_len)
{
    size_t n = 0;
    for (; s[n] && n < QUOTE_MAX && n + 4 < buf_len; n++)
        buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n] && n + 4 < buf_len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* Refuse NULL, empty and over-long values. */
static int check_len(const char *s, char *err, size_t err_len)
{
    if (!s || !*s) {
        lw_set_err(err, err_len, "empty value");
        return -EINVAL;
    }
    size_t n = strnlen(s, API_PARAM_MAX_LEN + 1);
    if (n > API_PARAM_MAX_LEN) {
        lw_set_err(err, err_len, "value longer than %d bytes", API_PARAM_MAX_LEN);
        return -EINVAL;
    }
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parse "<digits>[.<digits>]" seconds exactly into ns. Returns 0, or -EINVAL
 * if s is not of that form, or -ERANGE on overflow. */
static int parse_decimal_seconds(const char *s, int64_t *out_ns)
{
    const char *p = s;
    int64_t secs = 0;
    if (!is_digit(*p))
        return -EINVAL;
    for (; is_digit(*p); p++) {
        if (__builtin_mul_overflow(secs, 10, &secs) || __builtin_add_overflow(secs, *p - '0', &secs))
            return -ERANGE;
    }
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return -EINVAL;
        int digits = 0;
        for (; is_digit(*p); p++, digits++) {
            if (digits < 9)
                frac = frac * 10 + (*p - '0');
        }
        for (; digits < 9; digits++)
            frac *= 10;
    }
    if (*p)
        return -EINVAL;
    int64_t ns;
    if (__builtin_mul_overflow(secs, API_NS_PER_SECOND, &ns) || __builtin_add_overflow(ns, frac, &ns))
        return -ERANGE;
    *out_ns = ns;
    return 0;
}

int api_parse_duration(const char *s, int64_t *out_ns, char *err, size_t err_len)
{
    char q[QUOTE_MAX + 8];
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    int64_t ns;
    rc = parse_decimal_seconds(s, &ns);
    if (rc == 0) {
        *out_ns = ns;
        return 0;
    }
    if (rc == -ERANGE)
        goto overflow;

    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        {"y", 365 * 24 * 3600 * API_NS_PER_SECOND}, {"w", 7 * 24 * 3600 * API_NS_PER_SECOND},
        {"d", 24 * 3600 * API_NS_PER_SECOND},       {"h", 3600 * API_NS_PER_SECOND},
        {"m", 60 * API_NS_PER_SECOND},              {"s", API_NS_PER_SECOND},
        {"ms", 1000000},
    };
    const size_t n_units = sizeof units / sizeof units[0];
    size_t next_unit = 0; /* units must come in decreasing order */
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        if (!is_digit(*p))
            goto bad;
        int64_t n = 0;
        for (; is_digit(*p); p++) {
            if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *p - '0', &n))
                goto overflow;
        }
        size_t u;
        for (u = 0; u < n_units; u++) {
            size_t ul = strlen(units[u].name);
            /* "m" must not match the start of "ms" */
            if (strncmp(p, units[u].name, ul) == 0 && !(ul == 1 && p[0] == 'm' && p[1] == 's'))
                break;
        }
        if (u == n_units)
            goto bad;
        if (u < next_unit) {
            lw_set_err(err, err_len,
                    "cannot parse \"%s\" as a duration: units must go from largest to smallest, "
                    "each at most once",
                    quoted(s, q, sizeof q));
            return -EINVAL;
        }
        next_unit = u + 1;
        p += strlen(units[u].name);
        int64_t part;
        if (__builtin_mul_overflow(n, units[u].ns, &part) || __builtin_add_overflow(total, part, &total))
            goto overflow;
    }
    *out_ns = total;
    return 0;

bad:
    lw_set_err(err, err_len,
            "cannot parse \"%s\" as a duration (want e.g. \"30s\", \"5m\", \"1h30m\", \"2d\" or "
            "seconds)",
            quoted(s, q, sizeof q));
    return -EINVAL;
overflow:
    lw_set_err(err, err_len, "duration \"%s\" is too long", quoted(s, q, sizeof q));
    return -EINVAL;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n fixed digits at p into *out; false if any is not a digit. */
static bool fixed_digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC3339 date-time. 0, -EINVAL (not that form) or -ERANGE (out of range). */
static int parse_rfc3339(const char *s, int64_t *out_ns)
{
    int year, mon, day, hour, min, sec;
    const char *p = s;
    if (!fixed_digits(p, 4, &year) || p[4] != '-' || !fixed_digits(p + 5, 2, &mon) || p[7] != '-' ||
        !fixed_digits(p + 8, 2, &day))
        return -EINVAL;
    p += 10;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -EINVAL;
    p++;
    if (!fixed_digits(p, 2, &hour) || p[2] != ':' || !fixed_digits(p + 3, 2, &min) || p[5] != ':' ||
        !fixed_digits(p + 6, 2, &sec))
        return -EINVAL;
    p += 8;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        if (!is_digit(*p))
            return -EINVAL;
        int digits = 0;
        for (; is_digit(*p); p++, digits++) {
            if (digits < 9)
                frac = frac * 10 + (*p - '0');
        }
        for (; digits < 9; digits++)
            frac *= 10;
    }
    int offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!fixed_digits(p + 1, 2, &oh) || p[3] != ':' || !fixed_digits(p + 4, 2, &om))
            return -EINVAL;
        if (oh > 23 || om > 59)
            return -ERANGE;
        offset_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59 || sec > 60)
        return -ERANGE;
    if (day > mdays[mon - 1] + (mon == 2 && is_leap(year)))
        return -ERANGE;
    if (sec == 60) /* a leap second is read as the last second of the minute */
        sec = 59;
    if (year < 1970 || year > 2262)
        return -ERANGE;
    int64_t t = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 + hour * 3600 +
                min * 60 + sec - offset_s;
    int64_t ns;
    if (t < 0 || __builtin_mul_overflow(t, API_NS_PER_SECOND, &ns) ||
        __builtin_add_overflow(ns, frac, &ns))
        return -ERANGE;
    *out_ns = ns;
    return 0;
}

int api_parse_time(const char *s, int64_t now_ns, int64_t *out_ns, char *err, size_t err_len)
{
    char q[QUOTE_MAX + 8];
    char derr[API_PARAM_MAX_LEN / 4];
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    if (strncmp(s, "now", 3) == 0) {
        if (s[3] == '\0') {
            *out_ns = now_ns;
            return 0;
        }
        if (s[3] != '-' && s[3] != '+')
            goto bad;
        int64_t d;
        if (api_parse_duration(s + 4, &d, derr, sizeof derr)) {
            lw_set_err(err, err_len, "cannot parse \"%s\" as a time: %s", quoted(s, q, sizeof q), derr);
            return -EINVAL;
        }
        int64_t t;
        if (s[3] == '-' ? __builtin_sub_overflow(now_ns, d, &t) : __builtin_add_overflow(now_ns, d, &t))
            goto range;
        if (t < 0)
            goto range;
        *out_ns = t;
        return 0;
    }
    int64_t t;
    rc = parse_decimal_seconds(s, &t);
    if (rc == 0) {
        *out_ns = t;
        return 0;
    }
    if (rc == -ERANGE)
        goto range;
    rc = parse_rfc3339(s, &t);
    if (rc == 0) {
        *out_ns = t;
        return 0;
    }
    if (rc == -ERANGE)
        goto range;
bad:
    lw_set_err(err, err_len,
            "cannot parse \"%s\" as a time (want RFC3339, Unix seconds, \"now\" or \"now-30m\")",
            quoted(s, q, sizeof q));
    return -EINVAL;
range:
    lw_set_err(err, err_len, "time \"%s\" is out of range (1970 to 2262)", quoted(s, q, sizeof q));
    return -EINVAL;
}

int api_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *err, size_t err_len)
{
    char q[QUOTE_MAX + 8];
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p)) {
            lw_set_err(err, err_len, "cannot parse \"%s\" as a non-negative integer", quoted(s, q, sizeof q));
            return -EINVAL;
        }
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v)) {
            lw_set_err(err, err_len, "\"%s\" is out of range (%llu to %llu)", quoted(s, q, sizeof q),
                    (unsigned long long)min, (unsigned long long)max);
            return -EINVAL;
        }
    }
    if (v < min || v > max) {
        lw_set_err(err, err_len, "\"%s\" is out of range (%llu to %llu)", quoted(s, q, sizeof q),
                (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int api_check_label_value(const char *s, char *err, size_t err_len)
{
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    size_t n = strlen(s);
    if (n > API_LABEL_MAX_LEN) {
        lw_set_err(err, err_len, "value longer than %d bytes", API_LABEL_MAX_LEN);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            lw_set_err(err, err_len, "control character at byte %zu", i);
            return -EINVAL;
        }
    }
    return 0;
}

int api_check_profile_type(const char *s, char *err, size_t err_len)
{
    char q[QUOTE_MAX + 8];
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    size_t n = strlen(s);
    bool ok = n <= API_TYPE_MAX_LEN;
    for (size_t i = 0; ok && i < n; i++) {
        char c = s[i];
        ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             c == '-' || c == '.';
    }
    if (!ok) {
        lw_set_err(err, err_len,
                "\"%s\" is not a profile type (e.g. goroutine, heap, allocs, profile, block, mutex)",
                quoted(s, q, sizeof q));
        return -EINVAL;
    }
    return 0;
}

int api_check_signal(const char *s, char *err, size_t err_len)
{
    static const char *const signals[] = {"goroutines", "heap_inuse_bytes", "heap_inuse_objects",
                                          "heap_alloc_bytes", "heap_alloc_objects"};
    char q[QUOTE_MAX + 8];
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        if (strcmp(s, signals[i]) == 0)
            return 0;
    }
    lw_set_err(err, err_len,
            "unknown signal \"%s\" (want goroutines, heap_inuse_bytes, heap_inuse_objects, "
            "heap_alloc_bytes or heap_alloc_objects)",
            quoted(s, q, sizeof q));
    return -EINVAL;
}

int api_parse_format(const char *s, api_format *out, char *err, size_t err_len)
{
    char q[QUOTE_MAX + 8];
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    static const struct {
        const char *name;
        api_format f;
    } formats[] = {{"pprof", API_FORMAT_PPROF},
                   {"json", API_FORMAT_JSON},
                   {"text", API_FORMAT_TEXT},
                   {"folded", API_FORMAT_FOLDED}};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (strcmp(s, formats[i].name) == 0) {
            *out = formats[i].f;
            return 0;
        }
    }
    lw_set_err(err, err_len, "unknown format \"%s\" (want pprof, json, text or folded)",
            quoted(s, q, sizeof q));
    return -EINVAL;
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

int api_parse_selector(const char *s, api_selector *out, char *err, size_t err_len)
{
    int rc = check_len(s, err, err_len);
    if (rc)
        return rc;
    api_selector sel;
    sel.n_matchers = 0;
    size_t used = 0; /* bytes of sel.storage in use; input length bounds it */
    const char *p = skip_ws(s);
    if (*p != '{') {
        lw_set_err(err, err_len, "selector must start with '{' (e.g. {job=\"api\",instance=\"h:8080\"})");
        return -EINVAL;
    }
    p = skip_ws(p + 1);
    while (*p != '}') {
        if (sel.n_matchers == API_SELECTOR_MAX_LABELS) {
            lw_set_err(err, err_len, "selector has more than %d matchers", API_SELECTOR_MAX_LABELS);
            return -EINVAL;
        }
        if (!is_name_start(*p)) {
            lw_set_err(err, err_len, "selector: expected a label name at offset %zu", (size_t)(p - s));
            return -EINVAL;
        }
        char *name = sel.storage + used;
        while (is_name_start(*p) || is_digit(*p))
            sel.storage[used++] = *p++;
        sel.storage[used++] = '\0';
        p = skip_ws(p);
        if ((p[0] == '=' && p[1] == '~') || (p[0] == '!' && (p[1] == '=' || p[1] == '~'))) {
            lw_set_err(err, err_len, "selector: only '=' matchers are supported (offset %zu)", (size_t)(p - s));
            return -EINVAL;
        }
        if (*p != '=') {
            lw_set_err(err, err_len, "selector: expected '=' after \"%s\"", name);
            return -EINVAL;
        }
        p = skip_ws(p + 1);
        if (*p != '"') {
            lw_set_err(err, err_len, "selector: expected a double-quoted value for \"%s\"", name);
            return -EINVAL;
        }
        p++;
        char *value = sel.storage + used;
        while (*p != '"') {
            char c = *p;
            if (c == '\0') {
                lw_set_err(err, err_len, "selector: unterminated value for \"%s\"", name);
                return -EINVAL;
            }
            if (c == '\\') {
                p++;
                if (*p == 'n')
                    c = '\n';
                else if (*p == '"' || *p == '\\')
                    c = *p;
                else {
                    lw_set_err(err, err_len, "selector: bad escape in value for \"%s\"", name);
                    return -EINVAL;
                }
            }
            sel.storage[used++] = c;
            p++;
        }
        sel.storage[used++] = '\0';
        p = skip_ws(p + 1);
        for (size_t i = 0; i < sel.n_matchers; i++) {
            if (strcmp(sel.matchers[i].name, name) == 0) {
                lw_set_err(err, err_len, "selector: label \"%s\" given twice", name);
                return -EINVAL;
            }
        }
        sel.matchers[sel.n_matchers].name = name;
        sel.matchers[sel.n_matchers].value = value;
        sel.n_matchers++;
        if (*p == ',')
            p = skip_ws(p + 1);
        else if (*p != '}') {
            lw_set_err(err, err_len, "selector: expected ',' or '}' at offset %zu", (size_t)(p - s));
            return -EINVAL;
        }
    }
    p = skip_ws(p + 1);
    if (*p) {
        lw_set_err(err, err_len, "selector: unexpected text after '}' at offset %zu", (size_t)(p - s));
        return -EINVAL;
    }
    /* Re-point the matchers into *out's own storage. */
    memcpy(out->storage, sel.storage, used);
    out->n_matchers = sel.n_matchers;
    for (size_t i = 0; i < sel.n_matchers; i++) {
        out->matchers[i].name = out->storage + (sel.matchers[i].name - sel.storage);
        out->matchers[i].value = out->storage + (sel.matchers[i].value - sel.storage);
    }
    return 0;
}

const char *api_selector_get(const api_selector *sel, const char *name)
{
    for (size_t i = 0; i < sel->n_matchers; i++) {
        if (strcmp(sel->matchers[i].name, name) == 0)
            return sel->matchers[i].value;
    }
    return NULL;
}

const char *api_format_time_buf(int64_t t_ns, char *buf, size_t buf_len)
{
    int64_t secs = t_ns / API_NS_PER_SECOND;
    int64_t frac = t_ns % API_NS_PER_SECOND;
    if (frac < 0) {
        frac += API_NS_PER_SECOND;
        secs--;
    }
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    char fracbuf[16] = "";
    if (frac) {
        snprintf(fracbuf, sizeof fracbuf, ".%09lld", (long long)frac);
        size_t n = strlen(fracbuf);
        while (n > 1 && fracbuf[n - 1] == '0')
            fracbuf[--n] = '\0';
    }
    snprintf(buf, buf_len, "%04lld-%02u-%02uT%02d:%02d:%02d%sZ", (long long)y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), fracbuf);
    return buf;
}

int api_format_time(lw_buf *out, int64_t t_ns)
{
    char buf[48];
    return lw_buf_puts(out, api_format_time_buf(t_ns, buf, sizeof buf));
}
