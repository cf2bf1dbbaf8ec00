/* store_stacks.c — where a stack's frames are kept; the one place that knows.
 *
 * Since schema 3 the writer keeps new stacks in `stack_chunks`: one row per
 * run of up to STORE_CHUNK_STACKS stacks written together (one flush of a
 * profile's new stacks: ascending, mostly consecutive ids), front-coded.
 * A stack's frame blob (varint (function id, line) pairs, leaf first) is
 * stored as the bytes that differ at its start from the previous stack of
 * the chunk plus how many bytes of that stack's end it shares: two stacks
 * of one program usually differ near the leaf and share their callers.
 * Files of schema 2, and stacks the writer adds while it looks stacks up by
 * the index on stacks.hash (store_ingest.c), keep one row per stack in
 * `stacks`. A stack id is in one of the two tables, never in both.
 *
 * A chunk's blob, per stack: uvarint (id - previous id; the first stack's
 * previous id is first_id - 1), uvarint bytes shared with the end of the
 * previous stack's frames, uvarint count of new bytes, the new bytes. The
 * row keeps first_id (its key) and last_id: the id range it may hold. A
 * collection drops dead stacks by rewriting the chunk without them (the
 * range stays) or deleting it when none is left.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- codec ------------------------------------------------------------------ */

void store__chunk_iter_init(store__chunk_iter *it, int64_t first_id, const void *data, size_t len)
{
    unsigned char *keep[2] = {it->cur, it->alt};
    size_t caps[2] = {it->cap_cur, it->cap_alt};
    memset(it, 0, sizeof(*it));
    it->cur = keep[0];
    it->alt = keep[1];
    it->cap_cur = caps[0];
    it->cap_alt = caps[1];
    it->data = data;
    it->len = len;
    it->id = first_id - 1;
}

void store__chunk_iter_free(store__chunk_iter *it)
{
    free(it->cur);
    free(it->alt);
    memset(it, 0, sizeof(*it));
}

int store__chunk_iter_next(store__chunk_iter *it)
{
    if (it->pos >= it->len)
        return 0;
    uint64_t gap, shared, n_new;
    if (store__get_uvarint(it->data, it->len, &it->pos, &gap) ||
        store__get_uvarint(it->data, it->len, &it->pos, &shared) ||
        store__get_uvarint(it->data, it->len, &it->pos, &n_new) || gap == 0 ||
        gap > (uint64_t)(INT64_MAX - it->id) || shared > it->frames_len ||
        n_new > it->len - it->pos)
        return -EIO;
    size_t n = (size_t)n_new + (size_t)shared;
    if (n > it->cap_alt) {
        size_t cap = it->cap_alt ? it->cap_alt : 64;
        while (cap < n)
            cap *= 2;
        unsigned char *tmp = realloc(it->alt, cap);
        if (!tmp)
            return -ENOMEM;
        it->alt = tmp;
        it->cap_alt = cap;
    }
    if (n_new)
        memcpy(it->alt, it->data + it->pos, (size_t)n_new);
    if (shared)
        memcpy(it->alt + n_new, it->cur + it->frames_len - shared, (size_t)shared);
    it->pos += (size_t)n_new;
    unsigned char *swap = it->cur;
    size_t swap_cap = it->cap_cur;
    it->cur = it->alt;
    it->cap_cur = it->cap_alt;
    it->alt = swap;
    it->cap_alt = swap_cap;
    it->frames_len = n;
    it->id += (int64_t)gap;
    return 1;
}

void store__chunk_enc_init(store__chunk_enc *e, lw_buf *out, int64_t first_id)
{
    lw_buf_reset(out);
    e->out = out;
    e->prev_id = first_id - 1;
    lw_buf_init(&e->prev, STORE_STACK_MAX_BYTES);
    e->n = 0;
}

void store__chunk_enc_free(store__chunk_enc *e)
{
    lw_buf_cleanup(&e->prev);
}

static inline unsigned char *put_uvarint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

