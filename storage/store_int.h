/* store_int.h — internals shared by the storage/ sources; not a public contract.
 *
 * A store handle owns one writer SQLite connection to its WAL database
 * (ingest, targets, retention, state writes) behind w.mu, and a small pool
 * of read-only connections (every query): a reader takes a free connection
 * for the duration of one call, so concurrent reads run in parallel (WAL
 * readers do not block each other or the writer) and a slow API read never
 * holds the writer. Reader connections are opened on demand, up to
 * max_readers; bulk reads (whole profiles) may hold all but one of them
 * (all of one when max_readers is 1), so a short query (the detector's
 * series and stacks) never waits behind merges. Prepared statements are cached per connection in slots indexed by
 * enum store__sql. The writer also keeps in-memory caches mapping content
 * (a string, a function key, a stack's frame blob) to its row id; they are
 * only touched under wmu and are cleared whenever rows may have vanished
 * (a rolled-back transaction, garbage collection).
 */
#ifndef LW_STORE_INT_H
#define LW_STORE_INT_H

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lw_buf.h"
#include "store.h"

/* "LWDB": written into the SQLite header at creation; a file without it is
 * not ours and is never written to. */
#define STORE_APPLICATION_ID 0x4C574442
#define STORE_SCHEMA_VERSION 3
/* Version 1 had the index stacks_hash always; opening it for writing drops
 * the index (store.stack_map replaces it). Version 3 added stack_chunks
 * (store_stacks.c); an older file opened for writing gets the table and
 * is stamped 3, its stacks rows stay as they are. */
#define STORE_SCHEMA_MIN_VERSION 1

/* Series signals, stored as small integers in series.signal. */
enum store__signal {
    STORE_SIG_GOROUTINES = 1,
    STORE_SIG_HEAP_INUSE_BYTES = 2,
    STORE_SIG_HEAP_INUSE_OBJECTS = 3,
    STORE_SIG_HEAP_ALLOC_BYTES = 4,
    STORE_SIG_HEAP_ALLOC_OBJECTS = 5,
    STORE_SIG_LAST = STORE_SIG_HEAP_ALLOC_OBJECTS, /* retention lists 1..LAST (store_retention.c) */
};

/* Stacks a chunk holds at most (store_stacks.c): a lookup by id decodes
 * up to this many. */
#define STORE_CHUNK_STACKS 256

/* Cap of one stack's frame blob (the ingest's encoders guard it). */
#define STORE_STACK_MAX_BYTES ((size_t)64 << 20)

/* Rows of SQL_STACK_INSERT_MANY (its text in store.c spells them out). */
#define STORE_STACK_INSERT_ROWS 32

/* Up to this many stacks the writer keeps every stack's hash → id in
 * memory (store.stack_map, 16 MiB of slots at most) and the database needs
 * no index on stacks.hash; beyond it the index is built and used. */
#define STORE_STACK_MAP_MAX ((size_t)1 << 19)

/* Every SQL statement the store runs more than once. */
enum store__sql {
    SQL_BEGIN,
    SQL_COMMIT,
    SQL_ROLLBACK,
    SQL_STRING_FIND,
    SQL_STRING_INSERT,
    SQL_STRING_GET,
    SQL_FUNCTION_FIND,
    SQL_FUNCTION_INSERT,
    SQL_FUNCTION_GET,
    SQL_STACK_FIND,
    SQL_STACK_INSERT,      /* one stack with the id the writer chose */
    SQL_STACK_INSERT_MANY, /* STACK_INSERT_ROWS of them in one statement */
    SQL_STACK_HASHES,      /* every stack row's id and hash (the writer's stack_map) */
    SQL_CHUNK_FIND,        /* the chunk whose range may hold id ?1 (first_id, last_id, data) */
    SQL_CHUNK_INSERT,      /* a new chunk (first_id, last_id, data) */
    SQL_STACK_LAST_ID,     /* the highest stack id ever handed out */
    SQL_STACK_GET,
    SQL_SET_FIND,
    SQL_SET_INSERT,
    SQL_SET_GET,
    SQL_SET_LATEST,
    SQL_META_FIND,
    SQL_META_INSERT,
    SQL_PROFILE_INSERT,
    SQL_PROFILE_LOAD,
    SQL_PROFILE_INFO,
    SQL_PROFILE_AT,
    SQL_PROFILE_SET,
    SQL_SERIES_INSERT,
    SQL_SERIES_GET,
    SQL_TARGET_FIND,
    SQL_TARGET_INSERT,
    SQL_TARGETS_LIST,
    SQL_STATE_PUT,
    SQL_STATE_GET,
    SQL_STATE_DELETE,
    SQL_STATE_LIST,
    SQL_PROFILES_COUNT,
    SQL_STACK_SCAN,    /* stacks from id ?1 on, in id order (batched loads) */
    SQL_FUNCTION_SCAN, /* functions with their strings from id ?1 on, in id order */
    SQL_COUNT_
};

