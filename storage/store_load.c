/* store_load.c — read stored profiles back: rebuild a pprof profile, sum
 * values per stack, describe stacks and pick their meaningful top frame.
 *
 * Every query here runs on a reader connection of the pool (store_int.h),
 * so it never waits for the writer beyond SQLite's WAL snapshot rules, nor
 * for other readers while a connection is free. A profile is rebuilt from
 * a few id-ordered range scans (its distinct stacks, then their functions),
 * not one query per stack or frame. A rebuilt
 * profile has one location per distinct (function, line) frame, without
 * mappings or addresses: inlined frames become frames of their own, which
 * gives the same normalized stacks (pprof.h) and the same flat/cum figures.
 * Unsymbolized frames come back as locations without lines in a mapping of
 * the same name based at 0, their address being the stored offset, so they
 * too keep their normalized identity.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct span {
    size_t off;
    size_t len;
} span;

/* One distinct (function, line) frame of the loaded stacks. */
typedef struct frame {
    int64_t fid;  /* DB function id */
    int64_t line;
    uint64_t loc; /* profile location id, 0 until made */
} frame;

typedef struct loader {
    store *s;
    store__conn *c;
    pprof_profile *p;
    store__idset strs;   /* DB string id → profile string index */
    int64_t last_sid, last_sidx; /* the last string looked up (labels repeat it) */
    store__idset fns;    /* DB function id → profile function id, or -(location id)
                          * for an unsymbolized frame's synthetic function */
    char **map_files;    /* mapping file names made so far ... */
    uint64_t *map_ids;   /* ... and their mapping ids */
    size_t n_maps;
    int64_t *uids;       /* distinct stack ids, ascending */
    size_t n_uids;
    uint32_t *sample_stack; /* per sample: index into uids */
    span *spans;         /* per distinct stack: its frames in fidx */
    uint32_t *fidx;      /* frame indices of every distinct stack, concatenated */
    size_t n_fidx, cap_fidx;
    uint64_t *locs;      /* one sample's location ids (the deepest stack's room) */
    size_t max_depth;
    frame *frames;       /* distinct frames */
    size_t n_frames, cap_frames;
    uint32_t *fmap;      /* open addressing over frames: index + 1, 0 = empty */
    size_t fmap_slots;   /* power of two */
} loader;

static int text_col(sqlite3_stmt *st, int col, const char **out)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t && sqlite3_column_type(st, col) != SQLITE_NULL)
        return -ENOMEM;
    *out = t ? (const char *)t : "";
    return 0;
}

/* The profile string index of DB string id (0 is ""). */
static int load_string(loader *l, int64_t id, int64_t *out)
{
    int64_t idx;
    if (id == 0) {
        *out = 0;
        return 0;
    }
    if (id == l->last_sid) {
        *out = l->last_sidx;
        return 0;
    }
    if (store__idset_get(&l->strs, id, &idx)) {
        l->last_sid = id;
        l->last_sidx = idx;
        *out = idx;
        return 0;
    }
    sqlite3_stmt *st = store__stmt(l->c, SQL_STRING_GET);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW) {
        const char *v;
        rc = text_col(st, 0, &v);
        if (!rc) {
            idx = pprof_intern(l->p, v);
            rc = idx < 0 ? (int)idx : 0;
        }
    } else {
        rc = src == SQLITE_DONE ? -EIO : store__errno(src);
    }
    sqlite3_reset(st);
    if (!rc)
        rc = store__idset_put(&l->strs, id, idx);
    if (!rc)
        *out = idx;
    return rc;
}

/* The id of a mapping named file (made on first use, based at 0 so that
 * addresses are offsets). */
