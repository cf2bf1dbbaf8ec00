/* config.h — leakwatchd's configuration: YAML file (libyaml), command-line
 * flags, file_sd target files, Prometheus durations and byte sizes.
 *
 * The file is shaped like Prometheus/Parca's (global, scrape_configs with
 * static_configs/file_sd_configs/profiling_config, plus leak_detection and
 * alerting). Every error names the place and the key:
 *     config.yaml:12:5: scrape_interval: invalid duration "5x"
 * (line and column are 1-based; value errors point at the value, unknown or
 * duplicate keys at the key, missing keys at the enclosing mapping).
 *
 * A loaded lw_config is immutable and self-contained: all of its strings and
 * arrays live in one arena freed by lw_config_free(). After loading, every
 * default is filled in (intervals, timeouts, profiles, thresholds), so
 * consumers never have to know the defaults. Times are int64 nanoseconds.
 *
 * Thread safety: loading has no global state; a loaded config may be read
 * from any number of threads.
 */
#ifndef LW_CONFIG_H
#define LW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"

#define LW_CONFIG_ERR_LEN 512

#define LW_NS_PER_SEC INT64_C(1000000000)

/* Defaults (Prometheus' for scraping). */
#define LW_DEFAULT_SCRAPE_INTERVAL_NS (15 * LW_NS_PER_SEC)
#define LW_DEFAULT_SCRAPE_TIMEOUT_NS (10 * LW_NS_PER_SEC)
#define LW_DEFAULT_EVALUATION_INTERVAL_NS (60 * LW_NS_PER_SEC)
#define LW_DEFAULT_FILE_SD_REFRESH_NS (300 * LW_NS_PER_SEC)
#define LW_DEFAULT_LEAK_WINDOW_NS (1800 * LW_NS_PER_SEC)
#define LW_DEFAULT_LEAK_MIN_SAMPLES 10
#define LW_DEFAULT_LEAK_FOR_NS (600 * LW_NS_PER_SEC)
#define LW_DEFAULT_RESEND_DELAY_NS (60 * LW_NS_PER_SEC)
#define LW_DEFAULT_AM_TIMEOUT_NS (10 * LW_NS_PER_SEC)
#define LW_DEFAULT_STORAGE_PATH "./data/leakwatch.db"
#define LW_DEFAULT_RETENTION_NS (7 * 86400 * LW_NS_PER_SEC)
#define LW_DEFAULT_LISTEN_ADDRESS "127.0.0.1:9475"
#define LW_DEFAULT_AGENT_LISTEN_ADDRESS "127.0.0.1:6061"
#define LW_FLAG_TARGET_JOB "leakwatch" /* job name of --target targets */

/* A name/value pair: labels, URL params. */
typedef struct lw_kv {
    const char *name;
    const char *value;
} lw_kv;

typedef struct lw_basic_auth {
    bool set;                  /* basic_auth present */
    const char *username;      /* "" if absent */
    const char *password;      /* NULL unless given inline */
    const char *password_file; /* NULL unless given; read at each request */
} lw_basic_auth;

typedef struct lw_authorization {
    bool set;                     /* authorization present */
    const char *type;             /* default "Bearer" */
    const char *credentials;      /* NULL unless given inline */
    const char *credentials_file; /* NULL unless given; read at each request */
} lw_authorization;

typedef struct lw_tls_config {
    const char *ca_file;   /* NULL = system CAs */
    const char *cert_file; /* client certificate, NULL = none */
    const char *key_file;
    const char *server_name; /* expected certificate name / SNI, NULL = host */
    bool insecure_skip_verify;
} lw_tls_config;

/* A target group: static_configs entry or one group of a file_sd file. */
typedef struct lw_target_group {
    const char **targets; /* "host:port" (default port added from the scheme) */
    size_t n_targets;
    lw_kv *labels; /* extra labels for every target of the group */
    size_t n_labels;
} lw_target_group;

typedef struct lw_file_sd_config {
    const char **files; /* paths or globs (only the last path element may be a glob) */
    size_t n_files;
    int64_t refresh_interval_ns; /* full re-read period; changes are seen within ~1 s anyway */
} lw_file_sd_config;

/* One profile to scrape. */
typedef struct lw_profile_config {
    const char *name; /* "goroutine", "heap", ..., or a custom name; stored as profile type */
    bool enabled;
    const char *path;  /* URL path under path_prefix, e.g. "/debug/pprof/heap" */
    bool delta;        /* pass seconds=N (CPU profile and other delta profiles) */
    int64_t seconds;   /* N for delta profiles: given, or interval - 1s (min 1) */
} lw_profile_config;

