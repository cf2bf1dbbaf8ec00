/* store.h — leakwatch's profile and series storage in one SQLite file.
 *
 * Design (details and the schema in storage/README.md):
 * - SQLite in WAL mode; one process owns a database file (an exclusive lock
 *   on "<path>.lock" — a second leakwatchd on the same file fails to open
 *   with -EBUSY and a clear message).
 * - Targets are label sets (job, instance, target labels, external labels).
 * - Profiles are stored normalized and deduplicated: strings, functions and
 *   stacks (by normalized identity, see pprof.h) are stored once and shared
 *   by every profile that uses them; a profile keeps its metadata, totals per
 *   sample type and its samples (stack, values, labels). A stored profile can
 *   be rebuilt as a pprof profile with the same totals and the same stacks.
 * - Ingest of one profile (with the scalar series rows it implies) is one
 *   transaction: after a crash either all of it is there or none.
 * - Scalar series per target, written at ingest: "goroutines" (sum of the
 *   goroutine profile), "heap_inuse_bytes", "heap_inuse_objects",
 *   "heap_alloc_bytes", "heap_alloc_objects" (from heap or allocs profiles).
 * - A small key/value table keeps daemon state that must survive restarts
 *   (alert states and pending-since times).
 *
 * Thread safety: one store handle may be used from several threads at once.
 * Writes are serialized; reads run on a pool of read-only connections
 * (max_readers, default 4, each used by one thread at a time), so a slow
 * reader (an API diff) never blocks ingest, concurrent reads run in
 * parallel, and whole-profile loads never take the last free connection:
 * short queries (series, listings, stacks) are not queued behind them.
 *
 * Errors: 0 on success, a negative errno code on failure (-EINVAL bad
 * argument, -ENOENT not found, -EBUSY locked by another process, -ENOSPC disk
 * or database full, -EIO other SQLite errors, -ENOMEM). SQLite codes are
 * translated here. Functions with err/err_len write a readable reason.
 * All times are nanoseconds since the Unix epoch.
 */
#ifndef LW_STORE_H
#define LW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"
#include "pprof.h"

#define STORE_ERR_LEN 256

typedef struct store store;

typedef struct store_options {
    bool read_only;              /* open an existing DB for reading only (CLI, tools) */
    int64_t max_page_count;      /* 0 = unlimited; tests use it to simulate a full disk */
    int max_readers;             /* read connections, 1..16; 0 = default (4) */
} store_options;

typedef struct store_label {
    const char *name;
    const char *value;
} store_label;

typedef struct store_target {
    int64_t id;
    char *job;         /* owned by the array, see store_targets_free() */
    char *instance;
    char *labels_json; /* {"job":"x","instance":"h:p",...} sorted by name */
} store_target;

typedef struct store_profile_info {
    int64_t id;
    int64_t target_id;
    char profile_type[32];   /* "goroutine", "heap", "allocs", "profile", ... */
    int64_t time_ns;         /* scrape time */
    int64_t duration_ns;     /* profile duration_nanos */
    int64_t n_samples;
    int n_sample_types;
    char sample_types[256];  /* "alloc_objects/count,alloc_space/bytes,..." */
    int64_t totals[8];       /* per sample type, first n_sample_types used */
} store_profile_info;

typedef struct store_profile_query {
    int64_t target_id;        /* 0 = any */
    const char *job;          /* NULL = any */
    const char *instance;     /* NULL = any */
    const char *profile_type; /* NULL = any */
    int64_t from_ns;          /* inclusive; 0 = unbounded */
    int64_t to_ns;            /* inclusive; 0 = unbounded */
    size_t limit;             /* 0 = no limit; newest first when limited */
} store_profile_query;

typedef struct store_point {
    int64_t time_ns;
    double value;
} store_point;

typedef struct store_stack_value {
    int64_t stack_id; /* stable id of a normalized stack in this DB */
    int64_t value;    /* summed over the profile's samples with that stack */
} store_stack_value;

/* ---- lifecycle -------------------------------------------------------- */

