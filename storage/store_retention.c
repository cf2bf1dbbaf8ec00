/* store_retention.c — delete old profiles, collect the shared rows nobody
 * uses any more, and give the space back to the file system.
 *
 * Profiles point at their sample set and meta row by foreign key: the
 * sets and meta rows the deleted profiles used are checked one by one
 * after every deletion (indexed), so a run costs what it deletes. Stacks,
 * functions and strings are referenced from inside blobs, which SQLite
 * cannot see: they are collected by mark and sweep (decode every sample
 * set and stack), which costs time proportional to the database, so it
 * runs only when enough has been deleted since the last collection (a
 * tenth of what remains) or when the size limit is being enforced, and it
 * marks on a reader's snapshot without the writer lock (see "full
 * collection" below). Until then unreferenced stacks merely wait; nothing
 * refers to a deleted row.
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
#include <string.h>

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

/* An SQLite step or prepare result as 0 or a negative errno. */
static int sql_rc(int src)
{
    if (src == SQLITE_OK || src == SQLITE_DONE)
        return 0;
    return store__errno(src) ? store__errno(src) : -EIO;
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
    return sql_rc(src);
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
    return sql_rc(src);
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
    return store__query_int(db,
                     "SELECT coalesce((SELECT max(id) FROM profiles) - (SELECT min(id) FROM profiles) "
                     "+ 1, 0)",
                     out);
}

