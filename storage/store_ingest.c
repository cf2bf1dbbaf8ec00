/* store_ingest.c — store one pprof profile, deduplicated, in one transaction.
 *
 * A profile is taken apart into rows shared by every profile that uses
 * them: strings, functions (name, system name, file, start line), stacks
 * (a blob of varint (function id, line) pairs, leaf first, inlined lines as
 * frames of their own) and a sample set (all the samples of the profile as
 * one compressed, column-wise blob of stack ids, values and labels). A
 * profile row then only keeps its metadata, totals and the ids of its
 * sample set and of its "meta" row (sample types, period type, comments —
 * the same for every profile of a kind). Identical successive profiles (an
 * idle service's goroutines) share one sample set and cost one small row.
 *
 * Every shared row is found by the hash of its content and then compared
 * byte for byte, so a hash collision can only cost a duplicate row, never a
 * wrong answer. The writer's caches make repeated content (the common case)
 * free of SQLite lookups, and the stack memo (the same target's previous
 * profile, sample by sample) resolves most stacks by one sequential
 * comparison. The scratch buffers live in the handle and are reused, so a
 * big profile does not pay for fresh page-faulting allocations each time.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Caps for the per-ingest scratch buffers; a decoded profile is already
 * bounded by pprof's decompressed-size cap, these only guard the encoders. */
#define SET_MAX_BYTES ((size_t)1 << 30)

/* Samples resolved a block at a time (see sample_prepare). */
#define SAMPLE_BLOCK 16

/* A new stack whose row is written later, with others in one statement. */
typedef struct pending_stack {
    int64_t id;
    uint64_t hash;
    size_t off, len; /* its frames in `stacks` */
} pending_stack;

typedef struct store__ingest {
    store *s;
    const pprof_profile *p;
    int64_t *str_ids;   /* per profile string index: DB string id, -1 = not yet looked up */
    int64_t *fn_ids;    /* per profile function index: DB function id, 0 = not yet */
    size_t *loc_off;    /* per profile location index: offset of its frames in `frames` */
    size_t *loc_len;    /* per profile location index: SIZE_MAX = not yet encoded */
    store__idset fn_index;  /* function id → index */
    store__idset loc_index; /* location id → index (sparse ids) */
    int32_t *loc_dense;     /* location id → index + 1 (dense ids), or NULL */
    size_t cap_loc_dense;   /* entries of loc_dense in use */
    void *loc_dense_mem;    /* its allocation (kept across ingests) */
    size_t cap_loc_dense_mem;
    uint32_t *loc_intern;   /* per profile location index: its frames' token, 0 = not yet */
    size_t cap_loc_intern;
    uint32_t *tok_by_id;    /* with loc_dense: location id → token, 0 = not yet (one load) */
    size_t cap_tok_by_id;
    uint64_t *span_by_id;   /* with loc_dense: location id → its frames' offset << 5 | length
                             * when at most 16 bytes with slack after them, else 0 (blob_fast) */
    size_t cap_span_by_id;
    bool want_memo;         /* this profile becomes its target's memo (tokens are needed) */
    size_t n_seq;           /* location references of all samples */
    store__memo *memo;      /* this target's previous profile, or NULL */
    size_t memo_next;       /* expected position in memo */
    size_t memo_misses;     /* samples the memo's window missed in a row */
    size_t window_misses;   /* samples the memo missed in a row, new stacks too */
    size_t index_misses;    /* memo index lookups that missed in a row */
    uint64_t *memo_index;   /* memo position + 1 in the low 32 bits, hash tag in the high, 0 = empty */
    size_t n_memo_slots;    /* power of two; 0 = not built for this ingest */
    size_t cap_memo_index;
    uint32_t *seq;          /* every sample's location tokens (the next memo) */
    uint32_t *offs;         /* per sample + 1: offsets into `seq` */
    lw_buf stacks;          /* the frame blobs of the profile's samples the memo missed (the new
                             * stacks' rows are written from here) */
    size_t blk_off[SAMPLE_BLOCK], blk_len[SAMPLE_BLOCK]; /* each in `stacks` */
    uint64_t blk_hash[SAMPLE_BLOCK];                     /* and its hash */
    pending_stack *pending; /* new stacks not inserted yet (flush_stacks) */
    size_t n_pending, cap_pending;
    lw_buf chunk;           /* scratch: an encoded chunk of new stacks */
    lw_buf got;             /* scratch: a stored stack's frames (stack_has_frames) */
    bool map_reserved;      /* add_stack considered making room in the map */
    lw_buf frames;      /* encoded frames of every location */
    lw_buf set;         /* raw sample set */
    lw_buf packed;      /* packed sample set */
    lw_buf delta;       /* raw delta sample set */
    lw_buf meta;        /* raw meta */
    lw_buf tmp;         /* scratch: function keys, sample type text */
    lw_buf fn_text;     /* scratch: a function's text key (pfunction) */
    size_t n_done;      /* samples resolved so far */
    size_t cap_seq, cap_offs;
    int64_t *stack_ids; /* per sample */
    int64_t *totals;    /* per sample type */
    store__set_reader cur; /* the profile's sample set */
    uint64_t set_hash;     /* of cur's rows so far (set_row) */
    size_t cap_strings, cap_functions, cap_locations, cap_loc_len, cap_samples, cap_types;
    char *err;
    size_t err_len;
} ingest;

static void ierr(ingest *in, const char *fmt, ...) LW_PRINTF(2, 3);
static int grow(void **arr, size_t *cap, size_t need, size_t elem) LW_WUR;


static void ierr(ingest *in, const char *fmt, ...)
{
    if (!in->err || !in->err_len || in->err[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->err, in->err_len, fmt, ap);
    va_end(ap);
}

/* Report an SQLite failure of the writer connection and translate it. */
static int sqlerr(ingest *in, int src, const char *what)
{
    int rc = store__errno(src);
    if (!rc)
        rc = -EIO;
    ierr(in, "%s: %s", what, sqlite3_errmsg(in->s->w.db));
    return rc;
}

/* The same for a store function's errno (rc < 0). */
static int dberr(ingest *in, int rc, const char *what)
{
    ierr(in, "%s: %s", what, rc == -ENOMEM ? "out of memory" : sqlite3_errmsg(in->s->w.db));
    return rc;
}

static int db_string(ingest *in, const char *str, int64_t *out)
{
    store *s = in->s;
    size_t len = strlen(str);
    if (!len) {
        *out = 0;
        return 0;
    }
    uint64_t h = store__hash(str, len);
    int64_t id = store__cache_get(&s->strings, h, str, len);
    if (id) {
        *out = id;
        return 0;
    }
    sqlite3_stmt *st = store__stmt(&s->w, SQL_STRING_FIND);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "string lookup");
    sqlite3_bind_int64(st, 1, (int64_t)h);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const void *v = sqlite3_column_text(st, 1);
        if ((size_t)sqlite3_column_bytes(st, 1) == len && memcmp(v, str, len) == 0) {
            id = sqlite3_column_int64(st, 0);
            break;
        }
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sqlerr(in, src, "string lookup");
    if (!id) {
        st = store__stmt(&s->w, SQL_STRING_INSERT);
        if (!st)
            return sqlerr(in, SQLITE_ERROR, "string insert");
        sqlite3_bind_int64(st, 1, (int64_t)h);
        sqlite3_bind_text(st, 2, str, (int)len, SQLITE_STATIC);
        src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            return sqlerr(in, src, "string insert");
        id = sqlite3_last_insert_rowid(s->w.db);
    }
    store__cache_put(&s->strings, h, str, len, id);
    *out = id;
    return 0;
}

/* The DB string id of profile string index idx. */
static int pstring(ingest *in, int64_t idx, int64_t *out)
{
    if (idx < 0 || (size_t)idx >= in->p->n_strings) {
        ierr(in, "string index %" PRId64 " out of range", idx);
        return -EINVAL;
    }
    if (in->str_ids[idx] >= 0) {
        *out = in->str_ids[idx];
        return 0;
    }
    const char *str = in->p->strings[idx] ? in->p->strings[idx] : "";
    int rc = db_string(in, str, out);
    if (!rc)
        in->str_ids[idx] = *out;
    return rc;
}

static int db_function(ingest *in, int64_t name, int64_t sys, int64_t file, int64_t start_line,
                       int64_t *out)
{
    store *s = in->s;
    int rc;
    lw_buf_reset(&in->tmp);
    if ((rc = store__put_uvarint(&in->tmp, (uint64_t)name)) ||
        (rc = store__put_uvarint(&in->tmp, (uint64_t)sys)) ||
        (rc = store__put_uvarint(&in->tmp, (uint64_t)file)) ||
        (rc = store__put_svarint(&in->tmp, start_line)))
        return rc;
    uint64_t h = store__hash(in->tmp.data, in->tmp.len);
    int64_t id = store__cache_get(&s->functions, h, in->tmp.data, in->tmp.len);
    if (id) {
        *out = id;
        return 0;
    }
    sqlite3_stmt *st = store__stmt(&s->w, SQL_FUNCTION_FIND);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "function lookup");
    sqlite3_bind_int64(st, 1, name);
    sqlite3_bind_int64(st, 2, sys);
    sqlite3_bind_int64(st, 3, file);
    sqlite3_bind_int64(st, 4, start_line);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sqlerr(in, src, "function lookup");
    if (!id) {
        st = store__stmt(&s->w, SQL_FUNCTION_INSERT);
        if (!st)
            return sqlerr(in, SQLITE_ERROR, "function insert");
        sqlite3_bind_int64(st, 1, name);
        sqlite3_bind_int64(st, 2, sys);
        sqlite3_bind_int64(st, 3, file);
        sqlite3_bind_int64(st, 4, start_line);
        src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            return sqlerr(in, src, "function insert");
        id = sqlite3_last_insert_rowid(s->w.db);
    }
    store__cache_put(&s->functions, h, in->tmp.data, in->tmp.len, id);
    *out = id;
    return 0;
}