typedef struct lw_scrape_config {
    const char *job_name;
    int64_t scrape_interval_ns;
    int64_t scrape_timeout_ns; /* <= interval; delta profiles get seconds + this */
    const char *scheme;        /* "http" or "https" */
    lw_kv *params;             /* URL query params (a name may repeat) */
    size_t n_params;
    lw_basic_auth basic_auth;
    lw_authorization authorization;
    lw_tls_config tls;
    lw_target_group *static_configs;
    size_t n_static_configs;
    lw_file_sd_config *file_sd_configs;
    size_t n_file_sd_configs;
    const char *path_prefix; /* "" or "/prefix" (no trailing slash) */
    lw_profile_config *profiles; /* built-ins first (goroutine, heap, allocs, threadcreate,
                                  * mutex, block, profile), then custom ones */
    size_t n_profiles;
} lw_scrape_config;

/* Leak detection signals, in this order everywhere. */
enum {
    LW_SIGNAL_GOROUTINES = 0,
    LW_SIGNAL_HEAP_INUSE_BYTES = 1,
    LW_SIGNAL_HEAP_INUSE_OBJECTS = 2,
    LW_N_SIGNALS = 3,
};

/* "goroutines", "heap_inuse_bytes", "heap_inuse_objects" (also the store's
 * series names). */
extern const char *const lw_signal_names[LW_N_SIGNALS];

typedef struct lw_leak_signal_config {
    bool enabled;               /* default true */
    double min_growth;          /* absolute growth over the window (signal units: goroutines,
                                 * bytes, objects) below which no leak is reported */
    double min_relative_growth; /* growth / value at window start (fraction, 0.1 = 10%) below
                                 * which no leak is reported */
    const char *severity;       /* alert label severity, default "warning" */
} lw_leak_signal_config;

/* leak_detection: consumed by detect/. Defaults: window 30m, min_samples 10,
 * for 10m; goroutines min_growth 10, heap_inuse_bytes 4 MiB,
 * heap_inuse_objects 10000; min_relative_growth 0.05 each; severity warning. */
typedef struct lw_leak_config {
    int64_t window_ns;
    int64_t min_samples;
    int64_t for_ns;
    lw_leak_signal_config signals[LW_N_SIGNALS];
} lw_leak_config;

/* One Alertmanager group. Alerts go to
 * scheme://TARGET + path_prefix + "/api/v2/alerts" for each target. */
typedef struct lw_alertmanager_config {
    const char **targets; /* "host:port", all static_configs flattened */
    size_t n_targets;
    const char *scheme;      /* "http" (default) or "https" */
    const char *path_prefix; /* "" or "/prefix" */
    int64_t timeout_ns;      /* per request, default 10s */
    lw_basic_auth basic_auth;
} lw_alertmanager_config;

typedef struct lw_alerting_config {
    lw_alertmanager_config *alertmanagers; /* file ones, then one per --alertmanager.url */
    size_t n_alertmanagers;
    int64_t resend_delay_ns; /* default 1m */
} lw_alerting_config;

struct lw_arena;

typedef struct lw_config {
    const char *source;          /* file name, or "flags" without a file */
    int64_t scrape_interval_ns;  /* global */
    int64_t scrape_timeout_ns;   /* global */
    int64_t evaluation_interval_ns; /* global: each target's leak signals judged at most
                                     * this often, default 1m */
    lw_kv *external_labels;
    size_t n_external_labels;
    lw_scrape_config *scrape_configs;
    size_t n_scrape_configs;
    lw_leak_config leak;
    lw_alerting_config alerting;
    struct lw_arena *arena; /* owns everything above */
} lw_config;

/* Command-line flags (Prometheus style: --name=value or --name value).
 * String values point into argv (not copied); arrays are malloc'ed and
 * released by lw_flags_cleanup(). Unset durations are 0, unset counts -1. */