static int load_mapping(loader *l, const char *file, uint64_t *out)
{
    for (size_t i = 0; i < l->n_maps; i++)
        if (!strcmp(l->map_files[i], file)) {
            *out = l->map_ids[i];
            return 0;
        }
    char **files = realloc(l->map_files, (l->n_maps + 1) * sizeof(*files));
    if (!files)
        return -ENOMEM;
    l->map_files = files;
    uint64_t *ids = realloc(l->map_ids, (l->n_maps + 1) * sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    l->map_ids = ids;
    int64_t fname = pprof_intern(l->p, file);
    if (fname < 0)
        return (int)fname;
    pprof_mapping m = {.memory_start = 0, .memory_limit = UINT64_MAX, .file_offset = 0,
                       .filename = fname};
    uint64_t mid = pprof_add_mapping(l->p, &m);
    char *dup = strdup(file);
    if (!mid || !dup) {
        free(dup);
        return -ENOMEM;
    }
    l->map_files[l->n_maps] = dup;
    l->map_ids[l->n_maps++] = mid;
    *out = mid;
    return 0;
}

/* An unsymbolized frame back as a location without lines: the offset is
 * the hex number at the end of the synthetic name. */
static int unsymbolized_location(loader *l, const char *name, const char *file, uint64_t *loc)
{
    const char *hex = strrchr(name, 'x');
    if (!hex || hex == name || hex[-1] != '0')
        return -EIO;
    uint64_t offset = strtoull(hex + 1, NULL, 16);
    uint64_t mid = 0;
    int rc = file[0] ? load_mapping(l, file, &mid) : 0;
    if (rc)
        return rc;
    *loc = pprof_add_location(l->p, mid, offset, NULL, 0);
    return *loc ? 0 : -ENOMEM;
}

/* Rows of a table whose statement `which` lists rows from id ?1 on in id
 * order (column 0 the id): fn(arg, row, i) is called for each of the n
 * sorted, distinct ids. Nearby ids are reached by stepping the open cursor
 * (a sequential read of pages), far ones by a new seek, so a profile's
 * stacks — mostly ingested together, with neighbouring ids — cost a range
 * scan instead of one B-tree descent and statement run each. A wanted id
 * without a row is -EIO (a damaged reference). */
#define SCAN_MAX_SKIP 32

int store__scan_ids(store__conn *c, enum store__sql which, const int64_t *ids, size_t n,
                    int (*fn)(void *, sqlite3_stmt *, size_t), void *arg)
{
    sqlite3_stmt *st = NULL;
    bool have_row = false;
    int64_t cur = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int64_t want = ids[i];
        for (int skip = 0; have_row && cur < want && skip < SCAN_MAX_SKIP; skip++) {
            int src = sqlite3_step(st);
            if (src == SQLITE_ROW) {
                cur = sqlite3_column_int64(st, 0);
            } else if (src == SQLITE_DONE) {
                have_row = false;
            } else {
                rc = store__errno(src);
                goto out;
            }
        }
        if (!have_row || cur < want) {
            st = store__stmt(c, which);
            if (!st) {
                rc = -EIO;
                goto out;
            }
            sqlite3_bind_int64(st, 1, want);
            int src = sqlite3_step(st);
            if (src == SQLITE_ROW) {
                have_row = true;
                cur = sqlite3_column_int64(st, 0);
            } else if (src == SQLITE_DONE) {
                have_row = false;
            } else {
                rc = store__errno(src);
                goto out;
            }
        }
        if (!have_row || cur != want) {
            rc = -EIO;
            goto out;
        }
        rc = fn(arg, st, i);
    }
out:
    if (st)
        sqlite3_reset(st);
    return rc;
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The order of keys[0..n) (a permutation of 0..n-1 sorting them, stable),
 * malloc'ed into *out. An LSD radix sort on key - min, 11 bits a pass and
 * only as many passes as the spread of the keys needs (a profile's stacks
 * are usually within a few million ids: two passes). 0 or -ENOMEM. */
static int sort_order(const int64_t *keys, size_t n, uint32_t **out)
{
    enum { BITS = 11, BUCKETS = 1 << BITS };
    uint32_t *ord = malloc((n ? n : 1) * sizeof(*ord));
    uint32_t *tmp = malloc((n ? n : 1) * sizeof(*tmp));
    size_t *count = malloc((BUCKETS + 1) * sizeof(*count));
    int rc = 0;
    if (!ord || !tmp || !count || n > UINT32_MAX) {
        rc = -ENOMEM;
        goto out;
    }
    bool sorted = true;
    int64_t lo = n ? keys[0] : 0, hi = lo;
    for (size_t i = 0; i < n; i++) {
        ord[i] = (uint32_t)i;
        if (i && keys[i - 1] > keys[i])
            sorted = false;
        lo = keys[i] < lo ? keys[i] : lo;
        hi = keys[i] > hi ? keys[i] : hi;
    }
    uint64_t spread = (uint64_t)hi - (uint64_t)lo;
    for (unsigned shift = 0; !sorted && shift < 64 && (shift == 0 || spread >> shift);
         shift += BITS) {
        memset(count, 0, (BUCKETS + 1) * sizeof(*count));
        for (size_t i = 0; i < n; i++)
            count[(((uint64_t)keys[ord[i]] - (uint64_t)lo) >> shift & (BUCKETS - 1)) + 1]++;
        for (size_t b = 0; b < BUCKETS; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < n; i++)
            tmp[count[((uint64_t)keys[ord[i]] - (uint64_t)lo) >> shift & (BUCKETS - 1)]++] = ord[i];
        uint32_t *swap = ord;
        ord = tmp;
        tmp = swap;
    }
out:
    free(tmp);
    free(count);
    if (rc) {
        free(ord);
        return rc;
    }
    *out = ord;
    return 0;
}

static inline uint64_t frame_hash(int64_t fid, int64_t line)
{
    uint64_t h = (uint64_t)fid * 0x9E3779B97F4A7C15ull ^ (uint64_t)line * 0xC2B2AE3D27D4EB4Full;
    return h ^ (h >> 29);
}

static int fmap_grow(loader *l)
{
    size_t slots = l->fmap_slots ? l->fmap_slots * 2 : 1024;
    uint32_t *m = calloc(slots, sizeof(*m));
    if (!m)
        return -ENOMEM;
    for (size_t k = 0; k < l->n_frames; k++) {
        size_t i = frame_hash(l->frames[k].fid, l->frames[k].line) & (slots - 1);
        while (m[i])
            i = (i + 1) & (slots - 1);
        m[i] = (uint32_t)k + 1;
    }
    free(l->fmap);
    l->fmap = m;
    l->fmap_slots = slots;
    return 0;
}

/* The index of frame (fid, line) among the distinct frames, added if new;
 * negative errno. */
static int64_t frame_index(loader *l, int64_t fid, int64_t line)
{
    if ((l->n_frames + 1) * 2 > l->fmap_slots) {
        if (l->n_frames >= UINT32_MAX - 1)
            return -ENOMEM;
        int rc = fmap_grow(l);
        if (rc)
            return rc;
    }
    size_t mask = l->fmap_slots - 1;
    size_t i = frame_hash(fid, line) & mask;
    for (uint32_t v; (v = l->fmap[i]); i = (i + 1) & mask) {
        const frame *f = &l->frames[v - 1];
        if (f->fid == fid && f->line == line)
            return v - 1;
    }
    if (l->n_frames == l->cap_frames) {
        size_t cap = l->cap_frames ? l->cap_frames * 2 : 256;
        frame *tmp = realloc(l->frames, cap * sizeof(*tmp));
        if (!tmp)
            return -ENOMEM;
        l->frames = tmp;
        l->cap_frames = cap;
    }
    l->frames[l->n_frames] = (frame){.fid = fid, .line = line, .loc = 0};
    l->fmap[i] = (uint32_t)l->n_frames + 1;
    return (int64_t)l->n_frames++;
}

/* One stack (l->uids[i]): its frames as distinct-frame indices appended
 * to fidx. */
static int stack_row(void *arg, size_t i, const unsigned char *d, size_t len)
{
    loader *l = arg;
    size_t pos = 0;
    /* At least 2 bytes per frame. */
    if (l->n_fidx + len / 2 + 1 > l->cap_fidx) {
        size_t cap = l->cap_fidx ? l->cap_fidx * 2 : 4096;
        while (cap < l->n_fidx + len / 2 + 1)
            cap *= 2;
        uint32_t *tmp = realloc(l->fidx, cap * sizeof(*tmp));
        if (!tmp)
            return -ENOMEM;
        l->fidx = tmp;
        l->cap_fidx = cap;
    }
    span sp = {.off = l->n_fidx, .len = 0};
    while (pos < len) {
        uint64_t fid;
        int64_t line;
        if (store__get_uvarint(d, len, &pos, &fid) || store__get_svarint(d, len, &pos, &line) ||
            fid == 0 || fid > INT64_MAX)
            return -EIO;
        int64_t k = frame_index(l, (int64_t)fid, line);
        if (k < 0)
            return (int)k;
        l->fidx[l->n_fidx++] = (uint32_t)k;
        sp.len++;
    }
    l->spans[i] = sp;
    return 0;
}

/* One functions row: its profile function (or unsymbolized location). */
static int function_row(void *arg, sqlite3_stmt *st, size_t i)
{
    loader *l = arg;
    (void)i;
    const char *name, *sys, *file;
    int64_t value;
    int rc = text_col(st, 1, &name);
    if (!rc)
        rc = text_col(st, 2, &sys);
    if (!rc)
        rc = text_col(st, 3, &file);
    if (rc)
        return rc;
    int64_t start_line = sqlite3_column_int64(st, 4);
    if (start_line == -1) {
        uint64_t loc = 0;
        rc = unsymbolized_location(l, name, file, &loc);
        value = -(int64_t)loc;
    } else {
        uint64_t fid = pprof_add_function(l->p, name, sys, file, start_line);
        rc = fid ? 0 : -ENOMEM;
        value = (int64_t)fid;
    }
    if (!rc)
        rc = store__idset_put(&l->fns, sqlite3_column_int64(st, 0), value);
    return rc;
}

/* The stacks of the set: the distinct stack ids (sorted, not hashed),
 * their frames fetched in one id-ordered pass, the functions they use in
 * another, then one location per distinct frame. Per sample only the
 * index of its stack remains. */
static int load_stacks(loader *l, const store__set_reader *r)
{
    uint32_t *order = NULL;
    int64_t *fids = NULL;
    unsigned char *done = NULL;
    size_t n = r->n_samples;
    int rc = sort_order(r->stack_ids, n, &order);
    if (rc)
        return rc;
    l->sample_stack = malloc((n ? n : 1) * sizeof(*l->sample_stack));
    l->uids = malloc((n ? n : 1) * sizeof(*l->uids));
    if (!l->sample_stack || !l->uids) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < n; j++) {
        int64_t id = r->stack_ids[order[j]];
        if (id <= 0) {
            rc = -EIO;
            goto out;
        }
        if (!l->n_uids || l->uids[l->n_uids - 1] != id)
            l->uids[l->n_uids++] = id;
        l->sample_stack[order[j]] = (uint32_t)(l->n_uids - 1);
    }
    l->spans = calloc(l->n_uids ? l->n_uids : 1, sizeof(*l->spans));
    if (!l->spans) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = store__stacks_scan(l->c, l->uids, l->n_uids, stack_row, l)))
        goto out;

    /* The distinct functions, in id order. */
    fids = malloc((l->n_frames ? l->n_frames : 1) * sizeof(*fids));
    if (!fids) {
        rc = -ENOMEM;
        goto out;
    }
    size_t n_fns = 0;
    for (size_t k = 0; k < l->n_frames; k++) {
        int64_t fid = l->frames[k].fid;
        if (store__idset_get(&l->fns, fid, NULL))
            continue;
        if ((rc = store__idset_put(&l->fns, fid, 0)))
            goto out;
        fids[n_fns++] = fid;
    }
    qsort(fids, n_fns, sizeof(*fids), id_cmp);
    if ((rc = store__scan_ids(l->c, SQL_FUNCTION_SCAN, fids, n_fns, function_row, l)))
        goto out;

    /* Locations, made in order of first use (as ingest saw them). */
    done = calloc(l->n_uids ? l->n_uids : 1, 1);
    if (!done) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t u = l->sample_stack[i];
        if (done[u])
            continue;
        done[u] = 1;
        const span *sp = &l->spans[u];
        if (sp->len > l->max_depth)
            l->max_depth = sp->len;
        for (size_t j = sp->off; j < sp->off + sp->len; j++) {
            frame *f = &l->frames[l->fidx[j]];
            if (!f->loc) {
                int64_t pfid;
                if (!store__idset_get(&l->fns, f->fid, &pfid)) {
                    rc = -EIO;
                    goto out;
                }
                if (pfid < 0) {
                    f->loc = (uint64_t)-pfid;
                } else {
                    pprof_line pl = {.function_id = (uint64_t)pfid, .line = f->line, .column = 0};
                    f->loc = pprof_add_location(l->p, 0, 0, &pl, 1);
                }
                if (!f->loc) {
                    rc = -ENOMEM;
                    goto out;
                }
            }
        }
    }
    l->locs = malloc((l->max_depth ? l->max_depth : 1) * sizeof(*l->locs));
    if (!l->locs)
        rc = -ENOMEM;
