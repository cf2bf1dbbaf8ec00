/* store_retention.c — delete old profiles, collect the shared rows nobody
 * uses any more, and give the space back to the file system.
 *
 * Profiles point at their sample set and meta row by foreign key, so those
 * are swept with one indexed query after every deletion. Stacks, functions
 * and strings are referenced from inside blobs, which SQLite cannot see:
 * they are collected by mark and sweep (decode every remaining sample set
 * and stack). That costs time proportional to the database, so it runs only
 * when enough has been deleted since the last collection (a tenth of what
 * remains) or when the size limit is being enforced. Until then unreferenced
 * stacks merely wait; nothing refers to a deleted row.
 *
 * Damaged rows (blobs that do not decode) are treated as referring to
 * nothing, so retention keeps freeing space on a partly damaged database.
 *
 * The database is created with auto_vacuum=INCREMENTAL; after deleting,
 * `PRAGMA incremental_vacuum` moves free pages to the end and truncates, and
 * a TRUNCATE checkpoint empties the WAL, so the files really shrink.
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct idlist {
    int64_t *ids;
    size_t n, cap;
} idlist;

static int idlist_push(idlist *l, int64_t id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int64_t *tmp = realloc(l->ids, cap * sizeof(*tmp));
        if (!tmp)
            return -ENOMEM;
        l->ids = tmp;
        l->cap = cap;
    }
    l->ids[l->n++] = id;
    return 0;
}

static int mark(void *arg, int64_t id)
{
    return id ? store__idset_put(arg, id, 1) : 0;
}

static int delete_ids(sqlite3 *db, const char *sql, const idlist *dead)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    for (size_t i = 0; i < dead->n && src == SQLITE_OK; i++) {
        sqlite3_bind_int64(st, 1, dead->ids[i]);
        src = sqlite3_step(st);
        sqlite3_reset(st);
        if (src == SQLITE_DONE)
            src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return store__errno(src);
}

/* Mark and sweep stacks, functions and strings. Runs inside the caller's
 * write transaction, writer lock held. */
int store__gc_full(store *s)
{
    sqlite3 *db = s->w.db;
    store__idset live_stacks, live_fns, live_strs;
    idlist dead = {0};
    sqlite3_stmt *st = NULL;
    int rc = 0, src;
    store__idset_init(&live_stacks);
    store__idset_init(&live_fns);
    store__idset_init(&live_strs);

    /* Roots: sample sets (stacks, label strings) and meta rows (strings). */
    /* A delta is decoded shallowly: its matched rows' stacks and labels are
     * its keyframe's, which is a set of its own and marked as such. */
    src = sqlite3_prepare_v2(db, "SELECT data, base_id IS NOT NULL FROM sample_sets", -1, &st,
                             NULL);
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        store__set_reader r;
        rc = store__set_parse(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                              sqlite3_column_int(st, 1) != 0, NULL, &r);
        if (rc == -ENOMEM)
            break;
        if (rc) {
            /* A damaged set refers to nothing we can know: its profile is
             * unreadable anyway, and retention must still free space. */
            rc = 0;
            src = SQLITE_OK;
            continue;
        }
        for (size_t i = 0; i < r.n_samples && !rc; i++)
            rc = mark(&live_stacks, r.stack_ids[i]);
        size_t n_labels = r.label_off[r.n_samples];
        for (size_t j = 0; j < n_labels && !rc; j++) {
            rc = mark(&live_strs, r.labels[j * 4]);
            if (!rc)
                rc = mark(&live_strs, r.labels[j * 4 + 1]);
            if (!rc)
                rc = mark(&live_strs, r.labels[j * 4 + 3]);
        }
        store__set_free(&r);
        src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc || (src != SQLITE_DONE && src != SQLITE_OK))
        goto out_err;
    src = sqlite3_prepare_v2(db, "SELECT data FROM profile_meta", -1, &st, NULL);
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        rc = store__meta_strings(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                                 mark, &live_strs);
        if (rc == -EINVAL)
            rc = 0; /* damaged: as for sets above */
        src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc || (src != SQLITE_DONE && src != SQLITE_OK))
        goto out_err;

    /* Stacks: keep the marked ones and mark their functions. */
    src = sqlite3_prepare_v2(db, "SELECT id, frames FROM stacks", -1, &st, NULL);
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        src = SQLITE_OK;
        if (!store__idset_get(&live_stacks, id, NULL)) {
            rc = idlist_push(&dead, id);
            continue;
        }
        const unsigned char *f = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1), pos = 0;
        while (pos < len && !rc) {
            uint64_t fid;
            int64_t line;
            if (store__get_uvarint(f, len, &pos, &fid) || store__get_svarint(f, len, &pos, &line))
                break; /* damaged: keep the row, mark what was readable */
            rc = mark(&live_fns, (int64_t)fid);
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc || (src != SQLITE_DONE && src != SQLITE_OK))
        goto out_err;
    if ((rc = delete_ids(db, "DELETE FROM stacks WHERE id = ?1", &dead)))
        goto out;
    dead.n = 0;

    /* Functions: keep the marked ones and mark their strings. */
    src = sqlite3_prepare_v2(db, "SELECT id, name, system_name, file FROM functions", -1, &st,
                             NULL);
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        src = SQLITE_OK;
        if (!store__idset_get(&live_fns, id, NULL)) {
            rc = idlist_push(&dead, id);
            continue;
        }
        for (int k = 1; k <= 3 && !rc; k++)
            rc = mark(&live_strs, sqlite3_column_int64(st, k));
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc || (src != SQLITE_DONE && src != SQLITE_OK))
        goto out_err;
    if ((rc = delete_ids(db, "DELETE FROM functions WHERE id = ?1", &dead)))
        goto out;
    dead.n = 0;

    src = sqlite3_prepare_v2(db, "SELECT id FROM strings", -1, &st, NULL);
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        src = SQLITE_OK;
        if (!store__idset_get(&live_strs, id, NULL))
            rc = idlist_push(&dead, id);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc || (src != SQLITE_DONE && src != SQLITE_OK))
        goto out_err;
    if ((rc = delete_ids(db, "DELETE FROM strings WHERE id = ?1", &dead)))
        goto out;
    s->deleted_since_gc = 0;
    goto out;