typedef struct lw_flags {
    const char *config_file;
    bool config_check;
    const char *storage_path;          /* default LW_DEFAULT_STORAGE_PATH */
    int64_t retention_time_ns;         /* default 7d; 0 = keep forever */
    int64_t retention_size_bytes;      /* default 0 = no size limit */
    int64_t retention_interval_ns;     /* how often retention runs, default 1m */
    int64_t storage_max_page_count;    /* SQLite max_page_count, 0 = unlimited (tests: full disk) */
    const char *web_listen_address;    /* default LW_DEFAULT_LISTEN_ADDRESS */
    const char *web_config_file;       /* NULL = none (used by api/) */
    const char *web_external_url;      /* NULL or "" = http://<web_listen_address> (alert links) */
    const char **targets;              /* --target URLs */
    size_t n_targets;
    int64_t scrape_interval_ns;        /* 0 = from config */
    int64_t scrape_timeout_ns;         /* 0 = from config */
    const char **alertmanager_urls;    /* --alertmanager.url */
    size_t n_alertmanager_urls;
    int64_t detection_window_ns;       /* 0 = from config */
    int64_t detection_for_ns;          /* -1 = from config (0 is a valid "for") */
    int64_t detection_min_samples;     /* -1 = from config */
    int64_t detection_evaluation_interval_ns; /* 0 = from config */
    const char *log_level;             /* default "info" */
    const char *log_format;            /* default "logfmt" */
    bool agent_enable;                 /* serve leakwatchd's own /debug/pprof (agent builds) */
    const char *agent_listen_address;  /* default LW_DEFAULT_AGENT_LISTEN_ADDRESS */
    bool help;
    bool version;
} lw_flags;

/* ---- durations and sizes ------------------------------------------------ */

/* Parse a Prometheus duration ("1h30m", "15s", "500ms", "7d", "1w", "1y",
 * "0"): units y(365d) w d h m s ms, each at most once, in that order.
 * 0 or -EINVAL (also on overflow). */
int lw_parse_duration(const char *s, int64_t *ns_out) __attribute__((warn_unused_result));

/* Format ns as a Prometheus duration ("1h30m", "10s", "500ms", "0s") into
 * buf. Returns buf. Cannot fail. */
const char *lw_format_duration(int64_t ns, char *buf, size_t buf_len);

/* Parse a byte size: a plain integer (bytes) or with unit B, KB, MB, GB, TB,
 * PB, EB (powers of 1024, as Prometheus' --storage.tsdb.retention.size) or
 * KiB, MiB, GiB, TiB, PiB, EiB. "0" = 0. 0 or -EINVAL (also on overflow). */
int lw_parse_size(const char *s, int64_t *bytes_out) __attribute__((warn_unused_result));

/* ---- flags --------------------------------------------------------------- */

/* Parse argv[1..argc-1] into f (initialised with defaults first). 0, or
 * -EINVAL with err like "--scrape.interval: invalid duration \"x\"" or
 * "unknown flag --foo". --help and --version only set f->help / f->version.
 * Call lw_flags_cleanup() in both cases. */
int lw_flags_parse(int argc, char **argv, lw_flags *f, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Free the arrays of f. Safe on a zeroed or already cleaned-up struct. */
void lw_flags_cleanup(lw_flags *f);

/* The --help text (every flag with its default). Appends to out. */
int lw_flags_usage(lw_buf *out) __attribute__((warn_unused_result));

/* ---- loading ------------------------------------------------------------ */

/* Build the running configuration from flags: read and parse
 * flags->config_file if set, then apply flag overrides (--scrape.*,
 * --detection.*, --alertmanager.url) and add job "leakwatch" for --target
 * URLs. Without a config file and without --target this fails with a clear
 * error. 0 with *out set (free with lw_config_free), or a negative errno
 * (-EINVAL bad config, -ENOENT/-EACCES/... unreadable file, -ENOMEM) with
 * err set and *out NULL. */
int lw_config_load(const lw_flags *flags, lw_config **out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* The same from YAML text in memory; `name` is used in messages. data may
 * be NULL (no file: flags only). flags may be NULL (no overrides). */
int lw_config_parse(const char *name, const char *data, size_t len, const lw_flags *flags,
                    lw_config **out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* Free a config. lw_config_free(NULL) is safe. */
void lw_config_free(lw_config *c);

/* Lookup helpers; NULL when absent. */
const lw_scrape_config *lw_config_job(const lw_config *c, const char *job_name);
const lw_profile_config *lw_config_profile(const lw_scrape_config *sc, const char *name);

/* ---- file_sd target files --------------------------------------------------- */

/* Parse a file_sd target file (Prometheus format, JSON or YAML: a list of
 * {targets: [...], labels: {...}}); `scheme` picks the default port for
 * targets without one. On success *groups_out and *n_out are allocated in a new
 * arena *arena_out (free with lw_arena_free). On failure err is
 * "FILE:LINE:COL: key: message" and nothing is allocated. */
int lw_file_sd_parse(const char *name, const char *data, size_t len, const char *scheme,
                     lw_target_group **groups_out, size_t *n_out, struct lw_arena **arena_out,
                     char *err, size_t err_len) __attribute__((warn_unused_result));

void lw_arena_free(struct lw_arena *a);

/* Check a label name ([a-zA-Z_][a-zA-Z0-9_]*). */
bool lw_label_name_valid(const char *name);

#endif