static bool string_index_ok(const pprof_profile *p, int64_t i)
{
    return i >= 0 && (size_t)i < p->n_strings;
}

/* The DB function id of profile function id fid: remembered for the
 * profile (fn_ids), else from the writer's cache keyed by the function's
 * text (name, system name and file, each NUL-terminated, then the start
 * line: one probe where the string and function rows take four), else
 * from the string and function rows. */
static int pfunction(ingest *in, uint64_t fid, int64_t *out)
{
    store *s = in->s;
    const pprof_profile *p = in->p;
    int64_t idx;
    if (!store__idset_get(&in->fn_index, (int64_t)fid, &idx)) {
        ierr(in, "function id %" PRIu64 " does not exist", fid);
        return -EINVAL;
    }
    if (in->fn_ids[idx]) {
        *out = in->fn_ids[idx];
        return 0;
    }
    const pprof_function *f = &p->functions[idx];
    int64_t name, sys, file;
    int rc;
    bool keyed = string_index_ok(p, f->name) && string_index_ok(p, f->system_name) &&
                 string_index_ok(p, f->filename);
    uint64_t h = 0;
    if (keyed) {
        const char *parts[3] = {p->strings[f->name], p->strings[f->system_name],
                                p->strings[f->filename]};
        lw_buf_reset(&in->fn_text);
        for (size_t k = 0; k < 3; k++)
            if ((rc = lw_buf_append(&in->fn_text, parts[k] ? parts[k] : "",
                                    (parts[k] ? strlen(parts[k]) : 0) + 1)))
                return rc;
        if ((rc = lw_buf_append(&in->fn_text, &f->start_line, sizeof(f->start_line))))
            return rc;
        h = store__hash(in->fn_text.data, in->fn_text.len);
        int64_t id = store__cache_get(&s->functions_by_text, h, in->fn_text.data, in->fn_text.len);
        if (id) {
            in->fn_ids[idx] = *out = id;
            return 0;
        }
    }
    if ((rc = pstring(in, f->name, &name)) || (rc = pstring(in, f->system_name, &sys)) ||
        (rc = pstring(in, f->filename, &file)) ||
        (rc = db_function(in, name, sys, file, f->start_line, out)))
        return rc;
    if (keyed)
        store__cache_put(&s->functions_by_text, h, in->fn_text.data, in->fn_text.len, *out);
    in->fn_ids[idx] = *out;
    return 0;
}

/* Marks a synthetic function (an unsymbolized frame) in functions.start_line;
 * real functions never have a negative start line. */
#define UNSYMBOLIZED_START_LINE (-1)

static const char *pstr(const pprof_profile *p, int64_t i)
{
    return i >= 0 && (size_t)i < p->n_strings && p->strings[i] ? p->strings[i] : "";
}

/* A location without line information becomes one frame of a synthetic
 * function named "<mapping basename>+0x<offset>" (or "0x<address>" without
 * a mapping) whose file is the mapping's file name (else its build id), so
 * that it keeps the normalized identity pprof.h defines (mapping name and
 * offset); store_load.c turns it back into such a location. */
static int unsymbolized_function(ingest *in, const pprof_location *loc, int64_t *out)
{
    const pprof_profile *p = in->p;
    const pprof_mapping *m = NULL;
    for (size_t i = 0; loc->mapping_id && i < p->n_mappings; i++)
        if (p->mappings[i].id == loc->mapping_id) {
            m = &p->mappings[i];
            break;
        }
    char name[512];
    int64_t file = 0;
    int rc;
    if (m) {
        const char *mf = pstr(p, m->filename);
        const char *mname = mf[0] ? mf : pstr(p, m->build_id);
        const char *base = strrchr(mname, '/');
        base = base ? base + 1 : mname;
        snprintf(name, sizeof(name), "%s+0x%" PRIx64, base[0] ? base : "?",
                 loc->address - m->memory_start + m->file_offset);
        if ((rc = db_string(in, mname, &file)))
            return rc;
    } else {
        snprintf(name, sizeof(name), "0x%" PRIx64, loc->address);
    }
    int64_t name_id;
    if ((rc = db_string(in, name, &name_id)))
        return rc;
    return db_function(in, name_id, name_id, file, UNSYMBOLIZED_START_LINE, out);
}

/* The profile's index of location id loc_id, or -EINVAL. */
static int location_index(ingest *in, uint64_t loc_id, size_t *out)
{
    int64_t li;
    if (in->loc_dense) {
        li = loc_id < in->cap_loc_dense ? (int64_t)in->loc_dense[loc_id] - 1 : -1;
    } else if (!store__idset_get(&in->loc_index, (int64_t)loc_id, &li)) {
        li = -1;
    }
    if (li < 0) {
        ierr(in, "location id %" PRIu64 " does not exist", loc_id);
        return -EINVAL;
    }
    *out = (size_t)li;
    return 0;
}

/* Encode location index li's frames (once) into in->frames. */
static int location_frames(ingest *in, size_t li, const unsigned char **data, size_t *len)
{
    int rc;
    if (in->loc_len[li] == SIZE_MAX) {
        const pprof_location *loc = &in->p->locations[li];
        int64_t fn;
        size_t start = in->frames.len;
        if (loc->n_lines == 0) {
            if ((rc = unsymbolized_function(in, loc, &fn)) ||
                (rc = store__put_uvarint(&in->frames, (uint64_t)fn)) ||
                (rc = store__put_svarint(&in->frames, 0)))
                return rc;
        }
        for (size_t j = 0; j < loc->n_lines; j++) {
            if ((rc = pfunction(in, loc->lines[j].function_id, &fn)) ||
                (rc = store__put_uvarint(&in->frames, (uint64_t)fn)) ||
                (rc = store__put_svarint(&in->frames, loc->lines[j].line)))
                return rc;
        }
        in->loc_off[li] = start;
        in->loc_len[li] = in->frames.len - start;
        /* Slack for blob_fast's fixed 16-byte copies (else it takes the
         * general loop for this location). A location has 2 bytes at least,
         * so a span is never 0. */
        if (in->loc_dense && in->loc_len[li] <= 16 && !lw_buf_reserve(&in->frames, 16))
            in->span_by_id[loc->id] = (uint64_t)start << 5 | in->loc_len[li];
    }
    *data = (const unsigned char *)in->frames.data + in->loc_off[li];
    *len = in->loc_len[li];
    return 0;
}

/* The token of location index li: equal tokens mean equal frame blobs (the
 * writer's location cache compares them byte for byte), so two samples
 * with equal token sequences have the same stack. */
static int location_token(ingest *in, size_t li, uint32_t *out)
{
    store *s = in->s;
    if (!in->loc_intern[li]) {
        const unsigned char *d;
        size_t n;
        int rc = location_frames(in, li, &d, &n);
        if (rc)
            return rc;
        uint64_t h = store__hash(d, n);
        int64_t tok = store__cache_get(&s->locations, h, d, n);
        if (!tok) {
            /* Tokens are never reused (a cleared cache only means new
             * tokens for old frames: memo misses, not wrong stacks). */
            tok = ++s->last_location_token;
            store__cache_put(&s->locations, h, d, n, tok);
        }
        in->loc_intern[li] = (uint32_t)tok;
        if (in->loc_dense)
            in->tok_by_id[in->p->locations[li].id] = (uint32_t)tok;
    }
    *out = in->loc_intern[li];
    return 0;
}

/* Token sequences are short (a stack's depth): a plain loop beats a call. */
static inline bool seq_equal(const uint32_t *a, const uint32_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static uint64_t seq_hash(const uint32_t *seq, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ seq[i]) * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 29);
}

/* Index every memo row by its token sequence, for samples that moved
 * further than the window looks. 0 or -ENOMEM. */
static int memo_index_build(ingest *in)
{
    const store__memo *m = in->memo;
    size_t n_slots = 16;
    while (n_slots < m->n * 2)
        n_slots *= 2;
    if (m->n >= UINT32_MAX)
        return -ENOMEM;
    int rc = grow((void **)&in->memo_index, &in->cap_memo_index, n_slots, sizeof(uint64_t));
    if (rc)
        return rc;
    memset(in->memo_index, 0, n_slots * sizeof(uint64_t));
    for (size_t j = m->n; j-- > 0;) { /* the first of equal rows wins */
        uint64_t h = seq_hash(m->seq + m->offs[j], m->offs[j + 1] - m->offs[j]);
        size_t k = (size_t)h & (n_slots - 1);
        while (in->memo_index[k] && (in->memo_index[k] >> 32) != (h >> 32))
            k = (k + 1) & (n_slots - 1);
        in->memo_index[k] = (h & 0xffffffff00000000ULL) | (uint64_t)(j + 1);
    }
    in->n_memo_slots = n_slots;
    return 0;
}