out_err:
    if (!rc)
        rc = store__errno(src) ? store__errno(src) : -EIO;
out:
    /* Cached ids may name deleted rows now (or rows of a transaction the
     * caller will roll back). */
    store__caches_clear(s);
    free(dead.ids);
    store__idset_free(&live_stacks);
    store__idset_free(&live_fns);
    store__idset_free(&live_strs);
    return rc;
}

static int exec_count(sqlite3 *db, const char *sql, int64_t a, int64_t *changes)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, a);
        src = sqlite3_step(st);
        if (src == SQLITE_DONE || src == SQLITE_ROW)
            src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (src == SQLITE_OK && changes)
        *changes = sqlite3_changes64(db);
    return store__errno(src);
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            src = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return store__errno(src) ? store__errno(src) : (src == SQLITE_OK ? 0 : -EIO);
}

/* Drop every sample set no profile or delta refers to, and unused meta
 * rows: whole-table scans, so only with a full collection (which reads
 * everything anyway); each deletion step checks just the rows its profiles
 * used (sweep_candidates). */
static int sweep_blobs(sqlite3 *db)
{
    /* Twice: deleting deltas can leave their keyframe unreferenced. */
    int rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++)
        rc = store__exec(db, "DELETE FROM sample_sets WHERE NOT EXISTS "
                             "(SELECT 1 FROM profiles WHERE sample_set_id = sample_sets.id) "
                             "AND NOT EXISTS (SELECT 1 FROM sample_sets d "
                             "WHERE d.base_id = sample_sets.id)");
    if (!rc)
        rc = store__exec(db, "DELETE FROM profile_meta WHERE id NOT IN "
                             "(SELECT DISTINCT meta_id FROM profiles)");
    return rc;
}

/* The ids a query returns (one column), appended to l. */
static int collect_ids(sqlite3 *db, const char *sql, idlist *l)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        rc = idlist_push(l, sqlite3_column_int64(st, 0));
        src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc)
        return rc;
    return src == SQLITE_DONE || src == SQLITE_OK ? 0 : (store__errno(src) ? store__errno(src) : -EIO);
}