/* Content → row id cache (open addressing; keys are byte strings kept in
 * one arena). Bounded: when full it is simply cleared. */
typedef struct store__cache_entry {
    uint64_t hash;
    int64_t id; /* 0 = empty slot */
    uint32_t len;
    size_t off; /* key bytes at arena + off */
} store__cache_entry;

typedef struct store__cache {
    store__cache_entry *slots;
    size_t n_slots; /* power of two */
    size_t n_used;
    char *arena;
    size_t arena_len;
    size_t arena_cap;
    size_t max_entries;    /* clear when exceeded */
    size_t max_arena_bytes; /* clear when exceeded */
} store__cache;

typedef struct store__conn {
    sqlite3 *db;
    pthread_mutex_t mu; /* writer only; readers are handed out by the pool */
    sqlite3_stmt *stmts[SQL_COUNT_];
    sqlite3_stmt *list_stmts[128]; /* readers: store_profiles_list by filter mask */
    bool busy;                     /* readers: taken by a thread */
    bool bulk;                     /* readers: taken for a bulk read */
} store__conn;

#define STORE_READERS_DEFAULT 4
#define STORE_READERS_MAX 16

/* ---- helpers (store.c) ---- */

/* A reader connection for the calling thread alone, until
 * store__reader_put(). Waits while every connection is taken (opening a
 * new one first when fewer than max_readers are open); bulk callers also
 * wait while all but one are taken. Never fails: the first reader is
 * opened by store_open, and a failure to open another just means waiting. */
store__conn *store__reader_get(store *s, bool bulk);
void store__reader_put(store *s, store__conn *c);

/* The cached prepared statement `which` of connection c (prepared on first
 * use), reset and with bindings cleared; NULL on error (c->db's errmsg). */
sqlite3_stmt *store__stmt(store__conn *c, enum store__sql which);

/* An SQLite result code as a negative errno. */
int store__errno(int sqlite_rc);

/* Fill info from a row whose first 8 columns are PROFILE_COLS (store.c). */
void store__info_from_row(sqlite3_stmt *st, store_profile_info *info);

/* Run one statement to completion, ignoring rows. 0 or negative errno. */
int store__exec(sqlite3 *db, const char *sql) LW_WUR;

/* The same for statements whose failure changes nothing for the caller
 * (rollback after an error, checkpoints, vacuum). */
void store__exec_best_effort(sqlite3 *db, const char *sql);

/* The first column of the first row of `sql` (a PRAGMA or an aggregate)
 * into *out. 0, a negative errno, or -EIO when it returns no row. */
int store__query_int(sqlite3 *db, const char *sql, int64_t *out) LW_WUR;

/* 64-bit hash of n bytes (not cryptographic; collisions are checked). */
uint64_t store__hash(const void *data, size_t n);

/* Varints (unsigned LEB128) and zigzag for signed values. */
int store__put_uvarint(lw_buf *b, uint64_t v) LW_WUR;
int store__put_svarint(lw_buf *b, int64_t v) LW_WUR;
/* Read one varint at *pos of data[0..len); -EINVAL when truncated or
 * longer than 64 bits. Inline: the blob decoders call them per value. */