int store__chunk_enc_add(store__chunk_enc *e, int64_t id, const unsigned char *frames, size_t len)
{
    if (id <= e->prev_id)
        return -EINVAL;
    const unsigned char *prev = (const unsigned char *)e->prev.data;
    size_t shared = 0, max = len < e->prev.len ? len : e->prev.len;
    /* Eight bytes at a time from the end, then byte by byte. */
    while (shared + 8 <= max) {
        uint64_t x, y;
        memcpy(&x, frames + len - shared - 8, 8);
        memcpy(&y, prev + e->prev.len - shared - 8, 8);
        if (x != y)
            break;
        shared += 8;
    }
    while (shared < max && frames[len - 1 - shared] == prev[e->prev.len - 1 - shared])
        shared++;
    /* Three varints (at most 30 bytes) and the new bytes, written in place. */
    int rc;
    if ((rc = lw_buf_reserve(e->out, 30 + len - shared)) || (rc = lw_buf_reserve(&e->prev, len)))
        return rc;
    unsigned char *p = (unsigned char *)e->out->data + e->out->len;
    p = put_uvarint(p, (uint64_t)(id - e->prev_id));
    p = put_uvarint(p, shared);
    p = put_uvarint(p, len - shared);
    if (len - shared)
        memcpy(p, frames, len - shared);
    p += len - shared;
    e->out->len = (size_t)(p - (unsigned char *)e->out->data);
    e->out->data[e->out->len] = '\0';
    if (len)
        memcpy(e->prev.data, frames, len);
    e->prev.len = len;
    e->prev.data[len] = '\0';
    e->prev_id = id;
    e->n++;
    return 0;
}

/* ---- reading ------------------------------------------------------------------ */

/* The chunk that may hold id, on statement st (SQL_CHUNK_FIND, bound and
 * stepped by the caller): 1 when id is in its range and the iterator stands
 * on id; 0 when no chunk holds it; -EIO when the chunk does not decode up
 * to it. */
static int chunk_seek(store__chunk_iter *it, int64_t first_id, const void *data, size_t len,
                      int64_t id)
{
    store__chunk_iter_init(it, first_id, data, len);
    int rc;
    while ((rc = store__chunk_iter_next(it)) == 1 && it->id < id)
        ;
    if (rc < 0)
        return rc;
    return rc == 1 && it->id == id;
}

int store__stack_get(store__conn *c, int64_t id, lw_buf *out)
{
    lw_buf_reset(out);
    /* A file of schema 2 opened read-only has no chunk table: the
     * statement does not prepare, and every stack is a row. */
    sqlite3_stmt *st = store__stmt(c, SQL_CHUNK_FIND);
    int rc = 0, src;
    if (st) {
        sqlite3_bind_int64(st, 1, id);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW && sqlite3_column_int64(st, 1) >= id) {
            store__chunk_iter it = {0};
            rc = chunk_seek(&it, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 2),
                            (size_t)sqlite3_column_bytes(st, 2), id);
            if (rc == 1)
                rc = store__buf_add(out, it.frames_len ? (const void *)it.cur : "", it.frames_len);
            else if (rc == 0)
                rc = -ENOENT; /* in the range but not there: collected */
            store__chunk_iter_free(&it);
            sqlite3_reset(st);
            return rc;
        }
        sqlite3_reset(st);
        if (src != SQLITE_ROW && src != SQLITE_DONE)
            return store__errno(src);
    }
    st = store__stmt(c, SQL_STACK_GET);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        const void *b = sqlite3_column_blob(st, 0);
        rc = n && !b ? -ENOMEM : store__buf_add(out, n ? b : "", n);
    } else {
        rc = src == SQLITE_DONE ? -ENOENT : store__errno(src);
    }
    sqlite3_reset(st);
    return rc;
}

/* The stacks of store__stacks_scan that are rows of `stacks`. */
typedef struct row_scan {
    const size_t *idx; /* their indices in the caller's ids */
    store__stack_fn fn;
    void *arg;
} row_scan;

static int stack_row(void *arg, sqlite3_stmt *st, size_t j)
{
    const row_scan *r = arg;
    const void *b = sqlite3_column_blob(st, 1);
    size_t len = (size_t)sqlite3_column_bytes(st, 1);
    return len && !b ? -ENOMEM : r->fn(r->arg, r->idx[j], len ? b : "", len);
}

