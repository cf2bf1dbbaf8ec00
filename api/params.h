/* params.h — parsing and validation of API query parameters: times,
 * durations, label values, selectors, profile types, signals, numbers.
 *
 * Every parser takes the raw text (NUL-terminated, as libmicrohttpd gives
 * it after URL-decoding) and never trusts its length or content: inputs over
 * API_PARAM_MAX_LEN bytes are refused before anything else. Results are
 * written only on success. On failure the functions return -EINVAL and
 * write a reason that does NOT name the parameter ("cannot parse \"x\" as a
 * time: ..."); the caller prefixes `invalid parameter "from": `. The
 * functions keep no state and are thread-safe. They are also the fuzzing
 * surface of the API (tests/fuzz).
 */
#ifndef LW_API_PARAMS_H
#define LW_API_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"

#define API_PARAM_MAX_LEN 1024  /* longest accepted parameter value, bytes */
#define API_LABEL_MAX_LEN 256   /* longest job/instance/label value */
#define API_TYPE_MAX_LEN 31     /* longest profile type name */
#define API_SELECTOR_MAX_LABELS 16

#define API_NS_PER_SECOND INT64_C(1000000000)

/* A time: "now", "now-30m" / "now+1h30m" (a duration as by
 * api_parse_duration), Unix seconds with an optional fraction of up to 9
 * digits ("1700000000.5"), or RFC3339 ("2026-11-25T21:00:00Z",
 * "2026-11-25T21:00:00.123+01:00"). now_ns is "now". Result in ns since the
 * epoch; times before 1970 or after 2262 are refused. */
int api_parse_time(const char *s, int64_t now_ns, int64_t *out_ns, char *err, size_t err_len) LW_WUR;

/* A duration: Prometheus style, one or more <integer><unit> with units ms,
 * s, m, h, d (24h), w (7d), y (365d) in decreasing order ("1h30m", "500ms",
 * "2d"), or a plain non-negative number of seconds with an optional fraction
 * ("90", "1.5"). Overflow (> ~292 years) is refused. Result in ns, >= 0. */
int api_parse_duration(const char *s, int64_t *out_ns, char *err, size_t err_len) LW_WUR;

/* A non-negative integer in [min, max] written in decimal without sign or
 * spaces ("0", "42"). */
int api_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *err,
                   size_t err_len) LW_WUR;

/* A label value (job, instance, ...): valid UTF-8 is not checked, but it
 * must be 1..API_LABEL_MAX_LEN bytes without control characters. */
int api_check_label_value(const char *s, char *err, size_t err_len) LW_WUR;

/* A profile type ("goroutine", "heap", "allocs", ...): 1..API_TYPE_MAX_LEN
 * bytes of [A-Za-z0-9_.-]. */
int api_check_profile_type(const char *s, char *err, size_t err_len) LW_WUR;

/* A series signal: one of "goroutines", "heap_inuse_bytes",
 * "heap_inuse_objects", "heap_alloc_bytes", "heap_alloc_objects". */
int api_check_signal(const char *s, char *err, size_t err_len) LW_WUR;

/* A response format for profiles: API_FORMAT_*. */
typedef enum api_format {
    API_FORMAT_PPROF = 0,
    API_FORMAT_JSON,
    API_FORMAT_TEXT,
    API_FORMAT_FOLDED,
} api_format;

/* "pprof", "json", "text" or "folded". */
int api_parse_format(const char *s, api_format *out, char *err, size_t err_len) LW_WUR;

/* One label matcher of a selector; only equality is supported. name and
 * value point into the selector's own storage. */
typedef struct api_matcher {
    const char *name;
    const char *value;
} api_matcher;

/* A parsed label selector `{job="api",instance="10.0.0.1:8080"}`: names are
 * [A-Za-z_][A-Za-z0-9_]*, values double-quoted with \" \\ \n escapes, at
 * most API_SELECTOR_MAX_LABELS matchers, no name twice. Only `=` is
 * accepted ("=~", "!=" are refused with a clear message). */
typedef struct api_selector {
    api_matcher matchers[API_SELECTOR_MAX_LABELS];
    size_t n_matchers;
    char storage[API_PARAM_MAX_LEN + 2 * API_SELECTOR_MAX_LABELS]; /* names and values, NUL-separated */
} api_selector;

int api_parse_selector(const char *s, api_selector *out, char *err, size_t err_len) LW_WUR;

/* The value of `name` in sel, or NULL. Cannot fail. */
const char *api_selector_get(const api_selector *sel, const char *name);

/* Append t (ns since the epoch) as RFC3339 UTC with nanoseconds trimmed
 * ("2026-11-25T21:00:00.5Z") to out. 0, -E2BIG or -ENOMEM. */
int api_format_time(lw_buf *out, int64_t t_ns) LW_WUR;

/* Write t as RFC3339 UTC into buf (at least 40 bytes). Returns buf. */
const char *api_format_time_buf(int64_t t_ns, char *buf, size_t buf_len);

#endif