/* The sample sets and meta rows the deleted profiles used, each dropped
 * if nothing refers to it any more (indexed lookups: profiles by set, sets
 * by keyframe); a dropped delta's keyframe is checked in turn. Cost in
 * proportion to what was deleted, not to the database. */
static int sweep_candidates(sqlite3 *db, idlist *sets, const idlist *metas)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db,
                                 "DELETE FROM sample_sets WHERE id = ?1 AND NOT EXISTS "
                                 "(SELECT 1 FROM profiles WHERE sample_set_id = ?1) AND NOT EXISTS "
                                 "(SELECT 1 FROM sample_sets d WHERE d.base_id = ?1) "
                                 "RETURNING base_id",
                                 -1, &st, NULL);
    int rc = 0;
    for (size_t i = 0; i < sets->n && src == SQLITE_OK && !rc; i++) {
        sqlite3_bind_int64(st, 1, sets->ids[i]);
        while ((src = sqlite3_step(st)) == SQLITE_ROW && !rc)
            if (sqlite3_column_type(st, 0) != SQLITE_NULL)
                rc = idlist_push(sets, sqlite3_column_int64(st, 0)); /* checked later in this loop */
        sqlite3_reset(st);
        src = src == SQLITE_DONE || src == SQLITE_ROW ? SQLITE_OK : src;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!rc && src == SQLITE_OK)
        src = sqlite3_prepare_v2(db,
                                 "DELETE FROM profile_meta WHERE id = ?1 AND NOT EXISTS "
                                 "(SELECT 1 FROM profiles WHERE meta_id = ?1)",
                                 -1, &st, NULL);
    for (size_t i = 0; i < metas->n && src == SQLITE_OK && !rc; i++) {
        sqlite3_bind_int64(st, 1, metas->ids[i]);
        src = sqlite3_step(st);
        sqlite3_reset(st);
        src = src == SQLITE_DONE ? SQLITE_OK : src;
    }
    sqlite3_finalize(st);
    if (rc)
        return rc;
    return src == SQLITE_OK ? 0 : (store__errno(src) ? store__errno(src) : -EIO);
}

/* Series points older than ?1, one range per (target, signal) of the
 * primary key — a plain `time_ns < ?` would scan the whole table (and a
 * range of signals would scan each target's points). */
#define SERIES_DELETE_BEFORE                                                                   \
    "DELETE FROM series WHERE target_id IN (SELECT id FROM targets) AND signal IN "            \
    "(1, 2, 3, 4, 5) AND time_ns < ?1"
_Static_assert(STORE_SIG_GOROUTINES == 1 && STORE_SIG_LAST == 5,
               "SERIES_DELETE_BEFORE lists every signal");

/* About how many profiles there are (ids ascend with ingest, retention
 * deletes the oldest): count(*) would read a whole index. 0 when none. */
static int profiles_estimate(sqlite3 *db, int64_t *out)
{
    /* Two subqueries: SQLite answers a lone min() or max() from the index
     * end, but both in one SELECT scan it. */
    return query_int(db,
                     "SELECT coalesce((SELECT max(id) FROM profiles) - (SELECT min(id) FROM profiles) "
                     "+ 1, 0)",
                     out);
}

/* Run one deletion step (a query of profile ids with ?1) plus the sweeps in
 * a transaction. The doomed ids go to a temporary table first, so that the
 * sets and meta rows they used can be checked one by one afterwards. */