int store__stacks_scan(store__conn *c, const int64_t *ids, size_t n, store__stack_fn fn, void *arg)
{
    size_t *rows = malloc((n ? n : 1) * sizeof(*rows)), n_rows = 0;
    int64_t *row_ids = malloc((n ? n : 1) * sizeof(*row_ids));
    if (!rows || !row_ids) {
        free(rows);
        free(row_ids);
        return -ENOMEM;
    }
    store__chunk_iter it = {0};
    sqlite3_stmt *st = store__stmt(c, SQL_CHUNK_FIND);
    bool in_chunk = false;  /* st stands on a chunk, it on its entries */
    int64_t chunk_last = 0; /* that chunk's range end */
    int rc = 0, src;
    for (size_t i = 0; i < n && !rc; i++) {
        int64_t want = ids[i];
        if (in_chunk && want > chunk_last) {
            sqlite3_reset(st);
            in_chunk = false;
        }
        if (!in_chunk && st) {
            /* The statement is reset before each new seek, so it is the
             * only user of the prepared statement at a time. */
            sqlite3_bind_int64(st, 1, want);
            src = sqlite3_step(st);
            if (src == SQLITE_ROW && sqlite3_column_int64(st, 1) >= want) {
                in_chunk = true;
                chunk_last = sqlite3_column_int64(st, 1);
                store__chunk_iter_init(&it, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 2),
                                       (size_t)sqlite3_column_bytes(st, 2));
            } else {
                sqlite3_reset(st);
                if (src != SQLITE_ROW && src != SQLITE_DONE)
                    rc = store__errno(src);
            }
        }
        if (rc)
            break;
        if (!in_chunk) {
            row_ids[n_rows] = want;
            rows[n_rows++] = i;
            continue;
        }
        int r = 1;
        while (it.id < want && (r = store__chunk_iter_next(&it)) == 1)
            ;
        if (r < 0)
            rc = r;
        else if (r == 0 || it.id != want)
            rc = -EIO; /* in the range but not there: a damaged reference */
        else
            rc = fn(arg, i, it.frames_len ? it.cur : (const unsigned char *)"", it.frames_len);
    }
    if (st)
        sqlite3_reset(st);
    store__chunk_iter_free(&it);
    if (!rc && n_rows) {
        row_scan r = {.idx = rows, .fn = fn, .arg = arg};
        rc = store__scan_ids(c, SQL_STACK_SCAN, row_ids, n_rows, stack_row, &r);
    }
    free(rows);
    free(row_ids);
    return rc;
}

/* ---- every stack (writer's map, collection) --------------------------------- */

int store__stacks_each(sqlite3 *db, int64_t above, bool chunks_only, store__stack_each_fn fn,
                       void *arg)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src = SQLITE_OK;
    if (!chunks_only) {
        src = sqlite3_prepare_v2(db, "SELECT id, frames FROM stacks WHERE id > ?1", -1, &st, NULL);
        if (src == SQLITE_OK)
            sqlite3_bind_int64(st, 1, above);
        while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
            src = SQLITE_OK;
            const void *b = sqlite3_column_blob(st, 1);
            size_t len = (size_t)sqlite3_column_bytes(st, 1);
            rc = len && !b ? -ENOMEM : fn(arg, sqlite3_column_int64(st, 0), len ? b : "", len, false);
        }
        sqlite3_finalize(st);
        st = NULL;
        if (rc || (src != SQLITE_OK && src != SQLITE_DONE))
            return rc ? rc : store__errno(src);
    }
    /* Chunks whose range reaches above `above` (the first may start below). */
    src = sqlite3_prepare_v2(db, "SELECT first_id, data FROM stack_chunks WHERE last_id > ?1 "
                                 "ORDER BY first_id", -1, &st, NULL);
    if (src == SQLITE_OK)
        sqlite3_bind_int64(st, 1, above);
    store__chunk_iter it = {0};
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        src = SQLITE_OK;
        store__chunk_iter_init(&it, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
                               (size_t)sqlite3_column_bytes(st, 1));
        int r = 0;
        while (!rc && (r = store__chunk_iter_next(&it)) == 1)
            if (it.id > above)
                rc = fn(arg, it.id, it.frames_len ? it.cur : (const unsigned char *)"",
                        it.frames_len, false);
        if (!rc && r < 0) {
            if (r != -EIO) {
                rc = r;
            } else {
                /* A damaged chunk: what decoded was given; the rest is
                 * unknown (kept, and counted as nothing by loads). */
                rc = fn(arg, it.id, NULL, 0, true);
            }
        }
    }
    store__chunk_iter_free(&it);
    sqlite3_finalize(st);
    return rc ? rc : (src == SQLITE_OK || src == SQLITE_DONE ? 0 : store__errno(src));
}

/* ---- writing ----------------------------------------------------------------- */

int store__stacks_write_chunk(store__conn *w, int64_t first_id, int64_t last_id, const lw_buf *blob)
{
    sqlite3_stmt *st = store__stmt(w, SQL_CHUNK_INSERT);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, first_id);
    sqlite3_bind_int64(st, 2, last_id);
    sqlite3_bind_blob(st, 3, blob->len ? (const void *)blob->data : "", (int)blob->len, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    return src == SQLITE_DONE ? 0 : store__errno(src) ? store__errno(src) : -EIO;
}

/* Keep the largest id ever handed out in sqlite_sequence (as AUTOINCREMENT
 * does for `stacks` rows), so that deleting the newest chunk does not let
 * its ids be handed out again. */