/* Open (creating if needed, with parent directories) the database at path.
 * A file that is not a leakwatch database (foreign or corrupt) is refused
 * with -EINVAL and left untouched. opt may be NULL.
 * Read-write opens take the lock file (-EBUSY when another process holds
 * it; a stale one of a dead process is taken over). read_only opens take no
 * lock, never create anything, fail with -ENOENT when the file is absent,
 * and make every write return -EROFS. */
int store_open(const char *path, const store_options *opt, store **out, char *err,
               size_t err_len) LW_WUR;

/* Checkpoint the WAL and close. store_close(NULL) is safe. */
void store_close(store *s);

/* ---- targets ------------------------------------------------------------ */

/* The id of the target with exactly this label set (order does not
 * matter; must include "job" and "instance"), creating it if new. */
int store_target_upsert(store *s, const store_label *labels, size_t n_labels, int64_t *id_out) LW_WUR;

/* All targets. The caller frees with store_targets_free(). */
int store_targets_list(store *s, store_target **out, size_t *n_out) LW_WUR;
void store_targets_free(store_target *targets, size_t n);

/* ---- profiles ----------------------------------------------------------- */

/* Store profile p of type profile_type scraped from target at time_ns, and
 * its series points, in one transaction. *id_out (may be NULL) gets the new
 * profile id. -ENOSPC when the disk or max_page_count is full (nothing is
 * stored). -ENOENT when target_id does not exist; -EINVAL for a bad
 * argument, a profile_type of 32 bytes or more, or more than 64 sample
 * types. */
int store_ingest(store *s, int64_t target_id, const char *profile_type, int64_t time_ns,
                 const pprof_profile *p, int64_t *id_out, char *err, size_t err_len) LW_WUR;

/* One profile of a store_ingest_batch(): the arguments of store_ingest()
 * and, filled in by the call, its result. */
typedef struct store_ingest_item {
    int64_t target_id;
    const char *profile_type;
    int64_t time_ns;
    const pprof_profile *profile;
    int64_t id;               /* out: the new profile id, 0 on failure */
    int rc;                   /* out: 0 or the negative errno of store_ingest() */
    char err[STORE_ERR_LEN];  /* out: the message when rc != 0 */
} store_ingest_item;

/* Store n profiles in one transaction: one commit, so the pages every
 * commit writes (table and index leaves, the WAL frames) are shared by the
 * batch. An item refused for its own content (-EINVAL: invalid arguments,
 * a sample refers to a missing location; -ENOENT: unknown target; -E2BIG:
 * over an encoder's cap) fails
 * alone: the transaction is rolled back and the batch stored again without
 * it. Returns 0 when the batch committed (see each item's rc), or the
 * negative errno of a failure that is not an item's own (disk full
 * -ENOSPC, I/O, memory, a failed commit): then nothing was stored and every
 * item not refused on its own carries that error. -EROFS on a read-only
 * store. */
int store_ingest_batch(store *s, store_ingest_item *items, size_t n) LW_WUR;

/* Rebuild stored profile id as a pprof profile (same sample types, period,
 * totals, stacks by normalized identity, labels). -ENOENT if absent. The
 * caller owns *out (pprof_free). info may be NULL. */
int store_profile_load(store *s, int64_t id, pprof_profile **out, store_profile_info *info) LW_WUR;

/* Load n (1..STORE_LOAD_MAX) profiles at once, each on its own reader
 * connection and thread (the caller's and n - 1 helper threads; in the
 * caller alone if a thread cannot be started), e.g. the two sides of a
 * diff. All or nothing: on success out[i] (and infos[i] when infos is not
 * NULL) hold profile ids[i], owned by the caller; on failure every out[i]
 * is NULL and the error is that of the first failing id in order (as
 * store_profile_load). */
#define STORE_LOAD_MAX 8
int store_profiles_load(store *s, const int64_t *ids, size_t n, pprof_profile **out,
                        store_profile_info *infos) LW_WUR;