/* The memo row with this token sequence, or -1. */
static int64_t memo_index_find(const ingest *in, const uint32_t *seq, size_t n)
{
    const store__memo *m = in->memo;
    uint64_t h = seq_hash(seq, n);
    size_t mask = in->n_memo_slots - 1;
    for (size_t k = (size_t)h & mask; in->memo_index[k]; k = (k + 1) & mask) {
        uint64_t e = in->memo_index[k];
        size_t j = (size_t)(e & 0xffffffffu) - 1;
        if ((e >> 32) == (h >> 32) && m->offs[j + 1] - m->offs[j] == n &&
            seq_equal(m->seq + m->offs[j], seq, n))
            return (int64_t)j;
    }
    return -1;
}

/* Stacks the memo's window may miss in a row, while they are not new to
 * the store (so probably elsewhere in the memo), before the memo is
 * indexed. New stacks (a service's new call paths, often listed first) do
 * not count: they cannot be in the memo. */
#define MEMO_MISSES_BEFORE_INDEX 32

/* Samples the memo missed in a row after which its window shrinks to the
 * expected row and the next (memo_stack). */
#define MEMO_WINDOW_MISS_RUN 32

/* Index lookups missed in a row after which the memo's index is tried on
 * one sample in MEMO_INDEX_RETRY only (memo_stack). */
#define MEMO_INDEX_MISS_RUN 256
#define MEMO_INDEX_RETRY 64

/* One chunked stack becomes a row of `stacks` (use_stack_index). */
typedef struct to_rows {
    store__conn *w;
    bool damaged; /* a chunk did not decode */
} to_rows;

static int stack_to_row(void *arg, int64_t id, const unsigned char *frames, size_t len, bool damaged)
{
    to_rows *t = arg;
    if (damaged) {
        t->damaged = true;
        return 0;
    }
    sqlite3_stmt *st = store__stmt(t->w, SQL_STACK_INSERT);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)store__hash(frames, len));
    sqlite3_bind_blob(st, 3, frames, (int)len, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : store__errno(src) ? store__errno(src) : -EIO;
}

/* Stacks are looked up by the on-disk index from now on (too many for the
 * map, or no memory for it): the index is built if the file lacks it, and
 * chunked stacks become rows (the index is on stacks.hash; a file that
 * outgrew the map once keeps them as rows). A damaged chunk stays: the
 * stacks it still gives are then in both tables, with the same frames. */
static int use_stack_index(ingest *in)
{
    store *s = in->s;
    store__stackmap_free(&s->stack_map);
    s->stack_map_loaded = false;
    s->stacks_indexed = true;
    to_rows t = {.w = &s->w};
    int rc = store__stacks_each(s->w.db, 0, true, stack_to_row, &t);
    if (rc)
        return dberr(in, rc, "stack rows");
    if (!t.damaged && store__exec(s->w.db, "DELETE FROM stack_chunks"))
        return sqlerr(in, SQLITE_ERROR, "stack chunks");
    rc = store__exec(s->w.db, "CREATE INDEX IF NOT EXISTS stacks_hash ON stacks(hash)");
    return rc ? sqlerr(in, SQLITE_ERROR, "stack index") : 0;
}

/* One chunked stack into the writer's map (stacks_state_load). */
static int stack_to_map(void *arg, int64_t id, const unsigned char *frames, size_t len, bool damaged)
{
    store *s = arg;
    if (damaged)
        return 0; /* its stacks cannot be matched: new ones get new ids */
    if (s->stack_map.n_used >= s->stack_map_max ||
        store__stackmap_add(&s->stack_map, store__hash(frames, len), id))
        return -ENOSPC;
    return 0;
}

/* Load what the writer needs to add stacks without looking each up: the
 * last stack id and (up to stack_map_max) every stack's hash → id. */
static int stacks_state_load(ingest *in)
{
    store *s = in->s;
    int src;
    if (!s->last_stack_id) {
        sqlite3_stmt *st = store__stmt(&s->w, SQL_STACK_LAST_ID);
        if (!st)
            return sqlerr(in, SQLITE_ERROR, "stack ids");
        src = sqlite3_step(st);
        int64_t last = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_reset(st);
        if (src != SQLITE_ROW)
            return sqlerr(in, src, "stack ids");
        s->last_stack_id = last > 0 ? last : 0;
    }
    if (s->stack_map_loaded || s->stacks_indexed)
        return 0;
    sqlite3_stmt *st = store__stmt(&s->w, SQL_STACK_HASHES);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "stack hashes");
    bool too_many = false;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (s->stack_map.n_used >= s->stack_map_max ||
            store__stackmap_add(&s->stack_map, (uint64_t)sqlite3_column_int64(st, 1),
                                sqlite3_column_int64(st, 0))) {
            too_many = true;
            break;
        }
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        store__stackmap_free(&s->stack_map);
        return sqlerr(in, src, "stack hashes");
    }
    /* Chunked stacks have no stored hash: their frames are hashed. */
    if (!too_many) {
        int rc = store__stacks_each(s->w.db, 0, true, stack_to_map, s);
        if (rc == -ENOSPC) {
            too_many = true;
        } else if (rc) {
            store__stackmap_free(&s->stack_map);
            return dberr(in, rc, "stack chunks");
        }
    }
    if (too_many)
        return use_stack_index(in);
    s->stack_map_loaded = true;
    /* A file that outgrew the map once keeps an index the map makes
     * redundant (it only costs writes): drop it. */
    if (store__exec(s->w.db, "DROP INDEX IF EXISTS stacks_hash"))
        return sqlerr(in, SQLITE_ERROR, "stack index");
    return 0;
}

/* Write the pending new stacks, STORE_STACK_INSERT_ROWS rows a statement:
 * 10-25 % less per row than a statement each (the statement's own work,
 * and the AUTOINCREMENT bookkeeping, a read and a write, are shared). */
static int flush_stacks(ingest *in)
{
    store *s = in->s;
    size_t i = 0;
    const unsigned char *frames = (const unsigned char *)in->stacks.data;
    while (!s->stacks_indexed && i < in->n_pending) {
        /* Chunks of up to STORE_CHUNK_STACKS (store_stacks.c). */
        size_t n = in->n_pending - i < STORE_CHUNK_STACKS ? in->n_pending - i : STORE_CHUNK_STACKS;
        store__chunk_enc e;
        store__chunk_enc_init(&e, &in->chunk, in->pending[i].id);
        int rc = 0;
        for (size_t k = 0; k < n && !rc; k++) {
            const pending_stack *ps = &in->pending[i + k];
            rc = store__chunk_enc_add(&e, ps->id, ps->len ? frames + ps->off : (const unsigned char *)"",
                                      ps->len);
        }
        store__chunk_enc_free(&e);
        if (!rc)
            rc = store__stacks_write_chunk(&s->w, in->pending[i].id, in->pending[i + n - 1].id,
                                           &in->chunk);
        if (rc)
            return dberr(in, rc, "stack chunk insert");
        i += n;
    }
    while (i < in->n_pending) {
        bool many = in->n_pending - i >= STORE_STACK_INSERT_ROWS;
        size_t rows = many ? STORE_STACK_INSERT_ROWS : 1;
        sqlite3_stmt *st = store__stmt(&s->w, many ? SQL_STACK_INSERT_MANY : SQL_STACK_INSERT);
        if (!st)
            return sqlerr(in, SQLITE_ERROR, "stack insert");
        for (size_t r = 0; r < rows; r++) {
            const pending_stack *ps = &in->pending[i + r];
            int k = (int)(3 * r);
            sqlite3_bind_int64(st, k + 1, ps->id);
            sqlite3_bind_int64(st, k + 2, (int64_t)ps->hash);
            sqlite3_bind_blob(st, k + 3, ps->len ? (const void *)(frames + ps->off) : "",
                              (int)ps->len, SQLITE_STATIC);
        }
        int src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            return sqlerr(in, src, "stack insert");
        i += rows;
    }
    in->n_pending = 0;
    return 0;
}

/* A new stack (frames at `off` in in->stacks, which keeps every blob of
 * the profile until it is stored): the next id, its row queued for
 * flush_stacks. */
static int add_stack(ingest *in, uint64_t h, size_t off, size_t len, int64_t *out)
{
    store *s = in->s;
    int rc;
    if ((rc = grow((void **)&in->pending, &in->cap_pending, in->n_pending + 1,
                   sizeof(*in->pending))))
        return rc;
    int64_t id = ++s->last_stack_id;
    in->pending[in->n_pending++] = (pending_stack){.id = id, .hash = h, .off = off, .len = len};
    /* The first new stack of a profile much bigger than its target's last
     * one (or its first): more will follow, so the map makes room for all
     * its samples at once rather than doubling several times (each time
     * rehashing every stack). Without memory it just grows as it goes. */
    if (s->stack_map_loaded && !in->map_reserved) {
        in->map_reserved = true;
        size_t want = s->stack_map.n_used + in->p->n_samples;
        if ((!in->memo || in->p->n_samples > 2 * in->memo->n) && want <= s->stack_map_max)
            (void)!store__stackmap_reserve(&s->stack_map, want);
    }
    if (s->stack_map_loaded && (s->stack_map.n_used >= s->stack_map_max ||
                                store__stackmap_add(&s->stack_map, h, id)) &&
        (rc = use_stack_index(in)))
        return rc;
    *out = id;
    return 0;
}