out:
    free(order);
    free(fids);
    free(done);
    return rc;
}

static int load_meta(loader *l, const unsigned char *d, size_t len)
{
    size_t pos = 0;
    uint64_t n, v[2];
    int64_t idx[2];
    int rc;
    if (store__get_uvarint(d, len, &pos, &n) || n > len)
        return -EIO;
    for (uint64_t t = 0; t < n; t++) {
        for (int k = 0; k < 2; k++)
            if (store__get_uvarint(d, len, &pos, &v[k]) ||
                (rc = load_string(l, (int64_t)v[k], &idx[k])) < 0)
                return -EIO;
        if ((rc = pprof_add_sample_type(l->p, l->p->strings[idx[0]], l->p->strings[idx[1]])))
            return rc;
    }
    int64_t f[5];
    for (int k = 0; k < 5; k++) {
        uint64_t u;
        if (store__get_uvarint(d, len, &pos, &u) || load_string(l, (int64_t)u, &f[k]))
            return -EIO;
    }
    l->p->period_type.type = f[0];
    l->p->period_type.unit = f[1];
    l->p->default_sample_type = f[2];
    l->p->drop_frames = f[3];
    l->p->keep_frames = f[4];
    if (store__get_uvarint(d, len, &pos, &n) || n > len)
        return -EIO;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t u;
        int64_t ci;
        if (store__get_uvarint(d, len, &pos, &u) || load_string(l, (int64_t)u, &ci))
            return -EIO;
        if ((rc = pprof_add_comment(l->p, l->p->strings[ci])))
            return rc;
    }
    return pos == len ? 0 : -EIO;
}