/* Metadata of one profile. -ENOENT if absent. */
int store_profile_info_get(store *s, int64_t id, store_profile_info *info) LW_WUR;

/* Profiles matching q, oldest first (newest first when q->limit is set).
 * Caller frees *out with free(). */
int store_profiles_list(store *s, const store_profile_query *q, store_profile_info **out,
                        size_t *n_out) LW_WUR;

/* The profile of this target and type at or nearest before time_ns. -ENOENT
 * if there is none. */
int store_profile_at(store *s, int64_t target_id, const char *profile_type, int64_t time_ns,
                     store_profile_info *info) LW_WUR;

/* Per-stack values of one profile for sample type index sample_index,
 * summed over samples that share a stack. Caller frees *out with free(). */
int store_profile_stacks(store *s, int64_t profile_id, int sample_index, store_stack_value **out,
                         size_t *n_out) LW_WUR;

/* The frames of a stored stack (leaf first) rendered as
 * "func (file:line)" lines joined by '\n' into out. */
int store_stack_describe(store *s, int64_t stack_id, lw_buf *out) LW_WUR;

/* The leaf-most frame of a stored stack whose function is not in a runtime
 * or allocator ("runtime.", "malloc", "leakwatch agent" frames are skipped):
 * function name and "file:line" written into the buffers. Skipped: Go's
 * runtime ("runtime.", "runtime/", linkname shims like
 * "sync.runtime_Semacquire"), libc allocation and thread start
 * ("malloc", "calloc", "realloc", "free", "__libc_", "start_thread",
 * "clone", "pthread_", ...), "operator new", and the agent ("lw_agent",
 * "agent_"). When every frame is skipped, the leaf; for an empty stack (a
 * sample without locations, which Go emits) both strings are empty.
 * -ENOENT for an unknown stack id. */
int store_stack_top_frame(store *s, int64_t stack_id, char *function, size_t function_len,
                          char *location, size_t location_len) LW_WUR;

/* ---- series ------------------------------------------------------------ */

/* Points of one series of a target in [from_ns, to_ns], oldest first.
 * Signals: "goroutines", "heap_inuse_bytes", "heap_inuse_objects",
 * "heap_alloc_bytes", "heap_alloc_objects". Caller frees *out with free(). */
int store_series_get(store *s, int64_t target_id, const char *signal, int64_t from_ns,
                     int64_t to_ns, store_point **out, size_t *n_out) LW_WUR;

/* ---- retention and size --------------------------------------------------- */

/* Delete profiles (and series points) older than now_ns - max_age_ns (0 =
 * keep), then the oldest until the file is under max_bytes (0 = no limit),
 * drop strings/functions/stacks no longer referenced, and return the space
 * to the file system (incremental vacuum). *n_deleted (may be NULL) gets the
 * number of profiles removed. */
int store_retention_apply(store *s, int64_t max_age_ns, int64_t max_bytes, int64_t now_ns,
                          int64_t *n_deleted) LW_WUR;

/* Database file size in bytes (main file plus WAL). */
int store_size_bytes(store *s, int64_t *bytes_out) LW_WUR;

/* Number of stored profiles. */
int store_profiles_count(store *s, int64_t *count_out) LW_WUR;

/* PRAGMA integrity_check: 0 when "ok", -EIO with the first problem in err. */
int store_integrity_check(store *s, char *err, size_t err_len) LW_WUR;

/* ---- daemon state (survives restarts) --------------------------------- */

/* Set key to value (a JSON text), replacing any old value. */
int store_state_put(store *s, const char *key, const char *value) LW_WUR;

/* The value of key, malloc'ed into *value_out (caller frees). -ENOENT if
 * absent. */
int store_state_get(store *s, const char *key, char **value_out) LW_WUR;

/* Delete key; absent keys are not an error. */
int store_state_delete(store *s, const char *key) LW_WUR;

/* Every key starting with prefix and its value; caller frees each string and
 * both arrays with free(). */
int store_state_list(store *s, const char *prefix, char ***keys_out, char ***values_out,
                     size_t *n_out) LW_WUR;

#endif