/* Whether stored stack `id` has exactly these frames. 1, 0 or -errno. A
 * stack that is not there (or in a damaged chunk) is no match. */
static int stack_has_frames(ingest *in, int64_t id, const void *blob, size_t len)
{
    int rc = store__stack_get(&in->s->w, id, &in->got);
    if (rc == -ENOENT || rc == -EIO)
        return 0;
    if (rc)
        return dberr(in, rc, "stack lookup");
    return in->got.len == len && (len == 0 || memcmp(in->got.data, blob, len) == 0);
}

/* The stack id of a frame blob with hash h: from the writer's cache;
 * else from the stack map (new when its hash is absent), or from the
 * index on stacks.hash when the stacks outgrew the map. *known: it
 * existed before. */
static int stack_id(ingest *in, size_t off, size_t len, uint64_t h, int64_t *out, bool *known)
{
    store *s = in->s;
    const char *blob = len ? in->stacks.data + off : "";
    int64_t id = store__cache_get(&s->stacks, h, blob, len);
    int rc;
    *known = true;
    if (id) {
        *out = id;
        return 0;
    }
    if ((rc = stacks_state_load(in)))
        return rc;
    size_t pos = 0;
    int64_t cand = s->stack_map_loaded ? store__stackmap_next(&s->stack_map, h, &pos) : 0;
    if (s->stack_map_loaded && cand) {
        /* Queued (this ingest's new stacks: consecutive ids, compared in
         * memory, so that they go out in whole chunks) or stored. */
        int64_t first_queued = in->n_pending ? in->pending[0].id : INT64_MAX;
        for (; cand && !id; cand = store__stackmap_next(&s->stack_map, h, &pos)) {
            if (cand >= first_queued && (size_t)(cand - first_queued) < in->n_pending) {
                const pending_stack *ps = &in->pending[cand - first_queued];
                if (ps->len == len &&
                    (len == 0 || memcmp(in->stacks.data + ps->off, blob, len) == 0))
                    id = cand;
                continue;
            }
            if ((rc = stack_has_frames(in, cand, blob, len)) < 0)
                return rc;
            if (rc)
                id = cand;
        }
    } else if (!s->stack_map_loaded) {
        if ((rc = flush_stacks(in)))
            return rc;
        sqlite3_stmt *st = store__stmt(&s->w, SQL_STACK_FIND);
        if (!st)
            return sqlerr(in, SQLITE_ERROR, "stack lookup");
        sqlite3_bind_int64(st, 1, (int64_t)h);
        int src;
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            if ((size_t)sqlite3_column_bytes(st, 1) == len &&
                (len == 0 || memcmp(sqlite3_column_blob(st, 1), blob, len) == 0)) {
                id = sqlite3_column_int64(st, 0);
                break;
            }
        }
        sqlite3_reset(st);
        if (src != SQLITE_ROW && src != SQLITE_DONE)
            return sqlerr(in, src, "stack lookup");
    }
    /* A stack found is cached; a new one is not (its target's next
     * profiles find it through the memo; the first reuse elsewhere
     * caches it): a profile of new stacks copies none of them. */
    if (id) {
        store__cache_put(&s->stacks, h, blob, len, id);
    } else {
        *known = false;
        if ((rc = add_stack(in, h, off, len, &id)))
            return rc;
    }
    *out = id;
    return 0;
}

/* The sample's stack from the memo: its location tokens go into `seq`
 * (the next memo; ingest_init sized it for every sample's locations) and
 * are compared with the previous profile's rows near the expected position
 * (store__near), or found by the memo's index once its rows moved further.
 * Equal tokens, so a hit needs neither the stack's frames nor a hash.
 * 1 with *out set on a hit, 0 on a miss, or a negative errno. */
static int memo_stack(ingest *in, const pprof_sample *smp, int64_t *out)
{
    int rc;
    size_t nl = smp->n_locations, start = in->offs[in->n_done];
    const uint64_t *restrict ids = smp->location_ids;
    uint32_t *restrict seq = in->seq + start;
    const uint32_t *tok_by_id = in->tok_by_id; /* not restrict: location_token writes it */
    size_t n_dense = in->loc_dense ? in->cap_loc_dense : 0;
    for (size_t i = 0; i < nl; i++) {
        /* The fast path (locals, so nothing is reloaded per location):
         * dense location ids whose token is known. */
        for (; i < nl; i++) {
            uint64_t id = ids[i];
            if (id >= n_dense || !tok_by_id[id])
                break;
            seq[i] = tok_by_id[id];
        }
        if (i == nl)
            break;
        size_t li;
        if ((rc = location_index(in, ids[i], &li)) || (rc = location_token(in, li, &seq[i])))
            return rc;
    }
    in->offs[++in->n_done] = (uint32_t)(start + nl);

    /* After a long run of misses (new stacks) only the expected row and
     * the next are tried, until something hits again: a run of new rows
     * does not move the expected position, so the rows after it are
     * still found there (or by the index). */
    const store__memo *m = in->memo;
    size_t near = in->window_misses < MEMO_WINDOW_MISS_RUN ? STORE_NEAR_N : 2;
    for (size_t k = 0; m && k < near; k++) {
        size_t j = in->memo_next + (size_t)(ptrdiff_t)store__near[k];
        if (j < m->n && m->offs[j + 1] - m->offs[j] == nl && seq_equal(m->seq + m->offs[j], seq, nl)) {
            if (j + 1 > in->memo_next)
                in->memo_next = j + 1;
            in->memo_misses = 0;
            in->window_misses = 0;
            *out = m->ids[j];
            return 1;
        }
    }
    /* The index, unless it has missed a long run: then one sample in
     * MEMO_INDEX_RETRY tries it, and a hit resumes it. (heapgen's 33000
     * against 5000's memo: 43.6k lookups, 4 hits.) A sample it would have
     * found is found by its frames instead. */
    if (m && in->n_memo_slots &&
        (in->index_misses < MEMO_INDEX_MISS_RUN || in->n_done % MEMO_INDEX_RETRY == 0)) {
        int64_t j = memo_index_find(in, seq, nl);
        if (j >= 0) {
            in->memo_next = (size_t)j + 1;
            in->window_misses = 0;
            in->index_misses = 0;
            *out = m->ids[j];
            return 1;
        }
        in->index_misses++;
    }
    in->window_misses++;
    return 0;
}

/* Samples are resolved a block at a time, in two passes: the first takes
 * each sample's stack from the memo or builds its frame blob and hash and
 * prefetches the slots the second pass probes (the stack cache's and the
 * stack map's); the second looks the missed ones up and fills the rows in
 * order. A profile of new stacks misses in tables of several MB for every
 * sample: one at a time, each probe waited for memory in turn. */

/* Append the sample's frame blob to in->stacks when every location has a
 * span (span_by_id: dense id, encoded, at most 16 bytes — the usual case,
 * one function and line — with slack after it): a fixed 16-byte copy
 * each, the length added. false (nothing appended) sends the sample to the
 * general loop. */
static bool blob_fast(ingest *in, const pprof_sample *smp)
{
    size_t nl = smp->n_locations;
    const uint64_t *ids = smp->location_ids;
    if (!in->loc_dense || nl > (SIZE_MAX - 16) / 16 || lw_buf_reserve(&in->stacks, nl * 16 + 16))
        return false;
    unsigned char *dst = (unsigned char *)in->stacks.data + in->stacks.len;
    const unsigned char *src = (const unsigned char *)in->frames.data;
    const uint64_t *span = in->span_by_id;
    size_t n_dense = in->cap_loc_dense, used = 0;
    for (size_t j = 0; j < nl; j++) {
        uint64_t id = ids[j], v;
        if (id >= n_dense || !(v = span[id]))
            return false;
        memcpy(dst + used, src + (v >> 5), 16);
        used += v & 31;
    }
    in->stacks.len += used;
    in->stacks.data[in->stacks.len] = '\0';
    return true;
}

/* Pass 1 for sample i: 1 when its stack came from the memo (stack_ids[i]
 * set), 0 with its frame blob in in->stacks at blk_off[k] and its hash
 * in blk_hash[k], or a negative errno. */