int store_profile_load(store *s, int64_t id, pprof_profile **out, store_profile_info *info)
{
    loader l;
    store__set_reader r;
    pprof_label *labels = NULL;
    size_t labels_cap = 0;
    int rc;
    bool have_set = false;
    if (!s || !out)
        return -EINVAL;
    *out = NULL;
    memset(&l, 0, sizeof(l));
    memset(&r, 0, sizeof(r));
    store__idset_init(&l.strs);
    store__idset_init(&l.fns);
    l.s = s;
    l.p = pprof_new();
    if (!l.p)
        return -ENOMEM;

    /* A whole profile: a bulk read (leaves a reader to short queries). */
    store__conn *rd = store__reader_get(s, true);
    l.c = rd;
    /* One read transaction, so the profile and the rows it refers to come
     * from the same snapshot even if retention runs meanwhile. */
    rc = store__exec(rd->db, "BEGIN");
    if (rc)
        goto unlock;
    sqlite3_stmt *st = store__stmt(rd, SQL_PROFILE_LOAD);
    if (!st) {
        rc = -EIO;
        goto end;
    }
    sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? -ENOENT : store__errno(src);
        sqlite3_reset(st);
        goto end;
    }
    store_profile_info tmp_info;
    store__info_from_row(st, &tmp_info);
    int64_t delta = sqlite3_column_int64(st, 8);
    l.p->period = sqlite3_column_int64(st, 9);
    l.p->time_nanos = (int64_t)((uint64_t)tmp_info.time_ns + (uint64_t)delta);
    l.p->duration_nanos = tmp_info.duration_ns;
    /* Copy the meta blob: loading strings reuses the connection. */
    size_t meta_len = (size_t)sqlite3_column_bytes(st, 10);
    int64_t set_id = sqlite3_column_int64(st, 11);
    unsigned char *meta = malloc(meta_len ? meta_len : 1);
    if (!meta) {
        rc = -ENOMEM;
        sqlite3_reset(st);
        goto end;
    }
    if (meta_len)
        memcpy(meta, sqlite3_column_blob(st, 10), meta_len);
    sqlite3_reset(st);
    rc = store__set_load(rd, set_id, &r);
    if (rc) {
        free(meta);
        rc = rc == -ENOMEM ? rc : -EIO;
        goto end;
    }
    have_set = true;
    rc = load_meta(&l, meta, meta_len);
    free(meta);
    if (rc)
        goto end;
    if (r.n_types != l.p->n_sample_types) {
        rc = -EIO;
        goto end;
    }
    if ((rc = load_stacks(&l, &r)))
        goto end;
    for (size_t i = 0; i < r.n_samples; i++) {
        const span sp = l.spans[l.sample_stack[i]];
        for (size_t j = 0; j < sp.len; j++)
            l.locs[j] = l.frames[l.fidx[sp.off + j]].loc;
        size_t nl = r.label_off[i + 1] - r.label_off[i];
        if (nl > labels_cap) {
            pprof_label *tmp = realloc(labels, nl * sizeof(*labels));
            if (!tmp) {
                rc = -ENOMEM;
                goto end;
            }
            labels = tmp;
            labels_cap = nl;
        }
        for (size_t j = 0; j < nl; j++) {
            const int64_t *src_l = &r.labels[(r.label_off[i] + j) * 4];
            pprof_label *pl = &labels[j];
            memset(pl, 0, sizeof(*pl));
            if ((rc = load_string(&l, src_l[0], &pl->key)) ||
                (rc = load_string(&l, src_l[1], &pl->str)) ||
                (rc = load_string(&l, src_l[3], &pl->num_unit)))
                goto end;
            pl->num = src_l[2];
        }
        rc = pprof_add_sample(l.p, l.locs, sp.len, r.values + i * r.n_types, labels, nl);
        if (rc)
            goto end;
    }
    if (info)
        *info = tmp_info;