static int keep_high_water(sqlite3 *db)
{
    int64_t hi = 0;
    int rc = store__query_int(db, "SELECT coalesce(max(last_id), 0) FROM stack_chunks", &hi);
    if (rc || hi == 0)
        return rc;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE sqlite_sequence SET seq = %lld WHERE name = 'stacks' AND seq < %lld; "
             "INSERT INTO sqlite_sequence(name, seq) SELECT 'stacks', %lld WHERE NOT EXISTS "
             "(SELECT 1 FROM sqlite_sequence WHERE name = 'stacks')",
             (long long)hi, (long long)hi, (long long)hi);
    return store__exec(db, sql);
}

/* Rewrite the chunk (first_id, data) without the ids of dead[*i..] up to
 * last_id (sorted), or delete it when none is left; *i moves past them. A
 * chunk that does not decode is left as it is. */
static int chunk_drop(sqlite3_stmt *upd, sqlite3_stmt *del, int64_t first_id, int64_t last_id,
                      const void *data, size_t len, const int64_t *dead, size_t n_dead, size_t *i,
                      lw_buf *out)
{
    store__chunk_iter it = {0};
    store__chunk_enc e;
    store__chunk_enc_init(&e, out, first_id);
    store__chunk_iter_init(&it, first_id, data, len);
    int rc = 0, r = 0;
    bool changed = false;
    while (!rc && (r = store__chunk_iter_next(&it)) == 1) {
        while (*i < n_dead && dead[*i] < it.id)
            (*i)++;
        if (*i < n_dead && dead[*i] == it.id)
            changed = true;
        else
            rc = store__chunk_enc_add(&e, it.id, it.frames_len ? it.cur : (const unsigned char *)"",
                                      it.frames_len);
    }
    if (!rc && r == -EIO)
        changed = false; /* damaged: left as it is */
    else if (!rc && r < 0)
        rc = r;
    while (*i < n_dead && dead[*i] <= last_id)
        (*i)++;
    if (!rc && changed) {
        sqlite3_stmt *st = e.n ? upd : del;
        sqlite3_bind_int64(st, 1, first_id);
        if (e.n)
            sqlite3_bind_blob(st, 2, out->len ? (const void *)out->data : "", (int)out->len,
                              SQLITE_STATIC);
        int src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src != SQLITE_DONE)
            rc = store__errno(src) ? store__errno(src) : -EIO;
    }
    store__chunk_enc_free(&e);
    store__chunk_iter_free(&it);
    return rc;
}

int store__stacks_delete(store__conn *w, const int64_t *dead, size_t n)
{
    if (n == 0)
        return 0;
    sqlite3 *db = w->db;
    sqlite3_stmt *find = NULL, *upd = NULL, *del = NULL, *row = NULL;
    lw_buf out;
    lw_buf_init(&out, (size_t)1 << 30);
    int rc = keep_high_water(db);
    if (!rc && (!(find = store__stmt(w, SQL_CHUNK_FIND)) ||
                sqlite3_prepare_v2(db, "UPDATE stack_chunks SET data = ?2 WHERE first_id = ?1", -1,
                                   &upd, NULL) != SQLITE_OK ||
                sqlite3_prepare_v2(db, "DELETE FROM stack_chunks WHERE first_id = ?1", -1, &del,
                                   NULL) != SQLITE_OK ||
                sqlite3_prepare_v2(db, "DELETE FROM stacks WHERE id = ?1", -1, &row, NULL) !=
                    SQLITE_OK))
        rc = -EIO;
    for (size_t i = 0; i < n && !rc;) {
        sqlite3_bind_int64(find, 1, dead[i]);
        int src = sqlite3_step(find);
        if (src == SQLITE_ROW && sqlite3_column_int64(find, 1) >= dead[i]) {
            /* chunk_drop's statements are others than find: its row stays
             * valid until find is reset. */
            rc = chunk_drop(upd, del, sqlite3_column_int64(find, 0),
                            sqlite3_column_int64(find, 1), sqlite3_column_blob(find, 2),
                            (size_t)sqlite3_column_bytes(find, 2), dead, n, &i, &out);
            sqlite3_reset(find);
            continue;
        }
        sqlite3_reset(find);
        if (src != SQLITE_ROW && src != SQLITE_DONE) {
            rc = store__errno(src);
            break;
        }
        sqlite3_bind_int64(row, 1, dead[i]);
        src = sqlite3_step(row);
        sqlite3_reset(row);
        if (src != SQLITE_DONE)
            rc = store__errno(src) ? store__errno(src) : -EIO;
        i++;
    }
    if (find)
        sqlite3_reset(find);
    sqlite3_finalize(upd);
    sqlite3_finalize(del);
    sqlite3_finalize(row);
    lw_buf_cleanup(&out);
    return rc;
}
