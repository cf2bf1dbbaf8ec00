/* lw_log.h — leveled, structured logging to stderr in logfmt or JSON lines.
 *
 * One line per event: `ts=2026-11-25T21:30:00.123Z level=info msg="..." k=v ...`
 * (logfmt, values quoted when they need it) or
 * `{"ts":"...","level":"info","msg":"...","k":"v"}` (json). Key/value pairs
 * are passed as NULL-terminated varargs of C strings; callers format numbers
 * themselves. Each line is built in a local buffer and written with one
 * write(2), so lines from different threads never interleave. The level and
 * format are process-wide settings (set once at startup, read atomically).
 */
#ifndef LW_LOG_H
#define LW_LOG_H

#include <stdarg.h>

typedef enum lw_log_level {
    LW_LOG_DEBUG = 0,
    LW_LOG_INFO = 1,
    LW_LOG_WARN = 2,
    LW_LOG_ERROR = 3,
} lw_log_level;

typedef enum lw_log_format {
    LW_LOG_LOGFMT = 0,
    LW_LOG_JSON = 1,
} lw_log_format;

/* Parse "debug", "info", "warn" or "error". 0, or -EINVAL for another name. */
int lw_log_level_parse(const char *name, lw_log_level *out) __attribute__((warn_unused_result));

/* Parse "logfmt" or "json". 0, or -EINVAL. */
int lw_log_format_parse(const char *name, lw_log_format *out) __attribute__((warn_unused_result));

/* Set the minimum level logged (default info) and the format (default
 * logfmt). Cannot fail. */
void lw_log_setup(lw_log_level level, lw_log_format format);

/* Redirect output to fd (default 2, stderr); for tests. Cannot fail. */
void lw_log_set_fd(int fd);

/* True when events at `level` are written. */
int lw_log_enabled(lw_log_level level);

/* Log msg with key/value pairs: lw_log(LW_LOG_INFO, "scrape failed", "job",
 * job, "err", err, NULL). NULL values are written as empty strings. Lines are
 * truncated at 8 KiB. Never fails (a failed write is ignored). */
void lw_log(lw_log_level level, const char *msg, ...) __attribute__((sentinel));
void lw_vlog(lw_log_level level, const char *msg, va_list kv);

#endif