end:
    store__exec_best_effort(rd->db, "COMMIT");
unlock:
    store__reader_put(s, rd);
    if (have_set)
        store__set_free(&r);
    free(labels);
    free(l.uids);
    free(l.sample_stack);
    free(l.spans);
    free(l.fidx);
    free(l.locs);
    free(l.frames);
    free(l.fmap);
    store__idset_free(&l.strs);
    store__idset_free(&l.fns);
    for (size_t i = 0; i < l.n_maps; i++)
        free(l.map_files[i]);
    free(l.map_files);
    free(l.map_ids);
    if (rc) {
        pprof_free(l.p);
        return rc;
    }
    *out = l.p;
    return 0;
}

typedef struct load_job {
    store *s;
    int64_t id;
    pprof_profile *p;
    store_profile_info info;
    int rc;
} load_job;

static void *load_job_main(void *arg)
{
    load_job *j = arg;
    j->rc = store_profile_load(j->s, j->id, &j->p, &j->info);
    return NULL;
}

int store_profiles_load(store *s, const int64_t *ids, size_t n, pprof_profile **out,
                        store_profile_info *infos)
{
    load_job jobs[STORE_LOAD_MAX];
    pthread_t th[STORE_LOAD_MAX];
    bool started[STORE_LOAD_MAX] = {false};
    if (!s || !ids || !out || n == 0 || n > STORE_LOAD_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        jobs[i] = (load_job){.s = s, .id = ids[i], .p = NULL, .rc = 0};
    }
    /* Helpers take jobs 1..n-1; the caller loads job 0 meanwhile. Nobody
     * holds a connection while waiting for another, so no deadlock. */
    for (size_t i = 1; i < n; i++)
        started[i] = pthread_create(&th[i], NULL, load_job_main, &jobs[i]) == 0;
    load_job_main(&jobs[0]);
    for (size_t i = 1; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            load_job_main(&jobs[i]);
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = jobs[i].rc;
    for (size_t i = 0; i < n; i++) {
        if (rc) {
            pprof_free(jobs[i].p);
            continue;
        }
        out[i] = jobs[i].p;
        if (infos)
            infos[i] = jobs[i].info;
    }
    return rc;
}

typedef struct agg {
    store_stack_value *arr;
    size_t n, cap;
    store__idset index; /* stack id → index in arr */
} agg;

int store_profile_stacks(store *s, int64_t profile_id, int sample_index, store_stack_value **out,
                         size_t *n_out)
{
    store__set_reader r;
    agg a;
    bool have_set = false;
    int rc;
    if (!s || !out || !n_out || sample_index < 0)
        return -EINVAL;
    *out = NULL;
    *n_out = 0;
    memset(&a, 0, sizeof(a));
    store__idset_init(&a.index);
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = store__stmt(rd, SQL_PROFILE_SET);
    if (!st) {
        rc = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, profile_id);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? -ENOENT : store__errno(src);
        sqlite3_reset(st);
        goto out;
    }
    int64_t set_id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    rc = store__set_load(rd, set_id, &r);
    if (rc) {
        rc = rc == -ENOMEM ? rc : -EIO;
        goto out;
    }
    have_set = true;
    if ((size_t)sample_index >= r.n_types) {
        rc = -EINVAL;
        goto out;
    }
    for (size_t i = 0; i < r.n_samples; i++) {
        int64_t idx, v = r.values[i * r.n_types + (size_t)sample_index];
        if (store__idset_get(&a.index, r.stack_ids[i], &idx)) {
            a.arr[idx].value += v;
            continue;
        }
        if (a.n == a.cap) {
            size_t cap = a.cap ? a.cap * 2 : 64;
            store_stack_value *tmp = realloc(a.arr, cap * sizeof(*tmp));
            if (!tmp) {
                rc = -ENOMEM;
                goto out;
            }
            a.arr = tmp;
            a.cap = cap;
        }
        if ((rc = store__idset_put(&a.index, r.stack_ids[i], (int64_t)a.n)))
            goto out;
        a.arr[a.n++] = (store_stack_value){.stack_id = r.stack_ids[i], .value = v};
    }
out:
    store__reader_put(s, rd);
    if (have_set)
        store__set_free(&r);
    store__idset_free(&a.index);
    if (rc) {
        free(a.arr);
        return rc;
    }
    *out = a.arr;
    *n_out = a.n;
    return 0;
}