static int delete_step(store *s, const char *select_ids_sql, int64_t arg, bool force_gc,
                       int64_t *n_deleted)
{
    sqlite3 *db = s->w.db;
    int64_t n = 0, remaining = 0, oldest = INT64_MAX;
    idlist sets = {0}, metas = {0};
    char sql[512];
    int rc = store__exec(db, "CREATE TEMP TABLE IF NOT EXISTS doomed(id INTEGER PRIMARY KEY)");
    if (!rc)
        rc = store__exec(db, "BEGIN IMMEDIATE");
    if (rc)
        return rc;
    rc = store__exec(db, "DELETE FROM temp.doomed");
    if (!rc && snprintf(sql, sizeof(sql), "INSERT INTO temp.doomed %s", select_ids_sql) >=
                   (int)sizeof(sql))
        rc = -EINVAL;
    if (!rc)
        rc = exec_count(db, sql, arg, NULL);
    if (!rc)
        rc = collect_ids(db,
                         "SELECT DISTINCT sample_set_id FROM profiles WHERE id IN temp.doomed",
                         &sets);
    if (!rc)
        rc = collect_ids(db, "SELECT DISTINCT meta_id FROM profiles WHERE id IN temp.doomed",
                         &metas);
    if (!rc)
        rc = exec_count(db, "DELETE FROM profiles WHERE id IN temp.doomed", 0, &n);
    if (!rc)
        rc = profiles_estimate(db, &remaining);
    /* Series points older than every remaining profile go with them. */
    if (!rc && n > 0)
        rc = query_int(db, "SELECT coalesce(min(time_ns), 9223372036854775807) FROM profiles",
                       &oldest);
    if (!rc && n > 0)
        rc = exec_count(db, SERIES_DELETE_BEFORE, oldest, NULL);
    if (!rc && n > 0) {
        rc = sweep_candidates(db, &sets, &metas);
        /* Deleted set ids can be reused: forget decoded keyframes. */
        store__kf_clear(&s->kf);
    }
    if (!rc && n > 0) {
        s->deleted_since_gc += n;
        if (force_gc || s->deleted_since_gc * 10 >= remaining) {
            rc = sweep_blobs(db);
            if (!rc)
                rc = store__gc_full(s);
        }
    }
    if (!rc)
        rc = store__exec(db, "DELETE FROM temp.doomed");
    if (!rc)
        rc = store__exec(db, "COMMIT");
    free(sets.ids);
    free(metas.ids);
    if (rc) {
        if (!sqlite3_get_autocommit(db))
            store__exec_best_effort(db, "ROLLBACK");
        store__caches_clear(s);
        return rc;
    }
    *n_deleted += n;
    if (n > 0) {
        store__exec_best_effort(db, "PRAGMA incremental_vacuum");
        store__exec_best_effort(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
    return 0;
}

int store_retention_apply(store *s, int64_t max_age_ns, int64_t max_bytes, int64_t now_ns,
                          int64_t *n_deleted)
{
    int64_t total = 0;
    int rc = 0;
    if (!s || max_age_ns < 0 || max_bytes < 0)
        return -EINVAL;
    if (!s->w.db)
        return -EROFS;
    pthread_mutex_lock(&s->w.mu);
    if (max_age_ns > 0) {
        rc = delete_step(s, "SELECT id FROM profiles WHERE time_ns < ?1", now_ns - max_age_ns,
                         false, &total);
        /* Series of targets whose profiles are all younger still age out. */
        if (!rc)
            rc = exec_count(s->w.db, SERIES_DELETE_BEFORE, now_ns - max_age_ns, NULL);
    }
    /* Size: the pages in use (free pages are returned by the vacuum; the
     * WAL is emptied by each checkpoint). Delete the oldest profiles in
     * proportion to the excess, aiming at 90% of the limit, and repeat:
     * shared rows make the space a profile frees hard to predict. */
    for (int iter = 0; !rc && max_bytes > 0 && iter < 64; iter++) {
        int64_t pages = 0, free_pages = 0, page_size = 0, count = 0;
        if ((rc = query_int(s->w.db, "PRAGMA page_count", &pages)) ||
            (rc = query_int(s->w.db, "PRAGMA freelist_count", &free_pages)) ||
            (rc = query_int(s->w.db, "PRAGMA page_size", &page_size)) ||
            (rc = profiles_estimate(s->w.db, &count)))
            break;
        int64_t used = (pages - free_pages) * page_size;
        if (used <= max_bytes || count == 0)
            break;
        int64_t target = max_bytes / 10 * 9;
        int64_t k = (int64_t)((double)count * (double)(used - target) / (double)used) + 1;
        if (k > count)
            k = count;
        rc = delete_step(s, "SELECT id FROM profiles ORDER BY time_ns, id LIMIT ?1", k, true,
                         &total);
    }
    pthread_mutex_unlock(&s->w.mu);
    if (n_deleted)
        *n_deleted = total;
    return rc;
}