/* Give the free pages back and empty the WAL: the files shrink. */
static void shrink_files(sqlite3 *db)
{
    store__exec_best_effort(db, "PRAGMA incremental_vacuum");
    store__exec_best_effort(db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

/* ---- full collection ---------------------------------------------------------
 *
 * Mark and sweep of stacks, functions and strings in two phases, so that
 * the writer lock (and every ingest) waits only for what is swept, not for
 * reading the whole database:
 *
 * 1. gc_mark, on a reader connection, in one read transaction (a snapshot;
 *    ingest goes on meanwhile): the largest id of each table, then marks
 *    from every sample set and meta row (orphaned sets too: one could be
 *    reused by an identical profile before the sweep; their stacks wait for
 *    the next collection), stacks → functions → strings. What is unmarked
 *    is a candidate; sets and meta rows nothing refers to are candidates
 *    for the sweep of their own.
 * 2. gc_sweep, under the writer lock, in a write transaction: rows written
 *    since the snapshot (ids above its largest) may refer to candidates —
 *    an ingest may reuse a stack the snapshot saw unused — so they are
 *    marked first: new sets (stacks, label strings), new meta rows, new
 *    stacks (functions), new functions and functions marked again
 *    (strings). Then the candidates still unmarked are deleted. Ids are
 *    never handed out twice in between (stacks: the writer's counter;
 *    other tables: above their largest id).
 */
typedef struct gc_marks {
    int64_t max_set, max_meta, max_stack, max_fn; /* the snapshot's largest ids */
    store__idset live_stacks, live_fns, live_strs;
    idlist dead_stacks, dead_fns, dead_strs; /* unmarked in the snapshot */
    idlist orphan_sets, orphan_metas;        /* unreferenced in the snapshot */
} gc_marks;

static void gc_marks_free(gc_marks *m)
{
    store__idset_free(&m->live_stacks);
    store__idset_free(&m->live_fns);
    store__idset_free(&m->live_strs);
    free(m->dead_stacks.ids);
    free(m->dead_fns.ids);
    free(m->dead_strs.ids);
    free(m->orphan_sets.ids);
    free(m->orphan_metas.ids);
}

/* Call fn for each row `sql` returns (?1 bound to arg). */
typedef int (*gc_row_fn)(sqlite3_stmt *st, gc_marks *m, bool all_live);

static int gc_rows(sqlite3 *db, const char *sql, int64_t arg, gc_row_fn fn, gc_marks *m,
                   bool all_live)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (src == SQLITE_OK)
        sqlite3_bind_int64(st, 1, arg);
    while (src == SQLITE_OK && !rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        src = SQLITE_OK;
        rc = fn(st, m, all_live);
    }
    sqlite3_finalize(st);
    return rc ? rc : sql_rc(src);
}

/* A set (data, is_delta): mark its stacks and label strings. A delta is
 * decoded shallowly: its matched rows' stacks and labels are its
 * keyframe's, a set of its own. */
static int gc_set_row(sqlite3_stmt *st, gc_marks *m, bool all_live)
{
    (void)all_live;
    store__set_reader r;
    int rc = store__set_parse(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                              sqlite3_column_int(st, 1) != 0, NULL, &r);
    if (rc)
        /* A damaged set refers to nothing we can know: its profile is
         * unreadable anyway, and retention must still free space. */
        return rc == -ENOMEM ? rc : 0;
    for (size_t i = 0; i < r.n_samples && !rc; i++)
        rc = mark(&m->live_stacks, r.stack_ids[i]);
    size_t n_labels = rc ? 0 : r.label_off[r.n_samples];
    for (size_t j = 0; j < n_labels && !rc; j++) {
        rc = mark(&m->live_strs, r.labels[j * 4]);
        if (!rc)
            rc = mark(&m->live_strs, r.labels[j * 4 + 1]);
        if (!rc)
            rc = mark(&m->live_strs, r.labels[j * 4 + 3]);
    }
    store__set_free(&r);
    return rc;
}

/* A meta row (data): mark its strings. */
static int gc_meta_row(sqlite3_stmt *st, gc_marks *m, bool all_live)
{
    (void)all_live;
    int rc = store__meta_strings(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                                 mark, &m->live_strs);
    return rc == -EINVAL ? 0 : rc; /* damaged: as for sets */
}

/* A stack (id, frames): with all_live it is live, else an unmarked one is
 * dead; a live one marks its functions. (A chunk that stops decoding: its
 * other stacks are unknown, kept, and mark nothing.) */
typedef struct gc_stack_ctx {
    gc_marks *m;
    bool all_live;
} gc_stack_ctx;

static int gc_stack(void *arg, int64_t id, const unsigned char *f, size_t len, bool damaged)
{
    gc_marks *m = ((gc_stack_ctx *)arg)->m;
    if (damaged)
        return 0;
    if (!((gc_stack_ctx *)arg)->all_live && !store__idset_get(&m->live_stacks, id, NULL))
        return idlist_push(&m->dead_stacks, id);
    size_t pos = 0;
    int rc = 0;
    while (pos < len && !rc) {
        uint64_t fid;
        int64_t line;
        if (store__get_uvarint(f, len, &pos, &fid) || store__get_svarint(f, len, &pos, &line))
            break; /* damaged: keep the row, mark what was readable */
        rc = mark(&m->live_fns, (int64_t)fid);
    }
    return rc;
}

/* A function (id, name, system_name, file): with all_live it is live, else
 * an unmarked one is dead; a live one marks its strings. */
static int gc_function_row(sqlite3_stmt *st, gc_marks *m, bool all_live)
{
    int64_t id = sqlite3_column_int64(st, 0);
    if (!all_live && !store__idset_get(&m->live_fns, id, NULL))
        return idlist_push(&m->dead_fns, id);
    int rc = 0;
    for (int k = 1; k <= 3 && !rc; k++)
        rc = mark(&m->live_strs, sqlite3_column_int64(st, k));
    return rc;
}

/* A string (id): dead unless marked. */
static int gc_string_row(sqlite3_stmt *st, gc_marks *m, bool all_live)
{
    (void)all_live;
    int64_t id = sqlite3_column_int64(st, 0);
    return store__idset_get(&m->live_strs, id, NULL) ? 0 : idlist_push(&m->dead_strs, id);
}

#define GC_SETS_ABOVE "SELECT data, base_id IS NOT NULL FROM sample_sets WHERE id > ?1"
#define GC_METAS_ABOVE "SELECT data FROM profile_meta WHERE id > ?1"
#define GC_FUNCTIONS_ABOVE "SELECT id, name, system_name, file FROM functions WHERE id > ?1"
#define GC_FUNCTION_BY_ID "SELECT id, name, system_name, file FROM functions WHERE id = ?1"

/* Phase 1, on a reader connection's snapshot (no writer lock). */
static int gc_mark(sqlite3 *db, gc_marks *m)
{
    int rc = store__exec(db, "BEGIN");
    if (rc)
        return rc;
    rc = store__query_int(db, "SELECT coalesce(max(id), 0) FROM sample_sets", &m->max_set);
    if (!rc)
        rc = store__query_int(db, "SELECT coalesce(max(id), 0) FROM profile_meta", &m->max_meta);
    if (!rc)
        rc = store__query_int(db, "SELECT max((SELECT coalesce(max(id), 0) FROM stacks), "
                                  "(SELECT coalesce(max(last_id), 0) FROM stack_chunks))",
                              &m->max_stack);
    if (!rc)
        rc = store__query_int(db, "SELECT coalesce(max(id), 0) FROM functions", &m->max_fn);
    if (!rc)
        rc = collect_ids(db,
                         "SELECT id FROM sample_sets WHERE NOT EXISTS "
                         "(SELECT 1 FROM profiles WHERE sample_set_id = sample_sets.id) "
                         "AND NOT EXISTS (SELECT 1 FROM sample_sets d WHERE d.base_id = sample_sets.id)",
                         &m->orphan_sets);
    if (!rc)
        rc = collect_ids(db,
                         "SELECT id FROM profile_meta WHERE id NOT IN "
                         "(SELECT DISTINCT meta_id FROM profiles)",
                         &m->orphan_metas);
    if (!rc)
        rc = gc_rows(db, GC_SETS_ABOVE, 0, gc_set_row, m, false);
    if (!rc)
        rc = gc_rows(db, GC_METAS_ABOVE, 0, gc_meta_row, m, false);
    if (!rc)
        rc = store__stacks_each(db, 0, false, gc_stack, &(gc_stack_ctx){m, false});
    if (!rc)
        rc = gc_rows(db, GC_FUNCTIONS_ABOVE, 0, gc_function_row, m, false);
    if (!rc)
        rc = gc_rows(db, "SELECT id FROM strings WHERE id > ?1", 0, gc_string_row, m, false);
    store__exec_best_effort(db, "COMMIT");
    return rc;
}

/* Delete the ids of dead that live does not hold. */
/* The ids of dead that live does not hold, into *gone. */
static int unmarked(const idlist *dead, const store__idset *live, idlist *gone)
{
    int rc = 0;
    for (size_t i = 0; i < dead->n && !rc; i++)
        if (!store__idset_get(live, dead->ids[i], NULL))
            rc = idlist_push(gone, dead->ids[i]);
    return rc;
}

static int delete_unmarked(sqlite3 *db, const char *sql, const idlist *dead,
                           const store__idset *live)
{
    idlist gone = {0};
    int rc = unmarked(dead, live, &gone);
    if (!rc)
        rc = delete_ids(db, sql, &gone);
    free(gone.ids);
    return rc;
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Delete the stacks of dead that live does not hold (rows, or from their
 * chunks). */
static int delete_stacks(store__conn *w, const idlist *dead, const store__idset *live)
{
    idlist gone = {0};
    int rc = unmarked(dead, live, &gone);
    if (!rc && gone.n) {
        qsort(gone.ids, gone.n, sizeof(*gone.ids), id_cmp);
        rc = store__stacks_delete(w, gone.ids, gone.n);
    }
    free(gone.ids);
    return rc;
}

/* Phase 2: inside the caller's write transaction, writer lock held. */
static int gc_sweep(store *s, gc_marks *m)
{
    sqlite3 *db = s->w.db;
    int rc = sweep_candidates(db, &m->orphan_sets, &m->orphan_metas);
    if (!rc)
        rc = gc_rows(db, GC_SETS_ABOVE, m->max_set, gc_set_row, m, true);
    if (!rc)
        rc = gc_rows(db, GC_METAS_ABOVE, m->max_meta, gc_meta_row, m, true);
    gc_stack_ctx live = {m, true};
    if (!rc)
        rc = store__stacks_each(db, m->max_stack, false, gc_stack, &live);
    /* Stacks the snapshot saw unused that a new set uses again: their
     * functions (unmarked then) are needed too. */
    lw_buf frames;
    lw_buf_init(&frames, STORE_STACK_MAX_BYTES);
    for (size_t i = 0; i < m->dead_stacks.n && !rc; i++) {
        int64_t id = m->dead_stacks.ids[i];
        if (!store__idset_get(&m->live_stacks, id, NULL))
            continue;
        rc = store__stack_get(&s->w, id, &frames);
        if (rc == -EIO || rc == -ENOENT)
            rc = 0; /* damaged, or gone: nothing to mark */
        else if (!rc)
            rc = gc_stack(&live, id, (const unsigned char *)(frames.data ? frames.data : ""),
                          frames.len, false);
    }
    lw_buf_cleanup(&frames);
    if (!rc)
        rc = gc_rows(db, GC_FUNCTIONS_ABOVE, m->max_fn, gc_function_row, m, true);
    /* Functions the snapshot saw unused that a new or revived stack uses. */
    for (size_t i = 0; i < m->dead_fns.n && !rc; i++)
        if (store__idset_get(&m->live_fns, m->dead_fns.ids[i], NULL))
            rc = gc_rows(db, GC_FUNCTION_BY_ID, m->dead_fns.ids[i], gc_function_row, m, true);
    if (!rc)
        rc = delete_stacks(&s->w, &m->dead_stacks, &m->live_stacks);
    if (!rc)
        rc = delete_unmarked(db, "DELETE FROM functions WHERE id = ?1", &m->dead_fns, &m->live_fns);
    if (!rc)
        rc = delete_unmarked(db, "DELETE FROM strings WHERE id = ?1", &m->dead_strs, &m->live_strs);
    return rc;
}

/* A full collection (see above): mark on a snapshot, sweep under the
 * writer lock. Called without it. */
static int gc_run(store *s)
{
    gc_marks m;
    memset(&m, 0, sizeof(m));
    store__idset_init(&m.live_stacks);
    store__idset_init(&m.live_fns);
    store__idset_init(&m.live_strs);
    store__conn *c = store__reader_get(s, true);
    int rc = gc_mark(c->db, &m);
    store__reader_put(s, c);
    if (!rc && s->gc_between)
        s->gc_between(s, s->gc_between_arg);
    if (!rc) {
        pthread_mutex_lock(&s->w.mu);
        rc = store__exec(s->w.db, "BEGIN IMMEDIATE");
        if (!rc) {
            rc = gc_sweep(s, &m);
            if (!rc)
                rc = store__exec(s->w.db, "COMMIT");
            if (rc && !sqlite3_get_autocommit(s->w.db))
                store__exec_best_effort(s->w.db, "ROLLBACK");
        }
        if (!rc) {
            s->deleted_since_gc = 0;
            shrink_files(s->w.db);
        }
        /* Cached ids may name deleted rows now (or rows of a rolled-back
         * transaction). */
        store__caches_clear(s);
        pthread_mutex_unlock(&s->w.mu);
    }
    gc_marks_free(&m);
    return rc;
}

/* Run one deletion step (a query of profile ids with ?1) plus the sweeps in
 * a transaction, writer lock held. The doomed ids go to a temporary table
 * first, so that the sets and meta rows they used can be checked one by
 * one afterwards. *gc_due: a full collection should follow (force_gc, or a
 * tenth of the remaining profiles deleted since the last one). */
static int delete_step(store *s, const char *select_ids_sql, int64_t arg, bool force_gc,
                       int64_t *n_deleted, bool *gc_due)
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
        rc = store__query_int(db, "SELECT coalesce(min(time_ns), 9223372036854775807) FROM profiles",
                       &oldest);
    if (!rc && n > 0)
        rc = exec_count(db, SERIES_DELETE_BEFORE, oldest, NULL);
    if (!rc && n > 0) {
        rc = sweep_candidates(db, &sets, &metas);
        /* Deleted set ids can be reused: forget decoded keyframes. */
        store__kf_clear(&s->kf);
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
        s->deleted_since_gc += n;
        *gc_due = force_gc || s->deleted_since_gc * 10 >= remaining;
        if (!*gc_due) /* else the collection shrinks them after its sweep */
            shrink_files(db);
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
    /* The writer lock is held per step, not across a full collection's
     * marking (gc_run): ingest waits only for deletions and sweeps. */
    pthread_mutex_lock(&s->gc_mu);
    if (max_age_ns > 0) {
        bool gc_due = false;
        pthread_mutex_lock(&s->w.mu);
        rc = delete_step(s, "SELECT id FROM profiles WHERE time_ns < ?1", now_ns - max_age_ns,
                         false, &total, &gc_due);
        /* Series of targets whose profiles are all younger still age out. */
        if (!rc)
            rc = exec_count(s->w.db, SERIES_DELETE_BEFORE, now_ns - max_age_ns, NULL);
        pthread_mutex_unlock(&s->w.mu);
        if (!rc && gc_due)
            rc = gc_run(s);
    }
    /* Size: the pages in use (free pages are returned by the vacuum; the
     * WAL is emptied by each checkpoint). Delete the oldest profiles in
     * proportion to the excess, aiming at 90% of the limit, and repeat:
     * shared rows make the space a profile frees hard to predict. */
    for (int iter = 0; !rc && max_bytes > 0 && iter < 64; iter++) {
        int64_t pages = 0, free_pages = 0, page_size = 0, count = 0;
        bool gc_due = false;
        pthread_mutex_lock(&s->w.mu);
        if ((rc = store__query_int(s->w.db, "PRAGMA page_count", &pages)) ||
            (rc = store__query_int(s->w.db, "PRAGMA freelist_count", &free_pages)) ||
            (rc = store__query_int(s->w.db, "PRAGMA page_size", &page_size)) ||
            (rc = profiles_estimate(s->w.db, &count))) {
            pthread_mutex_unlock(&s->w.mu);
            break;
        }
        int64_t used = (pages - free_pages) * page_size;
        if (used <= max_bytes || count == 0) {
            pthread_mutex_unlock(&s->w.mu);
            break;
        }
        int64_t target = max_bytes / 10 * 9;
        int64_t k = (int64_t)((double)count * (double)(used - target) / (double)used) + 1;
        if (k > count)
            k = count;
        rc = delete_step(s, "SELECT id FROM profiles ORDER BY time_ns, id LIMIT ?1", k, true,
                         &total, &gc_due);
        pthread_mutex_unlock(&s->w.mu);
        if (!rc && gc_due)
            rc = gc_run(s);
    }
    pthread_mutex_unlock(&s->gc_mu);
    if (n_deleted)
        *n_deleted = total;
    return rc;
}