/* Calls fn(arg, function, file, line) for each frame of a stack, leaf first,
 * until fn returns non-zero (1 = stop, negative = error), on reader rd. */
static int each_frame(store__conn *rd, int64_t stack_id,
                      int (*fn)(void *, const char *, const char *, int64_t), void *arg)
{
    lw_buf buf;
    lw_buf_init(&buf, STORE_STACK_MAX_BYTES);
    int rc = store__stack_get(rd, stack_id, &buf);
    const unsigned char *frames = (const unsigned char *)buf.data;
    size_t len = rc ? 0 : buf.len, pos = 0;
    while (pos < len && !rc) {
        uint64_t fid;
        int64_t line;
        if (store__get_uvarint(frames, len, &pos, &fid) ||
            store__get_svarint(frames, len, &pos, &line)) {
            rc = -EIO;
            break;
        }
        sqlite3_stmt *st = store__stmt(rd, SQL_FUNCTION_GET);
        if (!st) {
            rc = -EIO;
            break;
        }
        sqlite3_bind_int64(st, 1, (int64_t)fid);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            const char *name, *file;
            rc = text_col(st, 0, &name);
            if (!rc)
                rc = text_col(st, 2, &file);
            if (!rc)
                rc = fn(arg, name, file, line);
        } else {
            rc = src == SQLITE_DONE ? -EIO : store__errno(src);
        }
        sqlite3_reset(st);
    }
    lw_buf_cleanup(&buf);
    return rc < 0 ? rc : 0;
}

