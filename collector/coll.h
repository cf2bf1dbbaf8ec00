/* coll.h — the scrape manager: targets from static and file_sd configs,
 * scraped on a schedule with libcurl multi, decoded and stored.
 *
 * Design:
 * - One event loop (the caller's thread, driven by coll_run_once()) runs every
 *   transfer of every target concurrently through one libcurl multi handle,
 *   so a dead or slow target never delays the others.
 * - Each target is scraped every scrape_interval at a stable offset
 *   (hash of its identity mod the interval), so many targets spread out
 *   instead of firing together; every enabled profile of the target is
 *   requested at that moment. A profile whose previous request is still
 *   running skips that round.
 * - A target's identity is its label set plus its URL (scheme, address,
 *   path prefix). Labels: external labels, job, instance (host:port), target
 *   group labels; labels starting with "__" are internal and dropped. The
 *   internal labels __scheme__ and __path_prefix__ (set for --target URLs,
 *   usable in file_sd files) override the job's scheme and path prefix.
 * - Bodies are capped (64 MiB as received; decompression is capped by
 *   pprof_limits); "Accept-Encoding: gzip" is sent and a gzip
 *   Content-Encoding is undone before decoding.
 * - A fetched body is decoded (pprof_decode()) and stored (store_ingest())
 *   by a small pool of worker threads, so a big or hostile profile never
 *   stalls the event loop; then hooks->on_ingest runs on that worker. Jobs
 *   of one target run one at a time and cheap targets' jobs go first, so a
 *   target sending gzip bombs holds at most one worker. A profile counts as
 *   in flight (and skips its next round) until its job is done. A store
 *   failure (e.g. a full disk) is counted and reported as that scrape's
 *   error; scraping goes on.
 * - Health per target and profile: up/down, last scrape time, duration,
 *   precise last error ("connection refused", "timeout after 10s",
 *   "response exceeds 64 MiB", "HTTP 500 Internal Server Error",
 *   "not a pprof profile: <decoder message>", "storage: <message>").
 * - Reload (coll_apply_config) keeps the state (counters, schedule, in-flight
 *   requests, store ids) of targets whose identity is unchanged; removed
 *   targets are cancelled and forgotten.
 *
 * Threads: coll_run_once(), coll_apply_config() and coll_free() must be
 * called from one thread (the loop thread). coll_targets_json(),
 * coll_metrics_text(), coll_wakeup() and coll_n_targets() may be called from
 * any thread at any time (they copy state under an internal mutex).
 * on_ingest runs on a worker thread (possibly two at once, for different
 * targets), on_target_removed on the loop thread; no collector lock is held
 * during either.
 *
 * Errors: 0 or a negative errno code; err/err_len get a readable reason.
 */
#ifndef LW_COLL_H
#define LW_COLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lw_buf.h"
#include "store.h"

#define COLL_MAX_BODY_BYTES ((size_t)64 << 20) /* compressed response cap */

typedef struct coll coll;

typedef struct coll_hooks {
    void *ctx;
    /* After each profile stored (on a worker thread): target_id is the
     * store's target id, labels its label set (valid only during the call),
     * profile_type the profile name ("goroutine", "heap", ...). May be NULL. */
    void (*on_ingest)(void *ctx, int64_t target_id, const store_label *labels, size_t n_labels,
                      const char *profile_type, int64_t profile_id, int64_t time_ns);
    /* A target that had been stored left the configuration (reload or
     * file_sd change). May be NULL. */
    void (*on_target_removed)(void *ctx, int64_t target_id);
} coll_hooks;

typedef struct coll_options {
    size_t max_body_bytes;         /* 0 = COLL_MAX_BODY_BYTES */
    size_t max_decompressed_bytes; /* 0 = PPROF_DEFAULT_MAX_DECOMPRESSED_BYTES */
    int64_t file_sd_check_ns;      /* how often file_sd files are stat'ed; 0 = 1 s */
} coll_options;

/* Create a collector for cfg storing into s. cfg and s are borrowed: cfg
 * must stay valid until the next successful coll_apply_config() or
 * coll_free(); s until coll_free(). hooks and opt may be NULL (copied).
 * file_sd files are read once here (unreadable ones are logged, not fatal).
 * 0, -ENOMEM or -EIO (libcurl init) with err. */
int coll_new(const lw_config *cfg, store *s, const coll_hooks *hooks, const coll_options *opt,
             coll **out, char *err, size_t err_len) __attribute__((warn_unused_result));

/* One step of the event loop: start due scrapes, wait for network activity
 * (at most timeout_ms, less when a scrape is due sooner, returning early on
 * coll_wakeup()), finish completed transfers (decode, store, hooks). 0, or
 * a negative errno code on a fatal libcurl error. */
int coll_run_once(coll *c, int timeout_ms) __attribute__((warn_unused_result));

/* Switch to a new configuration (already validated by the config loader).
 * Targets whose identity is unchanged keep their state. 0 or -ENOMEM (the
 * old configuration then keeps running). */
int coll_apply_config(coll *c, const lw_config *cfg, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Make a running or the next coll_run_once() return soon. Thread-safe. */
void coll_wakeup(coll *c);

/* Cancel in-flight requests, let the workers finish the job they are on
 * (queued ones are dropped), free everything. coll_free(NULL) is safe. */
void coll_free(coll *c);

/* The "data" value of GET /api/v1/targets:
 * {"activeTargets":[{"labels":{..},"scrapePool":"job","scrapeUrl":"http://h:p",
 *   "health":"up"|"down"|"unknown",
 *   "lastScrape":"RFC3339"|null,"lastScrapeDuration":seconds,"lastError":"..",
 *   "scrapeInterval":"15s","scrapeTimeout":"10s",
 *   "profiles":[{"type":"goroutine","url":"..","health":..,"lastScrape":..,
 *     "lastScrapeDuration":..,"lastError":..,"scrapesOk":n,"scrapesError":n}]}],
 *  "droppedTargets":[]}
 * A target is "up" when the last scrape of each enabled profile succeeded,
 * "unknown" before its first scrape; its lastError is that of its first
 * failing profile. Appended to out; thread-safe. */
int coll_targets_json(coll *c, lw_buf *out) __attribute__((warn_unused_result));

/* Prometheus text format 0.0.4 (HELP and TYPE lines): leakwatch_target_up,
 * leakwatch_scrape_duration_seconds, leakwatch_scrapes_total{result=
 * "success"|"error"}, leakwatch_goroutines, leakwatch_heap_inuse_bytes,
 * leakwatch_heap_inuse_objects, leakwatch_targets. Appended to out;
 * thread-safe. */
int coll_metrics_text(coll *c, lw_buf *out) __attribute__((warn_unused_result));

/* Number of active targets. Thread-safe. */
size_t coll_n_targets(coll *c);

#endif