static int sample_prepare(ingest *in, const pprof_sample *smp, size_t i, size_t k)
{
    int rc;
    size_t nl = smp->n_locations;
    const uint64_t *ids = smp->location_ids;
    if (in->want_memo && (rc = memo_stack(in, smp, &in->stack_ids[i])) != 0)
        return rc;
    size_t off = in->stacks.len;
    if (!blob_fast(in, smp)) {
        for (size_t j = 0; j < nl; j++) {
            const unsigned char *d;
            size_t n, li;
            if ((rc = location_index(in, ids[j], &li)) || (rc = location_frames(in, li, &d, &n)) ||
                (rc = store__buf_add(&in->stacks, d, n)))
                return rc;
        }
    }
    size_t len = in->stacks.len - off;
    uint64_t h = store__hash(len ? (const char *)in->stacks.data + off : "", len);
    in->blk_off[k] = off;
    in->blk_len[k] = len;
    in->blk_hash[k] = h;
    store__cache_prefetch(&in->s->stacks, h);
    store__stackmap_prefetch(&in->s->stack_map, h);
    return 0;
}

/* Pass 2 for a sample pass 1 left: its stack id from its frame blob. */
static int sample_resolve(ingest *in, size_t k, int64_t *out)
{
    bool known;
    int rc = stack_id(in, in->blk_off[k], in->blk_len[k], in->blk_hash[k], out, &known);
    if (rc)
        return rc;
    /* Without an index, a memo missed by known stacks again and again is
     * out of step: index it (once per ingest; without memory it just
     * stays unindexed). */
    if (in->memo && known && !in->n_memo_slots && ++in->memo_misses >= MEMO_MISSES_BEFORE_INDEX &&
        (rc = memo_index_build(in)) && rc != -ENOMEM)
        return rc;
    return 0;
}

/* The hash of a sample set (sample_sets.hash, schema 2): built row by row
 * as set_row() fills the rows, so that a set stored as a delta is never
 * encoded in full. A row's words are folded by rotate-xor and the row into
 * the set by a multiply; identical sets hash equally, and candidates are
 * compared row by row, so a weak spot costs a comparison, never a wrong
 * match. (Version 1 hashed the full encoding: its sets never match new
 * ones, which only means one more set row after an upgrade.) */
#define SET_HASH_SEED 0x243F6A8885A308D3ULL
#define SET_HASH_MUL 0x9E3779B97F4A7C15ULL

static inline uint64_t set_hash_word(uint64_t row, uint64_t w)
{
    return ((row << 23) | (row >> 41)) ^ w;
}

static uint64_t set_hash_final(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* Row i of the profile's sample set: its stack id (from the memo or sample_resolve()),
 * values (added to the totals per sample type) and labels as DB string
 * ids. Rows are filled in order, right after their stack is resolved, so
 * each decoded sample is read once while it is in the cache. */
static int set_row(ingest *in, size_t i, int64_t stack_id)
{
    const pprof_sample *smp = &in->p->samples[i];
    store__set_reader *r = &in->cur;
    size_t nt = r->n_types, off = r->label_off[i];
    int rc;
    r->stack_ids[i] = stack_id;
    int64_t *dst = &r->values[i * nt];
    uint64_t row = (uint64_t)stack_id;
    for (size_t t = 0; t < nt; t++) {
        int64_t v = smp->values[t];
        dst[t] = v;
        in->totals[t] = (int64_t)((uint64_t)in->totals[t] + (uint64_t)v);
        row = set_hash_word(row, (uint64_t)v);
    }
    for (size_t j = 0; j < smp->n_labels; j++, off++) {
        const pprof_label *l = &smp->labels[j];
        int64_t *lab = &r->labels[off * 4];
        if ((rc = pstring(in, l->key, &lab[0])) || (rc = pstring(in, l->str, &lab[1])))
            return rc;
        lab[2] = 0;
        lab[3] = 0;
        if (lab[1] == 0) {
            lab[2] = l->num;
            if ((rc = pstring(in, l->num_unit, &lab[3])))
                return rc;
        }
        for (int k = 0; k < 4; k++)
            row = set_hash_word(row, (uint64_t)lab[k]);
    }
    row = set_hash_word(row, smp->n_labels);
    r->label_off[i + 1] = off;
    /* One multiply per row (not per word) on the set's dependency chain. */
    in->set_hash = (in->set_hash ^ row) * SET_HASH_MUL;
    in->set_hash ^= in->set_hash >> 29;
    return 0;
}

/* A delta is kept only when it packs to at most this fraction of its
 * keyframe's packed size; otherwise the set becomes the target's next
 * keyframe (every later delta carries the drift since its keyframe, so a
 * keyframe pays for itself once deltas grow this big). A 1000-profile
 * gosvc heap series took 9.9 % of its scraped bytes at 1/2, 8.4 % at 1/3,
 * 7.5 % at 1/4, 7.4 % at 1/6, 8.0 % at 1/8 (and 13.2 % with the former
 * rule, raw delta size at most half the raw full size). */
#define DELTA_MAX_NUM 1
#define DELTA_MAX_DEN 4

/* A new keyframe of at least this many rows is handed to the keyframe
 * cache with the ingest's own arrays (no copy of a big set); smaller ones
 * are copied, and the ingest keeps its arrays (a fleet's many small sets:
 * handing arrays around made the allocator's churn cost ~4 MB of RSS at
 * 1000 targets). */
#define KF_TAKE_MIN_ROWS 4096

/* Find an identical stored set (verified row by row), else store cur in
 * full or as a delta against the target's current keyframe. */
static int store_set(ingest *in, int64_t target_id, const char *type, const store__set_reader *cur,
                     int64_t *out)
{
    store *s = in->s;
    store__set_reader cand;
    int64_t base_id = 0, id = 0;
    int rc, src;
    uint64_t h = set_hash_final(in->set_hash);

    /* Candidates with the same hash; collect ids first (loading reuses
     * statements). */
    int64_t ids[16];
    size_t n_ids = 0;
    sqlite3_stmt *st = store__stmt(&s->w, SQL_SET_FIND);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "sample set lookup");
    sqlite3_bind_int64(st, 1, (int64_t)h);
    while ((src = sqlite3_step(st)) == SQLITE_ROW && n_ids < 16)
        ids[n_ids++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sqlerr(in, src, "sample set lookup");
    for (size_t k = 0; k < n_ids; k++) {
        if ((rc = store__set_load_w(s, ids[k], &cand))) {
            if (rc == -ENOMEM)
                return rc;
            continue; /* a damaged row is no match; the set is stored anew */
        }
        bool same = store__set_equal(cur, &cand);
        store__set_free(&cand);
        if (same) {
            *out = ids[k];
            return 0;
        }
    }

    /* The keyframe: the latest profile's set of this target and type, or
     * that set's own keyframe. */
    st = store__stmt(&s->w, SQL_SET_LATEST);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "keyframe lookup");
    sqlite3_bind_int64(st, 1, target_id);
    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
    int64_t kf_packed_bytes = 0;
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        base_id = sqlite3_column_int64(st, 1) ? sqlite3_column_int64(st, 1)
                                              : sqlite3_column_int64(st, 0);
        kf_packed_bytes = sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sqlerr(in, src, "keyframe lookup");
    int64_t old_kf = base_id;
    /* The delta, packed, when it is small enough against the keyframe's
     * packed size; else the full set, which becomes the next keyframe. An
     * unreadable keyframe only means no delta. */
    bool packed = false;
    if (base_id) {
        store__set_reader own;
        memset(&own, 0, sizeof(own));
        const store__set_reader *kf = store__kf_get(s, base_id, &rc);
        if (!kf && rc == -ENOMEM && store__set_load(&s->w, base_id, &own) == 0)
            kf = &own; /* over the cache's budget: decode it just for now */
        /* A delta carries its unmatched rows in full, so with more of
         * them than 3/8 of the keyframe's rows it packs to about 3/8 of
         * the keyframe or more, over the 1/4 it must meet (with room for
         * rows that pack better than the keyframe's): its encoding stops
         * there. (A profile of new stacks, or heapgen's heap-b against
         * heap-33000 — 27k more rows than its keyframe, a delta as big as
         * the keyframe — paid for a delta and its packing for nothing.) */
        size_t max_new = kf ? kf->n_samples * DELTA_MAX_NUM * 3 / (2 * DELTA_MAX_DEN) : 0;
        if (kf && store__set_encode_delta(cur, kf, max_new, &in->delta) == 0) {
            if ((rc = store__pack(s, in->delta.data ? in->delta.data : "", in->delta.len,
                                  &in->packed))) {
                store__set_free(&own);
                return rc;
            }
            packed = (int64_t)in->packed.len * DELTA_MAX_DEN <= kf_packed_bytes * DELTA_MAX_NUM;
        }
        if (!packed)
            base_id = 0;
        store__set_free(&own);
        rc = 0;
    }
    if (!packed && ((rc = store__set_encode_full(cur, &in->set)) ||
                    (rc = store__pack(s, in->set.data ? in->set.data : "", in->set.len,
                                      &in->packed))))
        return rc;
    const char *blob = in->packed.data;
    size_t blob_len = in->packed.len;

    st = store__stmt(&s->w, SQL_SET_INSERT);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "sample set insert");
    sqlite3_bind_int64(st, 1, (int64_t)h);
    sqlite3_bind_int64(st, 2, (int64_t)cur->n_samples);
    if (base_id)
        sqlite3_bind_int64(st, 3, base_id);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_blob(st, 4, blob, (int)blob_len, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return sqlerr(in, src, "sample set insert");
    id = sqlite3_last_insert_rowid(s->w.db);
    if (!base_id) {
        /* The target's new keyframe replaces its old one in the cache
         * (which would otherwise stay while the new one no longer fits).
         * A big one is handed over with the ingest's arrays, and the old
         * keyframe's arrays hold the next profile's (no copy, no fresh
         * memory to fault in); a small one is copied (KF_TAKE_MIN_ROWS). */
        store__set_reader spare, copy;
        memset(&spare, 0, sizeof(spare));
        if (old_kf)
            store__kf_drop(&s->kf, old_kf, &spare);
        if (cur == &in->cur && cur->n_samples >= KF_TAKE_MIN_ROWS && store__kf_take(s, id, &in->cur)) {
            in->cur = spare;
        } else {
            store__set_free(&spare);
            if (store__set_copy(cur, &copy) == 0 && !store__kf_take(s, id, &copy))
                store__set_free(&copy);
        }
    }
    *out = id;
    return 0;
}