static int describe_frame(void *arg, const char *name, const char *file, int64_t line)
{
    lw_buf *out = arg;
    return lw_buf_printf(out, "%s%s (%s:%" PRId64 ")", out->len ? "\n" : "", name,
                         file[0] ? file : "?", line);
}

int store_stack_describe(store *s, int64_t stack_id, lw_buf *out)
{
    if (!s || !out)
        return -EINVAL;
    store__conn *rd = store__reader_get(s, false);
    int rc = each_frame(rd, stack_id, describe_frame, out);
    store__reader_put(s, rd);
    return rc;
}

/* Frames that say where the runtime, the allocator or our agent are, not
 * where the program is: Go's runtime (and its linkname shims such as
 * sync.runtime_Semacquire), libc's allocator and thread start-up, the
 * leakwatch agent. */
static bool boring_frame(const char *name)
{
    static const char *const prefixes[] = {
        "runtime.", "runtime/",    "malloc",      "calloc",         "realloc",   "free",
        "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc", "__libc_",
        "__GI_",    "_int_",       "lw_agent",    "agent_",         "start_thread", "clone",
        "__clone",  "pthread_",    "_Znwm",       "_Znam",          "operator new",
        "__interceptor_", "_start", "__start",
    };
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i])))
            return true;
    return strstr(name, ".runtime_") != NULL;
}