LW_WUR static inline int store__get_uvarint(const unsigned char *data, size_t len, size_t *pos,
                                            uint64_t *v)
{
    if (*pos < len && data[*pos] < 0x80) {
        *v = data[(*pos)++];
        return 0;
    }
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -EINVAL;
        unsigned char c = data[(*pos)++];
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -EINVAL;
}

LW_WUR static inline int store__get_svarint(const unsigned char *data, size_t len, size_t *pos,
                                            int64_t *v)
{
    uint64_t u;
    int rc = store__get_uvarint(data, len, pos, &u);
    if (rc)
        return rc;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

/* Compressed blobs: a format byte (0 raw, 1 zlib), the uncompressed length
 * as a varint, then the payload. Packing is the writer's (under w.mu). */
int store__pack(store *s, const void *raw, size_t len, lw_buf *out) LW_WUR;
int store__unpack(const void *blob, size_t len, lw_buf *out) LW_WUR;

/* ---- stacks (store_stacks.c): rows of `stacks` and front-coded chunks ---- */

/* Decoding a chunk blob: store__chunk_iter_next() steps to the next stack
 * (id, its frames in cur[0..frames_len)). Zero-initialize before the first
 * init; init again to reuse the buffers; free at the end. */
typedef struct store__chunk_iter {
    const unsigned char *data;
    size_t len, pos;
    int64_t id;
    unsigned char *cur, *alt; /* this stack's frames, the scratch for the next */
    size_t cap_cur, cap_alt, frames_len;
} store__chunk_iter;

void store__chunk_iter_init(store__chunk_iter *it, int64_t first_id, const void *data, size_t len);
/* 1: the next stack; 0: the end; -EIO: damaged; -ENOMEM. */
int store__chunk_iter_next(store__chunk_iter *it) LW_WUR;
void store__chunk_iter_free(store__chunk_iter *it);

/* Encoding one: stacks in ascending id order into *out (reset by init). */
typedef struct store__chunk_enc {
    lw_buf *out;
    int64_t prev_id;
    lw_buf prev; /* the previous stack's frames */
    size_t n;    /* stacks added */
} store__chunk_enc;

void store__chunk_enc_init(store__chunk_enc *e, lw_buf *out, int64_t first_id);
/* 0, -EINVAL (id not above the previous one), -ENOMEM or -E2BIG. */
int store__chunk_enc_add(store__chunk_enc *e, int64_t id, const unsigned char *frames, size_t len) LW_WUR;
void store__chunk_enc_free(store__chunk_enc *e);

/* The frames of stack id into *out (reset first): 0, -ENOENT (no such
 * stack), -EIO (a damaged chunk), -ENOMEM. Any connection. */
int store__stack_get(store__conn *c, int64_t id, lw_buf *out) LW_WUR;

/* fn(arg, i, frames, len) for each of the n sorted, distinct ids (i its
 * index in ids); a missing stack is -EIO (a damaged reference). A
 * nonzero return of fn stops the scan and is returned. */
typedef int (*store__stack_fn)(void *arg, size_t i, const unsigned char *frames, size_t len);
int store__stacks_scan(store__conn *c, const int64_t *ids, size_t n, store__stack_fn fn, void *arg) LW_WUR;

/* fn(arg, id, frames, len, false) for every stack with an id above
 * `above` (rows first, unless chunks_only, then chunks, each in id order);
 * a chunk that stops decoding gives what it could and then fn(arg, id of
 * the last stack read, NULL, 0, true). On db (a reader's snapshot or the
 * writer), statements prepared per call. */
typedef int (*store__stack_each_fn)(void *arg, int64_t id, const unsigned char *frames, size_t len,
                                    bool damaged);
int store__stacks_each(sqlite3 *db, int64_t above, bool chunks_only, store__stack_each_fn fn,
                       void *arg) LW_WUR;

/* Rows of a table whose statement `which` lists rows from id ?1 on in id
 * order (column 0 the id): fn(arg, row, i) for each of the n sorted,
 * distinct ids, by stepping the open cursor to nearby ids (store_load.c).
 * A wanted id without a row is -EIO (a damaged reference). */
int store__scan_ids(store__conn *c, enum store__sql which, const int64_t *ids, size_t n,
                    int (*fn)(void *, sqlite3_stmt *, size_t), void *arg) LW_WUR;

/* Write one chunk (writer). */
int store__stacks_write_chunk(store__conn *w, int64_t first_id, int64_t last_id, const lw_buf *blob) LW_WUR;

/* Delete stacks by id (sorted, distinct), rows or from their chunks
 * (rewritten, or deleted when empty; the largest id ever handed out is
 * kept in sqlite_sequence so it is never handed out again). Writer, in a
 * write transaction. */
int store__stacks_delete(store__conn *w, const int64_t *ids, size_t n) LW_WUR;

/* ---- caches (store_cache.c) ---- */
void store__cache_init(store__cache *c, size_t max_entries, size_t max_arena_bytes);
void store__cache_clear(store__cache *c);
void store__cache_free(store__cache *c);
/* The id stored for this key, or 0. */
int64_t store__cache_get(const store__cache *c, uint64_t hash, const void *key, size_t len);
/* Remember key → id (id > 0). Failure to allocate just leaves it uncached. */
void store__cache_put(store__cache *c, uint64_t hash, const void *key, size_t len, int64_t id);
/* Ask the CPU to fetch the slot a lookup of hash starts at (no effect on
 * the contents). */
void store__cache_prefetch(const store__cache *c, uint64_t hash);
void store__caches_clear(store *s);

/* ---- stack map (store_cache.c): stack hash → stack id, all of them ---- */
typedef struct store__stackmap {
    uint64_t *hashes;
    int64_t *ids;   /* 0 = empty slot */
    size_t n_slots; /* power of two */
    size_t n_used;
} store__stackmap;

void store__stackmap_free(store__stackmap *m);
/* Add hash → id (id > 0; equal hashes of different stacks are kept side by
 * side). 0 or -ENOMEM (the map is then unchanged). */
int store__stackmap_add(store__stackmap *m, uint64_t hash, int64_t id) LW_WUR;
/* Room for n entries without growing again (one rehash instead of one per
 * doubling). 0 or -ENOMEM (the map is then unchanged). */
int store__stackmap_reserve(store__stackmap *m, size_t n) LW_WUR;
/* The ids stored with this hash, one per call: start with *pos = 0; 0 when
 * there are no more. */
int64_t store__stackmap_next(const store__stackmap *m, uint64_t hash, size_t *pos);
/* Ask the CPU to fetch the slot a lookup of hash starts at. */
void store__stackmap_prefetch(const store__stackmap *m, uint64_t hash);

/* ---- int64 set (store_cache.c), used by GC and loading ---- */
typedef struct store__idset {
    int64_t *keys;   /* 0 = empty */
    int64_t *values; /* parallel to keys */
    size_t n_slots;
    size_t n_used;
} store__idset;

void store__idset_init(store__idset *set);
void store__idset_free(store__idset *set);
/* Empty the set, keeping its allocation. */
void store__idset_clear(store__idset *set);
/* Add key (> 0) with value; replaces an existing value. 0 or -ENOMEM. */
int store__idset_put(store__idset *set, int64_t key, int64_t value) LW_WUR;
/* Remove key if present. Cannot fail. */
void store__idset_del(store__idset *set, int64_t key);
/* True when key is present; *value (may be NULL) gets its value. */
bool store__idset_get(const store__idset *set, int64_t key, int64_t *value);

/* ---- sample sets (store_sets.c) ---- */

/* A decoded sample set: n_samples rows of a stack id, n_types values and
 * labels (4 int64 per label: key, str, num, unit; string ids). */
typedef struct store__set_reader {
    size_t n_samples;
    size_t n_types;
    int64_t *stack_ids; /* n_samples */
    int64_t *values;    /* n_samples * n_types, row-major */
    size_t *label_off;  /* n_samples + 1 offsets into labels (in labels, not int64s) */
    int64_t *labels;    /* 4 per label */
    size_t cap_samples, cap_values, cap_labels; /* allocated sizes, for reuse */
} store__set_reader;

/* Keyframes decoded once and kept for the writer (set id → reader). */
typedef struct store__kfcache {
    store__idset index; /* set id → slot in entries */
    store__set_reader *entries;
    int64_t *ids; /* parallel to entries: their set ids */
    size_t n, cap;
    size_t bytes; /* cleared when over STORE_KF_CACHE_BYTES */
} store__kfcache;

/* Size the arrays for n rows, nt types and n_labels labels, reusing what r
 * already holds (contents undefined; r zeroed or previously used). 0 or
 * -ENOMEM (r then empty). */
int store__set_alloc(store__set_reader *r, size_t n, size_t nt, size_t n_labels) LW_WUR;
void store__set_free(store__set_reader *r);
bool store__set_equal(const store__set_reader *a, const store__set_reader *b);
/* Raw (unpacked) encodings; see store_sets.c. */
int store__set_encode_full(const store__set_reader *r, lw_buf *out) LW_WUR;
/* -EINVAL when base has other sample types; -ERANGE (nothing encoded)
 * when more than max_new_rows rows match no row of base (SIZE_MAX: no
 * limit) — such a delta carries those rows in full and would not be kept. */
int store__set_encode_delta(const store__set_reader *r, const store__set_reader *base,
                            size_t max_new_rows, lw_buf *out) LW_WUR;
/* Decode a packed blob; a delta needs its keyframe `base`, or NULL for a
 * shallow decode (matched rows: stack id 0, no labels). -EIO corrupt. */
int store__set_parse(const void *blob, size_t len, bool is_delta, const store__set_reader *base,
                     store__set_reader *out) LW_WUR;
/* Load and decode set id (with its keyframe) on connection c. -ENOENT,
 * -EIO, -ENOMEM. */
int store__set_load(store__conn *c, int64_t id, store__set_reader *out) LW_WUR;
/* The same on the writer, with keyframes from (and into) s->kf. Writer
 * lock held. */
int store__set_load_w(store *s, int64_t id, store__set_reader *out) LW_WUR;
/* The decoded full set id from the keyframe cache, loading it if needed.
 * NULL with *rc set on failure. Writer lock held. */
const store__set_reader *store__kf_get(store *s, int64_t id, int *rc);
/* Keep full set r as id: its arrays are taken over (r is zeroed) when the
 * cache has room; false leaves r as it is (best effort). */
bool store__kf_take(store *s, int64_t id, store__set_reader *r);
/* An exactly sized copy of src into dst (zeroed first). 0 or -ENOMEM. */
int store__set_copy(const store__set_reader *src, store__set_reader *dst) LW_WUR;
/* Forget set id (a keyframe its target no longer uses), if cached; with
 * keep, its arrays go to *keep (freed first) for reuse. */
void store__kf_drop(store__kfcache *kf, int64_t id, store__set_reader *keep);
void store__kf_clear(store__kfcache *kf);

/* lw_buf_append with an inline fast path when the bytes fit the current
 * allocation (the hot loop appends a few bytes per stack frame). */
static inline int store__buf_add(lw_buf *b, const void *d, size_t n)
{
    if (b->data && b->len + n < b->cap && b->len + n <= b->max_bytes) {
        if (n <= 16) {
            /* A few bytes per frame: a loop beats a call to memcpy. */
            const char *src = d;
            for (size_t i = 0; i < n; i++)
                b->data[b->len + i] = src[i];
        } else {
            memcpy(b->data + b->len, d, n);
        }
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return lw_buf_append(b, d, n);
}

/* Offsets from an expected row at which the memo (store_ingest.c) and the
 * delta encoder (store_sets.c) look for a row of the previous profile or
 * keyframe: the row itself, a few after it (rows that went away) and the
 * two before it (swapped neighbours). Successive profiles of a service
 * mostly list their rows in the same order. */
static const int store__near[] = {0, 1, 2, 3, -1, -2, 4, 5, 6, 7};
#define STORE_NEAR_N (sizeof(store__near) / sizeof(store__near[0]))

/* Buffered varint writer over an lw_buf for the hot encoders: errors are
 * sticky and reported by store__vw_finish(). */
typedef struct store__vw {
    lw_buf *b;
    size_t n;
    int rc;
    unsigned char buf[4096];
} store__vw;

static inline void store__vw_flush(store__vw *w)
{
    if (w->n && !w->rc)
        w->rc = lw_buf_append(w->b, w->buf, w->n);
    w->n = 0;
}

static inline void store__vw_u(store__vw *w, uint64_t v)
{
    if (w->n > sizeof(w->buf) - 10)
        store__vw_flush(w);
    while (v >= 0x80) {
        w->buf[w->n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    w->buf[w->n++] = (unsigned char)v;
}

static inline void store__vw_s(store__vw *w, int64_t v)
{
    store__vw_u(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static inline int store__vw_finish(store__vw *w)
{
    store__vw_flush(w);
    return w->rc;
}

/* Decode a profile_meta blob's string ids: every string id it references is
 * passed to fn. */
int store__meta_strings(const void *blob, size_t len, int (*fn)(void *, int64_t), void *arg) LW_WUR;

/* ---- stack memo (store_ingest.c) ---- */

/* The previous profile of one target and type, sample by sample: its
 * locations' tokens (s->locations: one token per distinct frame blob) and
 * its stack id. Successive profiles of a service list mostly the same
 * stacks in the same order, so the next ingest resolves them by a
 * sequential comparison of a few tokens instead of building each stack's
 * frames and probing a hash table. */
typedef struct store__memo {
    int64_t target_id;
    char type[32];
    size_t n;
    int64_t *ids;  /* n stack ids */
    uint32_t *offs; /* n + 1 offsets into seq */
    uint32_t *seq; /* location tokens, sample after sample */
    size_t cap_ids, cap_offs, cap_seq; /* allocated, swapped with the scratch */
    size_t bytes; /* memory held */
} store__memo;

void store__memos_clear(store *s);

/* ---- the handle ---- */
struct store {
    char *path;
    char *lock_path;
    int lock_fd; /* -1 when read-only */
    bool read_only;
    store__conn w; /* writer; w.db NULL when read-only */
    store__conn readers[STORE_READERS_MAX]; /* pool; the first n_readers are open */
    size_t n_readers, max_readers;
    size_t n_bulk;            /* readers taken by bulk reads */
    pthread_mutex_t pool_mu;  /* guards the pool's busy flags and counts */
    pthread_cond_t pool_cv;   /* a reader was returned */
    store__cache strings;
    store__cache functions;
    store__cache stacks;
    store__cache functions_by_text; /* writer: name, system name, file, start line → function id */
    store__cache locations;   /* writer: a location's frame blob → its token (memo) */
    /* Writer: every stack's hash → id. A stack whose hash is absent is
     * new: inserted without a lookup, and no index on stacks.hash to
     * maintain (that index cost ~80 % of adding a stack). Loaded on first
     * use and again after every cache clear (rollback, GC: rows may have
     * vanished). Over stack_map_max stacks, or without the memory, the
     * database gets the index back and stacks are looked up by it
     * (stacks_indexed). */
    store__stackmap stack_map;
    bool stack_map_loaded;
    bool stacks_indexed;
    size_t stack_map_max;     /* STORE_STACK_MAP_MAX (tests lower it) */
    int64_t last_stack_id;    /* writer: ids are handed out here (0 = not loaded) */
    int64_t last_location_token; /* tokens handed out so far (never reused) */
    int64_t deleted_since_gc; /* profiles deleted since the last full GC (writer lock) */
    pthread_mutex_t gc_mu;    /* one retention run at a time (its collection marks unlocked) */
    /* Tests only: called between a full collection's mark and its sweep,
     * without the writer lock (to ingest in that window). */
    void (*gc_between)(store *s, void *arg);
    void *gc_between_arg;
    store__kfcache kf;        /* writer: decoded keyframes */
    struct store__ingest *ing; /* writer: scratch reused by every ingest */
    store__memo *memos;        /* writer: one per (target, type) */
    size_t n_memos, cap_memos;
    size_t memo_bytes;         /* all memos; cleared when over STORE_MEMO_BYTES */
    struct libdeflate_compressor *packer; /* writer: store__pack's, made on first use */
};

/* Free the ingest scratch (store_ingest.c). NULL is fine. */
void store__ingest_free(struct store__ingest *ing);

#endif