/* Meta layout (varints of string ids unless noted): n_types, (type, unit)
 * per type, period type, period unit, default sample type, drop_frames,
 * keep_frames, n_comments, comments. */
static int encode_meta(ingest *in)
{
    const pprof_profile *p = in->p;
    lw_buf *b = &in->meta;
    int64_t id;
    int rc;
    lw_buf_reset(b);
    lw_buf_reset(&in->tmp);
    if ((rc = store__put_uvarint(b, p->n_sample_types)))
        return rc;
    for (size_t t = 0; t < p->n_sample_types; t++) {
        int64_t idx[2] = {p->sample_types[t].type, p->sample_types[t].unit};
        for (int k = 0; k < 2; k++)
            if ((rc = pstring(in, idx[k], &id)) || (rc = store__put_uvarint(b, (uint64_t)id)))
                return rc;
        if ((rc = lw_buf_printf(&in->tmp, "%s%s/%s", t ? "," : "",
                                p->strings[p->sample_types[t].type],
                                p->strings[p->sample_types[t].unit])))
            return rc;
    }
    int64_t fields[] = {p->period_type.type, p->period_type.unit, p->default_sample_type,
                        p->drop_frames, p->keep_frames};
    for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
        if ((rc = pstring(in, fields[k], &id)) || (rc = store__put_uvarint(b, (uint64_t)id)))
            return rc;
    if ((rc = store__put_uvarint(b, p->n_comments)))
        return rc;
    for (size_t k = 0; k < p->n_comments; k++)
        if ((rc = pstring(in, p->comments[k], &id)) || (rc = store__put_uvarint(b, (uint64_t)id)))
            return rc;
    return 0;
}

int store__meta_strings(const void *blob, size_t len, int (*fn)(void *, int64_t), void *arg)
{
    const unsigned char *d = blob;
    size_t pos = 0;
    uint64_t n, v;
    int rc;
    if (store__get_uvarint(d, len, &pos, &n) || n > len)
        return -EINVAL;
    size_t count = 2 * n + 5;
    for (size_t i = 0; i < count; i++) {
        if (store__get_uvarint(d, len, &pos, &v))
            return -EINVAL;
        if (v && (rc = fn(arg, (int64_t)v)))
            return rc;
    }
    if (store__get_uvarint(d, len, &pos, &n) || n > len)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (store__get_uvarint(d, len, &pos, &v))
            return -EINVAL;
        if (v && (rc = fn(arg, (int64_t)v)))
            return rc;
    }
    return 0;
}

/* Find or insert a meta row (content-addressed, compared byte for byte). */
static int find_or_insert_meta(ingest *in, uint64_t h, const void *blob, size_t len,
                               const char *sample_types, int64_t *out)
{
    store *s = in->s;
    int64_t id = 0;
    sqlite3_stmt *st = store__stmt(&s->w, SQL_META_FIND);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "meta lookup");
    sqlite3_bind_int64(st, 1, (int64_t)h);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if ((size_t)sqlite3_column_bytes(st, 1) == len &&
            memcmp(sqlite3_column_blob(st, 1), blob, len) == 0) {
            id = sqlite3_column_int64(st, 0);
            break;
        }
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sqlerr(in, src, "meta lookup");
    if (!id) {
        st = store__stmt(&s->w, SQL_META_INSERT);
        if (!st)
            return sqlerr(in, SQLITE_ERROR, "meta insert");
        sqlite3_bind_int64(st, 1, (int64_t)h);
        sqlite3_bind_text(st, 2, sample_types, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_STATIC);
        src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            return sqlerr(in, src, "meta insert");
        id = sqlite3_last_insert_rowid(s->w.db);
    }
    *out = id;
    return 0;
}

static int type_index(const pprof_profile *p, const char *name)
{
    for (size_t t = 0; t < p->n_sample_types; t++) {
        int64_t idx = p->sample_types[t].type;
        if (idx >= 0 && (size_t)idx < p->n_strings && p->strings[idx] &&
            !strcmp(p->strings[idx], name))
            return (int)t;
    }
    return -1;
}

static int series_put(ingest *in, int64_t target_id, int signal, int64_t time_ns, int64_t value)
{
    sqlite3_stmt *st = store__stmt(&in->s->w, SQL_SERIES_INSERT);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, "series insert");
    sqlite3_bind_int64(st, 1, target_id);
    sqlite3_bind_int(st, 2, signal);
    sqlite3_bind_int64(st, 3, time_ns);
    sqlite3_bind_int64(st, 4, value);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : sqlerr(in, src, "series insert");
}

static int write_series(ingest *in, int64_t target_id, const char *type, int64_t time_ns)
{
    const pprof_profile *p = in->p;
    int rc = 0;
    if (!strcmp(type, "goroutine") && p->n_sample_types > 0) {
        int t = type_index(p, "goroutine");
        rc = series_put(in, target_id, STORE_SIG_GOROUTINES, time_ns, in->totals[t < 0 ? 0 : t]);
    } else if (!strcmp(type, "heap") || !strcmp(type, "allocs")) {
        static const struct {
            const char *name;
            int signal;
        } map[] = {
            {"inuse_space", STORE_SIG_HEAP_INUSE_BYTES},
            {"inuse_objects", STORE_SIG_HEAP_INUSE_OBJECTS},
            {"alloc_space", STORE_SIG_HEAP_ALLOC_BYTES},
            {"alloc_objects", STORE_SIG_HEAP_ALLOC_OBJECTS},
        };
        for (size_t k = 0; k < sizeof(map) / sizeof(map[0]) && !rc; k++) {
            int t = type_index(p, map[k].name);
            if (t >= 0)
                rc = series_put(in, target_id, map[k].signal, time_ns, in->totals[t]);
        }
    }
    return rc;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap && *arr)
        return 0;
    size_t n = need > 16 ? need + need / 2 : 16;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

/* The writer's scratch, reused across ingests so that big profiles do not
 * pay for fresh (page-faulting) allocations every time. */