typedef struct top_ctx {
    char *function;
    size_t function_len;
    char *location;
    size_t location_len;
    bool have_leaf;
    bool found;
} top_ctx;

static void top_set(top_ctx *t, const char *name, const char *file, int64_t line)
{
    snprintf(t->function, t->function_len, "%s", name);
    snprintf(t->location, t->location_len, "%s:%" PRId64, file[0] ? file : "?", line);
}

static int top_frame(void *arg, const char *name, const char *file, int64_t line)
{
    top_ctx *t = arg;
    if (!t->have_leaf) {
        top_set(t, name, file, line);
        t->have_leaf = true;
    }
    if (boring_frame(name))
        return 0;
    top_set(t, name, file, line);
    t->found = true;
    return 1;
}

int store_stack_top_frame(store *s, int64_t stack_id, char *function, size_t function_len,
                          char *location, size_t location_len)
{
    if (!s || !function || !function_len || !location || !location_len)
        return -EINVAL;
    top_ctx t = {function, function_len, location, location_len, false, false};
    function[0] = '\0';
    location[0] = '\0';
    store__conn *rd = store__reader_get(s, false);
    /* An empty stack (Go lists goroutines caught without one) has no top
     * frame: both strings stay empty. */
    int rc = each_frame(rd, stack_id, top_frame, &t);
    store__reader_put(s, rd);
    return rc;
}