static int ingest_init(store *s, const pprof_profile *p, char *err, size_t err_len, ingest **out)
{
    ingest *in = s->ing;
    int rc;
    if (!in) {
        in = calloc(1, sizeof(*in));
        if (!in)
            return -ENOMEM;
        lw_buf_init(&in->frames, STORE_STACK_MAX_BYTES);
        lw_buf_init(&in->set, SET_MAX_BYTES);
        lw_buf_init(&in->packed, SET_MAX_BYTES);
        lw_buf_init(&in->delta, SET_MAX_BYTES);
        lw_buf_init(&in->meta, (size_t)1 << 20);
        lw_buf_init(&in->tmp, (size_t)1 << 20);
        lw_buf_init(&in->fn_text, (size_t)1 << 20);
        lw_buf_init(&in->stacks, SET_MAX_BYTES);
        lw_buf_init(&in->chunk, SET_MAX_BYTES);
        lw_buf_init(&in->got, STORE_STACK_MAX_BYTES);
        store__idset_init(&in->fn_index);
        store__idset_init(&in->loc_index);
        s->ing = in;
    }
    in->s = s;
    in->p = p;
    in->err = err;
    in->err_len = err_len;
    lw_buf_reset(&in->frames);
    store__idset_clear(&in->fn_index);
    store__idset_clear(&in->loc_index);
    if ((rc = grow((void **)&in->str_ids, &in->cap_strings, p->n_strings, sizeof(int64_t))) ||
        (rc = grow((void **)&in->fn_ids, &in->cap_functions, p->n_functions, sizeof(int64_t))) ||
        (rc = grow((void **)&in->loc_off, &in->cap_locations, p->n_locations, sizeof(size_t))))
        return rc;
    if ((rc = grow((void **)&in->loc_len, &in->cap_loc_len, p->n_locations, sizeof(size_t))) ||
        (rc = grow((void **)&in->stack_ids, &in->cap_samples, p->n_samples, sizeof(int64_t))) ||
        (rc = grow((void **)&in->totals, &in->cap_types, p->n_sample_types, sizeof(int64_t))))
        return rc;
    for (size_t i = 0; i < p->n_strings; i++)
        in->str_ids[i] = -1;
    memset(in->fn_ids, 0, (p->n_functions ? p->n_functions : 1) * sizeof(int64_t));
    for (size_t i = 0; i < p->n_locations; i++)
        in->loc_len[i] = SIZE_MAX;
    memset(in->totals, 0, (p->n_sample_types ? p->n_sample_types : 1) * sizeof(int64_t));
    for (size_t i = 0; i < p->n_functions; i++)
        if ((rc = store__idset_put(&in->fn_index, (int64_t)p->functions[i].id, (int64_t)i)))
            return rc;
    /* Location ids are usually 1..n: index them with an array then. */
    uint64_t max_id = 0;
    for (size_t i = 0; i < p->n_locations; i++)
        if (p->locations[i].id > max_id)
            max_id = p->locations[i].id;
    in->loc_dense = NULL;
    if (max_id <= 4 * (uint64_t)p->n_locations + 64 && max_id < INT32_MAX) {
        void *arr = in->loc_dense_mem;
        if ((rc = grow(&arr, &in->cap_loc_dense_mem, (size_t)max_id + 1, sizeof(int32_t))))
            return rc;
        in->loc_dense_mem = arr;
        in->cap_loc_dense = (size_t)max_id + 1;
        in->loc_dense = arr;
        memset(in->loc_dense, 0, in->cap_loc_dense * sizeof(int32_t));
        if ((rc = grow((void **)&in->tok_by_id, &in->cap_tok_by_id, in->cap_loc_dense, sizeof(uint32_t))))
            return rc;
        memset(in->tok_by_id, 0, in->cap_loc_dense * sizeof(uint32_t));
        if ((rc = grow((void **)&in->span_by_id, &in->cap_span_by_id, in->cap_loc_dense, sizeof(uint64_t))))
            return rc;
        memset(in->span_by_id, 0, in->cap_loc_dense * sizeof(uint64_t));
        for (size_t i = 0; i < p->n_locations; i++)
            in->loc_dense[p->locations[i].id] = (int32_t)i + 1;
    } else {
        for (size_t i = 0; i < p->n_locations; i++)
            if ((rc = store__idset_put(&in->loc_index, (int64_t)p->locations[i].id, (int64_t)i)))
                return rc;
    }
    size_t n_seq = 0, n_labels = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        n_seq += p->samples[i].n_locations;
        n_labels += p->samples[i].n_labels;
    }
    /* With headroom: in a growing series, exactly sized arrays would be
     * reallocated (and their pages faulted in afresh) for every profile. */
    if ((rc = store__set_alloc(&in->cur, p->n_samples + p->n_samples / 2, p->n_sample_types,
                               n_labels + n_labels / 2)))
        return rc;
    in->cur.n_samples = p->n_samples;
    in->set_hash = SET_HASH_SEED ^ ((uint64_t)p->n_samples * SET_HASH_MUL) ^ p->n_sample_types;
    in->cur.label_off[0] = 0;
    /* Bounded by the decompressed profile (a location id takes a byte at
     * least), so 32-bit offsets do; seq is sized closely, it becomes a memo
     * that counts against STORE_MEMO_BYTES. */
    in->n_seq = n_seq;
    if (n_seq >= UINT32_MAX) {
        ierr(in, "too many sample locations (%zu)", n_seq);
        return -EINVAL;
    }
    if (n_seq > in->cap_seq) {
        size_t want = n_seq + n_seq / 16 + 64;
        free(in->seq); /* no contents to keep: not a realloc's copy */
        in->seq = malloc(want * sizeof(*in->seq));
        in->cap_seq = in->seq ? want : 0;
        if (!in->seq)
            return -ENOMEM;
    }
    if ((rc = grow((void **)&in->offs, &in->cap_offs, p->n_samples + 1, sizeof(uint32_t))) ||
        (rc = grow((void **)&in->loc_intern, &in->cap_loc_intern, p->n_locations, sizeof(uint32_t))))
        return rc;
    memset(in->loc_intern, 0, (p->n_locations ? p->n_locations : 1) * sizeof(uint32_t));
    /* Tokens are 32-bit: start over long before they run out. */
    if ((uint64_t)s->last_location_token + p->n_locations >= UINT32_MAX) {
        store__memos_clear(s);
        store__cache_clear(&s->locations);
        s->last_location_token = 0;
    }
    lw_buf_reset(&in->stacks);
    in->n_pending = 0;
    in->map_reserved = false;
    in->offs[0] = 0;
    in->n_done = 0;
    in->memo = NULL;
    in->memo_next = 0;
    in->memo_misses = 0;
    in->window_misses = 0;
    in->index_misses = 0;
    in->n_memo_slots = 0;
    *out = in;
    return 0;
}

void store__ingest_free(ingest *in)
{
    if (!in)
        return;
    lw_buf_cleanup(&in->frames);
    lw_buf_cleanup(&in->set);
    lw_buf_cleanup(&in->packed);
    lw_buf_cleanup(&in->delta);
    lw_buf_cleanup(&in->meta);
    lw_buf_cleanup(&in->tmp);
    lw_buf_cleanup(&in->fn_text);
    store__idset_free(&in->fn_index);
    store__idset_free(&in->loc_index);
    lw_buf_cleanup(&in->stacks);
    lw_buf_cleanup(&in->chunk);
    lw_buf_cleanup(&in->got);
    free(in->pending);
    free(in->loc_dense_mem);
    free(in->loc_intern);
    free(in->tok_by_id);
    free(in->span_by_id);
    free(in->memo_index);
    free(in->seq);
    free(in->offs);
    store__set_free(&in->cur);
    free(in->str_ids);
    free(in->fn_ids);
    free(in->loc_off);
    free(in->loc_len);
    free(in->stack_ids);
    free(in->totals);
    free(in);
}

/* Scratch beyond this is released after the ingest that needed it. */
#define SCRATCH_KEEP_BYTES ((size_t)32 << 20)

static void ingest_done(store *s)
{
    ingest *in = s->ing;
    if (!in)
        return;
    size_t bytes = in->frames.cap + in->set.cap + in->packed.cap + in->delta.cap + in->stacks.cap +
                   in->cap_seq * sizeof(uint32_t) + in->cap_offs * sizeof(uint32_t) +
                   in->cap_memo_index * sizeof(uint64_t) +
                   in->cur.cap_values * sizeof(int64_t) + in->cur.cap_labels * sizeof(int64_t) +
                   in->cap_samples * 3 * sizeof(int64_t) + in->cap_strings * sizeof(int64_t) +
                   in->cap_locations * 2 * sizeof(size_t) + in->cap_pending * sizeof(pending_stack);
    if (bytes > SCRATCH_KEEP_BYTES) {
        store__ingest_free(in);
        s->ing = NULL;
    }
}

static int step_simple(ingest *in, enum store__sql which, const char *what)
{
    sqlite3_stmt *st = store__stmt(&in->s->w, which);
    if (!st)
        return sqlerr(in, SQLITE_ERROR, what);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : sqlerr(in, src, what);
}

/* ---- stack memo ---------------------------------------------------------- */

#define STORE_MEMO_BYTES ((size_t)8 << 20)

static void memo_free(store__memo *m)
{
    free(m->ids);
    free(m->offs);
    free(m->seq);
    memset(m, 0, sizeof(*m));
}

void store__memos_clear(store *s)
{
    for (size_t i = 0; i < s->n_memos; i++)
        memo_free(&s->memos[i]);
    s->n_memos = 0;
    s->memo_bytes = 0;
}

static store__memo *memo_find(store *s, int64_t target_id, const char *type)
{
    for (size_t i = 0; i < s->n_memos; i++)
        if (s->memos[i].target_id == target_id && !strcmp(s->memos[i].type, type))
            return &s->memos[i];
    return NULL;
}

/* After a commit: this profile's stacks become its target's memo (best
 * effort; a failure only means the next ingest probes the caches). */
static void swap_ptr(void *a, void *b)
{
    void *t;
    memcpy(&t, a, sizeof(t));
    memcpy(a, b, sizeof(t));
    memcpy(b, &t, sizeof(t));
}

static void swap_size(size_t *a, size_t *b)
{
    size_t t = *a;
    *a = *b;
    *b = t;
}

/* After a commit: this profile's stacks become its target's memo. The
 * arrays are swapped with the scratch, not copied; the old memo's arrays
 * become the next ingest's scratch. Best effort: a failure only means the
 * next ingest probes the caches. */
static void memo_update(store *s, ingest *in, int64_t target_id, const char *type)
{
    size_t n = in->n_done;
    store__memo *m = memo_find(s, target_id, type);
    if (!m) {
        if (s->n_memos == s->cap_memos) {
            size_t cap = s->cap_memos ? s->cap_memos * 2 : 16;
            store__memo *arr = realloc(s->memos, cap * sizeof(*arr));
            if (!arr)
                return;
            s->memos = arr;
            s->cap_memos = cap;
        }
        m = &s->memos[s->n_memos++];
        memset(m, 0, sizeof(*m));
        m->target_id = target_id;
        snprintf(m->type, sizeof(m->type), "%s", type);
    }
    s->memo_bytes -= m->bytes;
    swap_ptr(&m->ids, &in->stack_ids);
    swap_size(&m->cap_ids, &in->cap_samples);
    swap_ptr(&m->offs, &in->offs);
    swap_size(&m->cap_offs, &in->cap_offs);
    swap_ptr(&m->seq, &in->seq);
    swap_size(&m->cap_seq, &in->cap_seq);
    m->n = n;
    m->bytes = m->cap_ids * sizeof(int64_t) + m->cap_offs * sizeof(uint32_t) +
               m->cap_seq * sizeof(uint32_t);
    if (s->memo_bytes + m->bytes > STORE_MEMO_BYTES) {
        /* Over budget: this target goes without (the others keep theirs,
         * rather than everyone thrashing). */
        memo_free(m);
        *m = s->memos[--s->n_memos];
        return;
    }
    s->memo_bytes += m->bytes;
}

/* Whether an item can be stored at all (checked before any write). Stored
 * sets are read back with at most 64 sample types (a bound that protects
 * the decoder from corrupt counts); real profiles have 1-4. */
static bool item_valid(const store_ingest_item *it)
{
    return it->profile_type && it->profile && it->target_id > 0 && *it->profile_type &&
           strlen(it->profile_type) < sizeof(((store_profile_info *)0)->profile_type) &&
           it->profile->n_sample_types <= 64;
}

/* Store one (valid) item inside the open transaction. On failure its rows
 * are partly written: the caller rolls the transaction back. Called with
 * the writer lock. */
static int ingest_one(store *s, store_ingest_item *it)
{
    const pprof_profile *p = it->profile;
    const char *profile_type = it->profile_type;
    int64_t target_id = it->target_id;
    char *err = it->err;
    size_t err_len = sizeof(it->err);
    ingest *in = NULL;
    int rc;
    it->id = 0;
    err[0] = '\0';
    rc = ingest_init(s, p, err, err_len, &in);
    if (rc)
        goto out;

    /* Tokens cost a cache probe per location: only worth it for a profile
     * that is compared with a memo or can become one within the budget
     * (with many targets the budget is full; the others resolve stacks by
     * their frame blobs alone). */
    in->memo = memo_find(s, target_id, profile_type);
    in->want_memo = in->memo != NULL ||
                    s->memo_bytes + in->n_seq * sizeof(uint32_t) +
                            p->n_samples * (sizeof(int64_t) + sizeof(uint32_t)) <=
                        STORE_MEMO_BYTES;
    for (size_t b = 0; b < p->n_samples; b += SAMPLE_BLOCK) {
        size_t n = p->n_samples - b < SAMPLE_BLOCK ? p->n_samples - b : SAMPLE_BLOCK;
        bool missed[SAMPLE_BLOCK];
        for (size_t k = 0; k < n; k++) {
            const pprof_sample *smp = &p->samples[b + k];
            if (smp->n_locations && !smp->location_ids) {
                rc = -EINVAL;
                goto out;
            }
            if ((rc = sample_prepare(in, smp, b + k, k)) < 0)
                goto out;
            missed[k] = rc == 0;
        }
        for (size_t k = 0; k < n; k++)
            if ((missed[k] && (rc = sample_resolve(in, k, &in->stack_ids[b + k]))) ||
                (rc = set_row(in, b + k, in->stack_ids[b + k])))
                goto out;
    }

    if ((rc = flush_stacks(in)))
        goto out;
    int64_t set_id = 0, meta_id = 0;
    rc = store_set(in, target_id, profile_type, &in->cur, &set_id);
    if (rc)
        goto out;
    if ((rc = encode_meta(in)))
        goto out;
    rc = find_or_insert_meta(in, store__hash(in->meta.data, in->meta.len), in->meta.data,
                             in->meta.len, in->tmp.data ? in->tmp.data : "", &meta_id);
    if (rc)
        goto out;

    lw_buf_reset(&in->tmp);
    for (size_t t = 0; t < p->n_sample_types; t++)
        if ((rc = store__put_svarint(&in->tmp, in->totals[t])))
            goto out;
    sqlite3_stmt *st = store__stmt(&s->w, SQL_PROFILE_INSERT);
    if (!st) {
        rc = sqlerr(in, SQLITE_ERROR, "profile insert");
        goto out;
    }
    sqlite3_bind_int64(st, 1, target_id);
    sqlite3_bind_text(st, 2, profile_type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, it->time_ns);
    sqlite3_bind_int64(st, 4, (int64_t)((uint64_t)p->time_nanos - (uint64_t)it->time_ns));
    sqlite3_bind_int64(st, 5, p->duration_nanos);
    sqlite3_bind_int64(st, 6, p->period);
    sqlite3_bind_int64(st, 7, meta_id);
    sqlite3_bind_int64(st, 8, set_id);
    sqlite3_bind_blob(st, 9, in->tmp.data ? in->tmp.data : "", (int)in->tmp.len, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        rc = sqlerr(in, src, "profile insert");
        goto out;
    }
    int64_t profile_id = sqlite3_last_insert_rowid(s->w.db);
    if ((rc = write_series(in, target_id, profile_type, it->time_ns)))
        goto out;
    if (in->want_memo)
        memo_update(s, in, target_id, profile_type);
    it->id = profile_id;

out:
    if (rc && !in) {
        snprintf(err, err_len, "out of memory");
    } else if (rc) {
        if (rc == -ENOSPC)
            ierr(in, "database or disk is full");
        else if (rc == -ENOMEM)
            ierr(in, "out of memory");
        else
            ierr(in, "storing profile failed (%s)", strerror(-rc));
    }
    ingest_done(s);
    return rc;
}

/* A failure of the item's own content (a location or target that does not
 * exist, a profile over an encoder's cap): the others can be stored
 * without it. Anything else (disk full, I/O, memory) would fail them too. */
static bool item_fault(int rc)
{
    return rc == -EINVAL || rc == -ENOENT || rc == -E2BIG;
}

/* One transaction for the whole batch, and no savepoint per item: under a
 * savepoint SQLite keeps the item's journalled pages in an in-memory
 * sub-journal (a list of 1 KiB chunks), and each statement that journals a
 * page after an earlier statement's records were dropped first walks that
 * list from its head (memjrnlTruncate) — quadratic in the item's size: a
 * 67k-stack profile took 80 ms to store instead of 45. An item refused for
 * its own content rolls the transaction back instead, and the batch is
 * stored again without it (each retry drops one item; refusals are rare:
 * decoding already validated the profile). */
int store_ingest_batch(store *s, store_ingest_item *items, size_t n)
{
    if (!s || (n && !items))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        items[i].id = 0;
        items[i].rc = 0;
        items[i].err[0] = '\0';
        if (!item_valid(&items[i])) {
            items[i].rc = -EINVAL;
            snprintf(items[i].err, sizeof(items[i].err), "invalid arguments");
        }
    }
    if (n == 0)
        return 0;
    if (!s->w.db) {
        for (size_t i = 0; i < n; i++) {
            items[i].rc = -EROFS;
            snprintf(items[i].err, sizeof(items[i].err), "database opened read-only");
        }
        return -EROFS;
    }
    char cerr[STORE_ERR_LEN] = "";
    ingest fake = {.s = s, .err = cerr, .err_len = sizeof(cerr)};
    int rc;
    pthread_mutex_lock(&s->w.mu);
    for (;;) {
        if ((rc = step_simple(&fake, SQL_BEGIN, "begin")))
            break;
        bool refused = false;
        for (size_t i = 0; i < n && !rc && !refused; i++) {
            if (items[i].rc)
                continue; /* invalid, or refused in an earlier pass */
            int r = ingest_one(s, &items[i]);
            if (!r)
                continue;
            items[i].rc = r;
            items[i].id = 0;
            if (item_fault(r)) {
                refused = true;
            } else {
                rc = r;
                snprintf(cerr, sizeof(cerr), "%s", items[i].err);
            }
        }
        if (!rc && !refused && !(rc = step_simple(&fake, SQL_COMMIT, "commit")))
            break;
        /* Nothing of this pass stays; ids cached during it no longer exist. */
        if (!sqlite3_get_autocommit(s->w.db))
            (void)step_simple(&fake, SQL_ROLLBACK, "rollback");
        store__caches_clear(s);
        for (size_t i = 0; i < n; i++)
            items[i].id = 0;
        if (rc)
            break;
    }
    pthread_mutex_unlock(&s->w.mu);
    if (rc) {
        /* Nothing of the batch is stored. */
        for (size_t i = 0; i < n; i++) {
            if (items[i].rc)
                continue;
            items[i].rc = rc;
            if (rc == -ENOSPC)
                snprintf(items[i].err, sizeof(items[i].err), "database or disk is full");
            else
                snprintf(items[i].err, sizeof(items[i].err), "%s", cerr);
        }
    }
    return rc;
}

int store_ingest(store *s, int64_t target_id, const char *profile_type, int64_t time_ns,
                 const pprof_profile *p, int64_t *id_out, char *err, size_t err_len)
{
    store_ingest_item it = {.target_id = target_id, .profile_type = profile_type,
                            .time_ns = time_ns, .profile = p};
    if (!s)
        snprintf(it.err, sizeof(it.err), "invalid arguments");
    int rc = store_ingest_batch(s, &it, 1);
    if (s)
        rc = it.rc;
    if (err && err_len)
        snprintf(err, err_len, "%s", it.err);
    if (!rc && id_out)
        *id_out = it.id;
    return rc;
}
