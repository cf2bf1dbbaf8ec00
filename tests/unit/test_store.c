/* test_store.c — unit tests of storage/ on real SQLite files.
 *
 * Profiles are built with the pprof builder API (goroutine-like, heap-like
 * and random ones), stored, rebuilt and compared: totals, stack hashes as a
 * multiset with their values, labels, metadata. Then the database itself:
 * dedup growth, retention by age and size (the file shrinks), the lock, a
 * foreign or corrupt file left byte-identical, a full database
 * (max_page_count) that recovers, daemon state, series, listings, top
 * frames, and a threaded ingest-while-reading run; batched loads of
 * shuffled profiles with gaps in their stack ids; the reader pool (distinct
 * connections reading at once, bulk reads leaving one to short queries,
 * loaders + short queries + ingest in threads). Files live in a fresh
 * directory under build/test-work, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "store_int.h" /* the reader pool, for test_reader_pool */

#include <zlib.h>

#define SEC 1000000000LL
#define T0 (1700000000LL * SEC)

static char g_dir[512];
static int g_seq;

static void db_path(char *out, size_t len)
{
    snprintf(out, len, "%s/db%d/leakwatch.db", g_dir, ++g_seq);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* ---- profile builders ---------------------------------------------------- */

static uint64_t fn(pprof_profile *p, const char *name, const char *file)
{
    uint64_t id = pprof_add_function(p, name, name, file, 1);
    assert_true(id > 0);
    return id;
}

static uint64_t loc1(pprof_profile *p, uint64_t f, int64_t line)
{
    pprof_line l = {.function_id = f, .line = line};
    uint64_t id = pprof_add_location(p, 0, 0x1000 + (uint64_t)line, &l, 1);
    assert_true(id > 0);
    return id;
}

/* A goroutine profile: n_blocked goroutines parked in main.blockedForever
 * (with a pprof label), two in a ticker loop (an inlined frame), one main. */
static pprof_profile *goroutine_profile(int64_t n_blocked)
{
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(pprof_add_sample_type(p, "goroutine", "count"), 0);
    assert_int_equal(pprof_set_period(p, "goroutine", "count", 1), 0);
    assert_int_equal(pprof_add_comment(p, "test profile"), 0);
    p->time_nanos = T0 + 123;
    uint64_t gopark = fn(p, "runtime.gopark", "/usr/lib/go/src/runtime/proc.go");
    uint64_t chanrecv = fn(p, "runtime.chanrecv1", "/usr/lib/go/src/runtime/chan.go");
    uint64_t blocked = fn(p, "main.blockedForever", "/src/gosvc/main.go");
    uint64_t tick = fn(p, "main.tickLoop", "/src/gosvc/main.go");
    uint64_t inl = fn(p, "time.(*Ticker).C", "/usr/lib/go/src/time/tick.go");
    uint64_t mainf = fn(p, "main.main", "/src/gosvc/main.go");
    uint64_t goexit = fn(p, "runtime.goexit", "/usr/lib/go/src/runtime/asm_amd64.s");

    uint64_t l_gopark = loc1(p, gopark, 363);
    uint64_t l_chan = loc1(p, chanrecv, 442);
    uint64_t l_blocked = loc1(p, blocked, 40);
    uint64_t l_goexit = loc1(p, goexit, 1594);
    pprof_line inlined[2] = {{.function_id = inl, .line = 12}, {.function_id = tick, .line = 55}};
    uint64_t l_tick = pprof_add_location(p, 0, 0x2000, inlined, 2);
    assert_true(l_tick > 0);
    uint64_t l_main = loc1(p, mainf, 80);

    uint64_t s1[] = {l_gopark, l_chan, l_blocked, l_goexit};
    uint64_t s2[] = {l_gopark, l_tick, l_goexit};
    uint64_t s3[] = {l_gopark, l_main};
    pprof_label lab = {.key = pprof_intern(p, "handler"), .str = pprof_intern(p, "/leak")};
    assert_true(lab.key > 0 && lab.str > 0);
    int64_t v1 = n_blocked, v2 = 2, v3 = 1;
    assert_int_equal(pprof_add_sample(p, s1, 4, &v1, &lab, 1), 0);
    assert_int_equal(pprof_add_sample(p, s2, 3, &v2, NULL, 0), 0);
    assert_int_equal(pprof_add_sample(p, s3, 2, &v3, NULL, 0), 0);
    return p;
}

/* A heap profile with the four Go sample types and numeric "bytes" labels. */
static pprof_profile *heap_profile(int64_t scale)
{
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    const char *types[4][2] = {{"alloc_objects", "count"}, {"alloc_space", "bytes"},
                               {"inuse_objects", "count"}, {"inuse_space", "bytes"}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pprof_add_sample_type(p, types[i][0], types[i][1]), 0);
    assert_int_equal(pprof_set_period(p, "space", "bytes", 524288), 0);
    assert_int_equal(pprof_set_default_sample_type(p, "alloc_space"), 0);
    p->time_nanos = T0;
    uint64_t malloc_f = fn(p, "runtime.mallocgc", "/usr/lib/go/src/runtime/malloc.go");
    uint64_t newobj = fn(p, "runtime.newobject", "/usr/lib/go/src/runtime/malloc.go");
    uint64_t leak = fn(p, "main.leakSubstring", "/src/gosvc/main.go");
    uint64_t other = fn(p, "main.churn", "/src/gosvc/main.go");
    uint64_t a = loc1(p, malloc_f, 1000), b = loc1(p, newobj, 1200), c = loc1(p, leak, 70),
             d = loc1(p, other, 90);
    uint64_t s1[] = {a, b, c}, s2[] = {a, d};
    pprof_label lab = {.key = pprof_intern(p, "bytes"), .num = 1048576};
    int64_t v1[4] = {10 * scale, 10 * scale * 1048576, 5 * scale, 5 * scale * 1048576};
    int64_t v2[4] = {1000, 64000, 3, 192};
    assert_int_equal(pprof_add_sample(p, s1, 3, v1, &lab, 1), 0);
    lab.num = 64;
    assert_int_equal(pprof_add_sample(p, s2, 2, v2, &lab, 1), 0);
    return p;
}

static uint64_t rnd(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return *st;
}

/* A random heap-like profile: n_samples samples over n_funcs functions,
 * distinct for each seed. */
static pprof_profile *random_profile(uint64_t seed, size_t n_samples, size_t n_funcs)
{
    uint64_t st = seed * 0x9E3779B97F4A7C15ULL + 1;
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(pprof_add_sample_type(p, "inuse_objects", "count"), 0);
    assert_int_equal(pprof_add_sample_type(p, "inuse_space", "bytes"), 0);
    p->time_nanos = T0;
    uint64_t *locs = malloc(n_funcs * sizeof(*locs));
    assert_non_null(locs);
    for (size_t i = 0; i < n_funcs; i++) {
        char name[64], file[64];
        snprintf(name, sizeof(name), "pkg%" PRIu64 ".func%zu", seed % 7, i);
        snprintf(file, sizeof(file), "/src/pkg%" PRIu64 "/file%zu.go", seed % 7, i % 13);
        locs[i] = loc1(p, fn(p, name, file), (int64_t)(rnd(&st) % 5000) + 1);
    }
    for (size_t i = 0; i < n_samples; i++) {
        uint64_t stack[16];
        size_t depth = 2 + rnd(&st) % 14;
        for (size_t k = 0; k < depth; k++)
            stack[k] = locs[rnd(&st) % n_funcs];
        int64_t v[2] = {(int64_t)(rnd(&st) % 1000), (int64_t)(rnd(&st) % 100000000)};
        assert_int_equal(pprof_add_sample(p, stack, depth, v, NULL, 0), 0);
    }
    free(locs);
    return p;
}

/* ---- comparison ------------------------------------------------------------ */

typedef struct hv {
    uint64_t hash;
    int64_t v[4];
} hv;

static int hv_cmp(const void *a, const void *b)
{
    const hv *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return memcmp(x->v, y->v, sizeof(x->v));
}

static hv *stack_multiset(const pprof_profile *p)
{
    hv *arr = calloc(p->n_samples + 1, sizeof(hv));
    assert_non_null(arr);
    for (size_t i = 0; i < p->n_samples; i++) {
        arr[i].hash = pprof_stack_hash(p, &p->samples[i]);
        for (size_t t = 0; t < p->n_sample_types && t < 4; t++)
            arr[i].v[t] = p->samples[i].values[t];
    }
    qsort(arr, p->n_samples, sizeof(hv), hv_cmp);
    return arr;
}

static const char *str(const pprof_profile *p, int64_t i)
{
    return p->strings[i];
}

static void assert_same_profile(const pprof_profile *a, const pprof_profile *b)
{
    assert_int_equal(a->n_sample_types, b->n_sample_types);
    for (size_t t = 0; t < a->n_sample_types; t++) {
        assert_string_equal(str(a, a->sample_types[t].type), str(b, b->sample_types[t].type));
        assert_string_equal(str(a, a->sample_types[t].unit), str(b, b->sample_types[t].unit));
    }
    assert_string_equal(str(a, a->period_type.type), str(b, b->period_type.type));
    assert_string_equal(str(a, a->period_type.unit), str(b, b->period_type.unit));
    assert_int_equal(a->period, b->period);
    assert_int_equal(a->time_nanos, b->time_nanos);
    assert_int_equal(a->duration_nanos, b->duration_nanos);
    assert_string_equal(str(a, a->default_sample_type), str(b, b->default_sample_type));
    assert_int_equal(a->n_comments, b->n_comments);
    for (size_t k = 0; k < a->n_comments; k++)
        assert_string_equal(str(a, a->comments[k]), str(b, b->comments[k]));
    int64_t ta[8] = {0}, tb[8] = {0};
    pprof_totals(a, ta);
    pprof_totals(b, tb);
    for (size_t t = 0; t < a->n_sample_types; t++) {
        printf("  total[%zu]: original %" PRId64 ", rebuilt %" PRId64 "\n", t, ta[t], tb[t]);
        assert_int_equal(ta[t], tb[t]);
    }
    assert_int_equal(a->n_samples, b->n_samples);
    hv *ha = stack_multiset(a), *hb = stack_multiset(b);
    for (size_t i = 0; i < a->n_samples; i++) {
        assert_int_equal(ha[i].hash, hb[i].hash);
        assert_memory_equal(ha[i].v, hb[i].v, sizeof(ha[i].v));
    }
    printf("  %zu samples: stack hashes and values match as multisets\n", a->n_samples);
    free(ha);
    free(hb);
    /* Labels, sample by sample (the order of samples is kept). */
    for (size_t i = 0; i < a->n_samples; i++) {
        assert_int_equal(a->samples[i].n_labels, b->samples[i].n_labels);
        for (size_t j = 0; j < a->samples[i].n_labels; j++) {
            const pprof_label *x = &a->samples[i].labels[j], *y = &b->samples[i].labels[j];
            assert_string_equal(str(a, x->key), str(b, y->key));
            assert_string_equal(str(a, x->str), str(b, y->str));
            assert_int_equal(x->num, y->num);
            assert_string_equal(str(a, x->num_unit), str(b, y->num_unit));
        }
    }
}

/* ---- fixtures --------------------------------------------------------------- */

static store *open_ok(const char *path, const store_options *opt)
{
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    int rc = store_open(path, opt, &s, err, sizeof(err));
    if (rc)
        fail_msg("store_open(%s): %d %s", path, rc, err);
    return s;
}

static int64_t target(store *s, const char *job, const char *instance)
{
    store_label l[] = {{"job", job}, {"instance", instance}, {"env", "test"}};
    int64_t id = 0;
    assert_int_equal(store_target_upsert(s, l, 3, &id), 0);
    assert_true(id > 0);
    return id;
}

/* A fresh store (its file name in path) with one target. */
static store *open_with_target(char *path, size_t len, const char *job, const char *instance,
                               int64_t *tid)
{
    db_path(path, len);
    store *s = open_ok(path, NULL);
    *tid = target(s, job, instance);
    return s;
}

/* A fresh store with two targets of job "svc". */
static store *open_two_targets(char *path, size_t len, int64_t *t1, int64_t *t2)
{
    store *s = open_with_target(path, len, "svc", "127.0.0.1:1", t1);
    *t2 = target(s, "svc", "127.0.0.1:2");
    return s;
}

static int64_t ingest_ok(store *s, int64_t tid, const char *type, int64_t t, const pprof_profile *p)
{
    char err[STORE_ERR_LEN] = "";
    int64_t id = 0;
    int rc = store_ingest(s, tid, type, t, p, &id, err, sizeof(err));
    if (rc)
        fail_msg("store_ingest: %d %s", rc, err);
    return id;
}

/* The first column of the first row of sql, run on a read-only connection
 * of its own (what a committed transaction left), or -1. */
static int64_t query_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static int64_t count_rows(const char *path, const char *table)
{
    char sql[512];
    assert_true(snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table) < (int)sizeof(sql));
    return query_int(path, sql);
}

/* Every stack of a file, rows and chunks alike (store__stacks_each). */
typedef struct stack_census {
    size_t n, cap;
    int64_t *ids;
    uint64_t *frame_hashes;
    bool damaged;
} stack_census;

static int census_add(void *arg, int64_t id, const unsigned char *frames, size_t len, bool damaged)
{
    stack_census *c = arg;
    if (damaged) {
        c->damaged = true;
        return 0;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->ids = realloc(c->ids, c->cap * sizeof(*c->ids));
        c->frame_hashes = realloc(c->frame_hashes, c->cap * sizeof(*c->frame_hashes));
        assert_non_null(c->ids);
        assert_non_null(c->frame_hashes);
    }
    c->ids[c->n] = id;
    c->frame_hashes[c->n++] = store__hash(frames, len);
    return 0;
}

static void census_take(const char *path, stack_census *c)
{
    memset(c, 0, sizeof(*c));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(store__stacks_each(db, 0, false, census_add, c), 0);
    sqlite3_close(db);
    assert_false(c->damaged);
}

static void census_free(stack_census *c)
{
    free(c->ids);
    free(c->frame_hashes);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* How many stacks the file holds, and its smallest and largest stack id
 * (0 when none). */
static int64_t count_stacks_ids(const char *path, int64_t *min_id, int64_t *max_id)
{
    stack_census c;
    census_take(path, &c);
    int64_t lo = 0, hi = 0;
    for (size_t i = 0; i < c.n; i++) {
        lo = i == 0 || c.ids[i] < lo ? c.ids[i] : lo;
        hi = c.ids[i] > hi ? c.ids[i] : hi;
    }
    if (min_id)
        *min_id = lo;
    if (max_id)
        *max_id = hi;
    census_free(&c);
    return (int64_t)c.n;
}

static int64_t count_stacks(const char *path)
{
    return count_stacks_ids(path, NULL, NULL);
}

/* Every stack is stored once (stacks are written in batches, by ids the
 * writer hands out, and looked up only when their hash is known): no two
 * stacks with one id, nor with the same frames. */
static void assert_stacks_unique(const char *path)
{
    stack_census c;
    census_take(path, &c);
    qsort(c.ids, c.n, sizeof(*c.ids), u64_cmp); /* ids are positive */
    qsort(c.frame_hashes, c.n, sizeof(*c.frame_hashes), u64_cmp);
    for (size_t i = 1; i < c.n; i++) {
        assert_true(c.ids[i - 1] != c.ids[i]);
        assert_true(c.frame_hashes[i - 1] != c.frame_hashes[i]);
    }
    census_free(&c);
}

static void check_integrity(store *s)
{
    char err[STORE_ERR_LEN] = "";
    int rc = store_integrity_check(s, err, sizeof(err));
    if (rc)
        fail_msg("integrity_check: %s", err);
}

/* Profile id loads back as want. */
static void assert_loads_as(store *s, int64_t id, const pprof_profile *want)
{
    pprof_profile *out = NULL;
    assert_int_equal(store_profile_load(s, id, &out, NULL), 0);
    assert_same_profile(want, out);
    pprof_free(out);
}

/* ---- tests --------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    pprof_profile *g = goroutine_profile(100);
    pprof_profile *h = heap_profile(3);
    h->duration_nanos = 5 * SEC;
    int64_t gid = ingest_ok(s, tid, "goroutine", T0 + SEC, g);
    int64_t hid = ingest_ok(s, tid, "heap", T0 + SEC, h);

    pprof_profile *out = NULL;
    store_profile_info info;
    assert_int_equal(store_profile_load(s, gid, &out, &info), 0);
    printf("goroutine profile %" PRId64 ":\n", gid);
    assert_same_profile(g, out);
    assert_int_equal(info.id, gid);
    assert_int_equal(info.target_id, tid);
    assert_string_equal(info.profile_type, "goroutine");
    assert_int_equal(info.time_ns, T0 + SEC);
    assert_int_equal(info.n_samples, 3);
    assert_int_equal(info.n_sample_types, 1);
    assert_int_equal(info.totals[0], 103);
    assert_string_equal(info.sample_types, "goroutine/count");
    pprof_free(out);

    assert_int_equal(store_profile_load(s, hid, &out, &info), 0);
    printf("heap profile %" PRId64 ":\n", hid);
    assert_same_profile(h, out);
    assert_string_equal(info.sample_types,
                        "alloc_objects/count,alloc_space/bytes,inuse_objects/count,inuse_space/bytes");
    assert_int_equal(info.duration_ns, 5 * SEC);
    pprof_free(out);

    /* Random, larger profiles (many shared stacks). */
    for (uint64_t seed = 1; seed <= 3; seed++) {
        pprof_profile *r = random_profile(seed, 2000, 300);
        int64_t rid = ingest_ok(s, tid, "heap", T0 + 10 * SEC + (int64_t)seed, r);
        assert_int_equal(store_profile_load(s, rid, &out, NULL), 0);
        printf("random profile seed %" PRIu64 ":\n", seed);
        assert_same_profile(r, out);
        pprof_free(out);
        pprof_free(r);
    }
    assert_int_equal(store_profile_load(s, 999999, &out, NULL), -ENOENT);
    assert_null(out);
    check_integrity(s);
    store_close(s);

    /* Everything survives a reopen, also read-only. */
    store_options ro = {.read_only = true};
    s = open_ok(path, &ro);
    assert_int_equal(store_profile_load(s, gid, &out, NULL), 0);
    assert_same_profile(g, out);
    pprof_free(out);
    char err[STORE_ERR_LEN];
    assert_int_equal(store_ingest(s, tid, "heap", T0, h, NULL, err, sizeof(err)), -EROFS);
    store_close(s);
    pprof_free(g);
    pprof_free(h);
}

static void test_unsymbolized(void **state)
{
    (void)state;
    char path[600];
    int64_t tid;
    store *s = open_with_target(path, sizeof(path), "c", "127.0.0.1:2", &tid);
    pprof_profile *p = pprof_new();
    assert_int_equal(pprof_add_sample_type(p, "inuse_space", "bytes"), 0);
    pprof_mapping m = {.memory_start = 0x400000, .memory_limit = 0x500000,
                       .filename = pprof_intern(p, "/usr/bin/svc"), .build_id = 0};
    uint64_t mid = pprof_add_mapping(p, &m);
    assert_true(mid > 0);
    /* Edge cases: a sample without locations, a function without a name
     * or file (empty keys in the caches); stored twice (memo path). */
    pprof_line anon = {.function_id = pprof_add_function(p, "", "", "", 0), .line = 0};
    assert_true(anon.function_id > 0);
    uint64_t l0 = pprof_add_location(p, 0, 0x10, &anon, 1);
    assert_true(l0 > 0);
    int64_t v0 = 1;
    assert_int_equal(pprof_add_sample(p, NULL, 0, &v0, NULL, 0), 0);
    assert_int_equal(pprof_add_sample(p, &l0, 1, &v0, NULL, 0), 0);
    uint64_t l1 = pprof_add_location(p, mid, 0x401234, NULL, 0);
    uint64_t l2 = pprof_add_location(p, mid, 0x405678, NULL, 0);
    assert_true(l1 && l2);
    uint64_t st[] = {l1, l2};
    int64_t v = 4096;
    assert_int_equal(pprof_add_sample(p, st, 2, &v, NULL, 0), 0);
    ingest_ok(s, tid, "heap", T0 - 1, p);
    int64_t id = ingest_ok(s, tid, "heap", T0, p);
    store_stack_value *sv = NULL;
    size_t n = 0;
    assert_int_equal(store_profile_stacks(s, id, 0, &sv, &n), 0);
    assert_int_equal(n, 3);
    char fname[64] = "x", floc[64] = "x";
    assert_int_equal(store_stack_top_frame(s, sv[0].stack_id, fname, sizeof(fname), floc,
                                           sizeof(floc)),
                     0);
    printf("empty stack top frame: \"%s\" \"%s\"\n", fname, floc);
    assert_string_equal(fname, "");
    assert_string_equal(floc, "");
    lw_buf d;
    lw_buf_init(&d, 4096);
    assert_int_equal(store_stack_describe(s, sv[2].stack_id, &d), 0);
    printf("unsymbolized stack:\n%s\n", d.data);
    assert_non_null(strstr(d.data, "svc+0x1234 (/usr/bin/svc:0)"));
    assert_non_null(strstr(d.data, "svc+0x5678"));
    lw_buf_cleanup(&d);
    free(sv);
    pprof_profile *out = NULL;
    assert_int_equal(store_profile_load(s, id, &out, NULL), 0);
    int64_t tot = 0;
    pprof_totals(out, &tot);
    assert_int_equal(tot, 4096 + 2);
    assert_same_profile(p, out);
    pprof_free(out);
    pprof_free(p);
    store_close(s);
}

static void test_dedup(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    store_close(s);
    int64_t size0 = file_size(path);
    pprof_profile *p = random_profile(42, 500, 200);

    s = open_ok(path, NULL);
    ingest_ok(s, tid, "heap", T0, p);
    store_close(s); /* checkpoints: the main file holds everything */
    int64_t size1 = file_size(path);
    s = open_ok(path, NULL);
    for (int i = 1; i < 100; i++)
        ingest_ok(s, tid, "heap", T0 + i * SEC, p);
    store_close(s);
    int64_t size100 = file_size(path);
    printf("empty %" PRId64 " B, after 1 profile %" PRId64 " B (+%" PRId64 "), after 100 %" PRId64
           " B (+%" PRId64 "); want growth(100) < 10 x growth(1)\n",
           size0, size1, size1 - size0, size100, size100 - size0);
    assert_true(size100 - size0 < 10 * (size1 - size0));
    int64_t n_sets = count_rows(path, "sample_sets"), n_stacks = count_stacks(path);
    printf("sample_sets %" PRId64 ", stacks %" PRId64 " (profile has %zu samples)\n", n_sets,
           n_stacks, p->n_samples);
    assert_int_equal(n_sets, 1);
    assert_true(n_stacks <= (int64_t)p->n_samples);
    assert_int_equal(count_rows(path, "profiles"), 100);
    pprof_free(p);
}

/* A copy of p with some values changed, some samples dropped, and a few
 * new samples (new stacks and labels) — as successive heap profiles. */
static pprof_profile *mutate(const pprof_profile *p, uint64_t seed)
{
    uint64_t st = seed + 77;
    pprof_profile *q = pprof_copy(p);
    assert_non_null(q);
    for (size_t i = 0; i < q->n_samples; i++)
        if (rnd(&st) % 10 == 0)
            for (size_t t = 0; t < q->n_sample_types; t++)
                q->samples[i].values[t] += (int64_t)(rnd(&st) % 100) - 20;
    /* Drop every 17th sample by swapping in the last one. */
    for (size_t i = 0; i < q->n_samples; i += 17)
        q->samples[i] = q->samples[--q->n_samples];
    pprof_label lab = {.key = pprof_intern(q, "bytes"), .num = (int64_t)seed};
    for (int k = 0; k < 5; k++) {
        uint64_t ids[3] = {q->locations[rnd(&st) % q->n_locations].id,
                           q->locations[rnd(&st) % q->n_locations].id,
                           q->locations[rnd(&st) % q->n_locations].id};
        int64_t v[2] = {(int64_t)seed, (int64_t)seed * 1000};
        assert_int_equal(pprof_add_sample(q, ids, 3, v, &lab, 1), 0);
    }
    return q;
}

static void test_delta_sets(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    pprof_profile *series[12];
    int64_t ids[12];
    series[0] = random_profile(4242, 3000, 400);
    for (int i = 1; i < 12; i++)
        series[i] = mutate(series[i - 1], (uint64_t)i);
    for (int i = 0; i < 12; i++)
        ids[i] = ingest_ok(s, tid, "heap", T0 + i * SEC, series[i]);
    store_close(s);
    int64_t n_sets = count_rows(path, "sample_sets");
    int64_t n_delta = count_rows(path, "sample_sets WHERE base_id IS NOT NULL");
    printf("12 changing profiles: %" PRId64 " sample sets, %" PRId64 " of them deltas\n", n_sets,
           n_delta);
    assert_int_equal(n_sets, 12);
    assert_true(n_delta >= 10);
    s = open_ok(path, NULL);
    for (int i = 0; i < 12; i++) {
        pprof_profile *out = NULL;
        assert_int_equal(store_profile_load(s, ids[i], &out, NULL), 0);
        printf("profile %d:\n", i);
        assert_same_profile(series[i], out);
        pprof_free(out);
    }
    /* Drop the first half: the keyframe stays while deltas need it. */
    int64_t deleted = 0;
    assert_int_equal(store_retention_apply(s, 6 * SEC, 0, T0 + 12 * SEC, &deleted), 0);
    printf("deleted %" PRId64 "\n", deleted);
    assert_int_equal(deleted, 6); /* times 0..5 s are older than 12 s - 6 s */
    for (int i = 6; i < 12; i++) {
        pprof_profile *out = NULL;
        assert_int_equal(store_profile_load(s, ids[i], &out, NULL), 0);
        assert_same_profile(series[i], out);
        pprof_free(out);
    }
    check_integrity(s);
    assert_int_equal(store_retention_apply(s, SEC, 0, T0 + 100 * SEC, &deleted), 0);
    assert_int_equal(deleted, 6);
    store_close(s);
    assert_int_equal(count_rows(path, "sample_sets"), 0);
    assert_int_equal(count_stacks(path), 0);
    for (int i = 0; i < 12; i++)
        pprof_free(series[i]);
}

/* The stack memo resolves a sample by its locations' tokens: a series whose
 * rows are reversed (the memo's window misses everything, its index finds
 * them), whose location ids are renumbered (same frames, other ids), and
 * the first order again with one new sample in front must resolve to the
 * same stacks — no new stack rows but the new sample's — and load back
 * exactly. */
static pprof_profile *reversed(const pprof_profile *p)
{
    pprof_profile *q = pprof_copy(p);
    assert_non_null(q);
    for (size_t i = 0, j = q->n_samples - 1; i < j; i++, j--) {
        pprof_sample t = q->samples[i];
        q->samples[i] = q->samples[j];
        q->samples[j] = t;
    }
    return q;
}

static void test_memo_reordered(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    pprof_profile *v[4];
    int64_t ids[4];
    v[0] = random_profile(99, 2000, 300);
    v[1] = reversed(v[0]);
    v[2] = pprof_copy(v[1]);
    assert_non_null(v[2]);
    /* Renumber the locations: id k becomes k + 1000 everywhere. */
    for (size_t i = 0; i < v[2]->n_locations; i++)
        v[2]->locations[i].id += 1000;
    for (size_t i = 0; i < v[2]->n_samples; i++)
        for (size_t k = 0; k < v[2]->samples[i].n_locations; k++)
            v[2]->samples[i].location_ids[k] += 1000;
    /* Through the wire format, so the copy's own id maps are rebuilt. */
    lw_buf wire;
    lw_buf_init(&wire, 64 << 20);
    char verr[256] = "";
    assert_int_equal(pprof_encode(v[2], false, &wire), 0);
    pprof_free(v[2]);
    v[2] = NULL;
    assert_int_equal(pprof_decode(wire.data, wire.len, NULL, &v[2], verr, sizeof(verr)), 0);
    lw_buf_cleanup(&wire);
    assert_int_equal(v[2]->locations[0].id, v[1]->locations[0].id + 1000);
    v[3] = pprof_copy(v[0]);
    assert_non_null(v[3]);
    uint64_t first[2] = {v[3]->locations[0].id, v[3]->locations[1].id};
    int64_t val[2] = {1, 100};
    assert_int_equal(pprof_add_sample(v[3], first, 2, val, NULL, 0), 0);
    pprof_sample last = v[3]->samples[v[3]->n_samples - 1];
    memmove(&v[3]->samples[1], &v[3]->samples[0], (v[3]->n_samples - 1) * sizeof(pprof_sample));
    v[3]->samples[0] = last;
    ids[0] = ingest_ok(s, tid, "heap", T0, v[0]);
    store_close(s);
    int64_t n_stacks = count_stacks(path);
    s = open_ok(path, NULL);
    /* The memo lives in the writer: all three after one open. */
    for (int i = 1; i < 4; i++)
        ids[i] = ingest_ok(s, tid, "heap", T0 + i * SEC, v[i]);
    store_close(s);
    int64_t n_after = count_stacks(path);
    printf("stacks: %" PRId64 " after the first profile, %" PRId64 " after all four\n", n_stacks,
           n_after);
    assert_true(n_after <= n_stacks + 1); /* v[3]'s one new sample */
    s = open_ok(path, NULL);
    for (int i = 0; i < 4; i++) {
        pprof_profile *out = NULL;
        assert_int_equal(store_profile_load(s, ids[i], &out, NULL), 0);
        printf("profile %d:\n", i);
        assert_same_profile(v[i], out);
        pprof_free(out);
    }
    check_integrity(s);
    store_close(s);
    for (int i = 0; i < 4; i++)
        pprof_free(v[i]);
}

/* store__idset_del keeps every other key findable (backward shift), and
 * the keyframe cache drops entries by id. */
static void test_idset_del(void **state)
{
    (void)state;
    store__idset set;
    store__idset_init(&set);
    for (int64_t k = 1; k <= 5000; k++)
        assert_int_equal(store__idset_put(&set, k * 7919, k), 0);
    for (int64_t k = 1; k <= 5000; k += 3)
        store__idset_del(&set, k * 7919);
    store__idset_del(&set, 123456789); /* absent: nothing happens */
    size_t n_present = 0;
    for (int64_t k = 1; k <= 5000; k++) {
        int64_t v = 0;
        bool present = store__idset_get(&set, k * 7919, &v);
        assert_int_equal(present, (k - 1) % 3 != 0);
        if (present) {
            assert_int_equal(v, k);
            n_present++;
        }
    }
    assert_int_equal(set.n_used, n_present);
    printf("5000 keys, every third deleted: %zu left, all found\n", n_present);
    store__idset_free(&set);

    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    store__set_reader r;
    memset(&r, 0, sizeof(r));
    for (int64_t id = 1; id <= 3; id++) {
        /* Grown for a bigger set once: the cache keeps only what it needs. */
        assert_int_equal(store__set_alloc(&r, id == 2 ? 5000 : 2, 1, 0), 0);
        r.n_samples = 2;
        r.stack_ids[0] = 1;
        r.stack_ids[1] = 2;
        r.values[0] = 10 * id;
        r.values[1] = 20;
        r.label_off[0] = r.label_off[1] = r.label_off[2] = 0;
        assert_true(store__kf_take(s, id, &r));
        assert_null(r.stack_ids); /* taken over, not copied */
    }
    assert_int_equal(s->kf.n, 3);
    assert_true(s->kf.bytes < 3 * 1024);
    assert_int_equal(store__set_alloc(&r, 2, 1, 0), 0);
    assert_false(store__kf_take(s, 3, &r)); /* cached already: r stays */
    assert_non_null(r.stack_ids);
    store__set_reader spare;
    memset(&spare, 0, sizeof(spare));
    store__kf_drop(&s->kf, 1, &spare); /* the last entry moves into its slot */
    assert_int_equal(spare.values[0], 10); /* its arrays, handed back */
    store__kf_drop(&s->kf, 42, &spare);
    assert_int_equal(spare.values[0], 10);
    assert_int_equal(s->kf.n, 2);
    for (int64_t id = 2; id <= 3; id++) {
        int64_t slot = -1;
        assert_true(store__idset_get(&s->kf.index, id, &slot));
        assert_int_equal(s->kf.ids[slot], id);
        assert_int_equal(s->kf.entries[slot].values[0], 10 * id);
    }
    assert_false(store__idset_get(&s->kf.index, 1, NULL));
    store__kf_drop(&s->kf, 2, NULL);
    assert_int_equal(s->kf.n, 1);
    store__set_free(&r);
    store__set_free(&spare);
    store_close(s);
}

/* Deltas of both layouts parse: the first one (every value a varint, as
 * older databases hold) and zero runs (what the writer makes now); a zero
 * run longer than its column is refused. */
static void test_delta_formats(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    store__set_reader base, cur, out;
    memset(&base, 0, sizeof(base));
    memset(&cur, 0, sizeof(cur));
    assert_int_equal(store__set_alloc(&base, 2, 1, 0), 0);
    base.stack_ids[0] = 4;
    base.stack_ids[1] = 6;
    base.values[0] = 100;
    base.values[1] = 200;
    memset(base.label_off, 0, 3 * sizeof(size_t));
    /* Old layout: n 3, n_types 1, match 1 1 0, new stack 9, values 0 +5 7,
     * the new row's label count 0. */
    const unsigned char v1[] = {3, 1, 1, 1, 0, 18, 0, 10, 14, 0};
    lw_buf packed;
    lw_buf_init(&packed, 1 << 20);
    assert_int_equal(store__pack(s, v1, sizeof(v1), &packed), 0);
    assert_int_equal(store__set_parse(packed.data, packed.len, true, &base, &out), 0);
    assert_int_equal(out.n_samples, 3);
    assert_int_equal(out.stack_ids[0], 4);
    assert_int_equal(out.stack_ids[1], 6);
    assert_int_equal(out.stack_ids[2], 9);
    assert_int_equal(out.values[0], 100);
    assert_int_equal(out.values[1], 205);
    assert_int_equal(out.values[2], 7);
    /* The writer's layout: the same set round-trips through it. */
    lw_buf raw;
    lw_buf_init(&raw, 1 << 20);
    assert_int_equal(store__set_encode_delta(&out, &base, SIZE_MAX, &raw), 0);
    const unsigned char *rd = (const unsigned char *)raw.data;
    assert_true(rd[1] == 0x81 && rd[2] == 0x01); /* n_types 1 | zero runs */
    assert_int_equal(store__pack(s, raw.data, raw.len, &packed), 0);
    assert_int_equal(store__set_parse(packed.data, packed.len, true, &base, &cur), 0);
    assert_true(store__set_equal(&out, &cur));
    printf("delta of 3 rows: %zu bytes in the old layout, %zu with zero runs\n", sizeof(v1),
           raw.len);
    /* One row (stack 9) matches no keyframe row: a limit of 0 new rows
     * refuses the delta and encodes nothing; a limit of 1 takes it. */
    lw_buf_reset(&raw);
    assert_int_equal(store__set_encode_delta(&out, &base, 0, &raw), -ERANGE);
    assert_int_equal(raw.len, 0);
    assert_int_equal(store__set_encode_delta(&out, &base, 1, &raw), 0);
    assert_true(raw.len > 0);
    /* (That row was beyond the keyframe's count: refused before matching.)
     * As many rows as the keyframe, one unmatched: refused by the count. */
    store__set_reader alt;
    memset(&alt, 0, sizeof(alt));
    assert_int_equal(store__set_alloc(&alt, 3, 1, 0), 0);
    for (int i = 0; i < 3; i++) {
        alt.stack_ids[i] = out.stack_ids[i];
        alt.values[i] = out.values[i] + 1;
        alt.label_off[i] = 0;
    }
    alt.label_off[3] = 0;
    alt.stack_ids[1] = 99;
    assert_int_equal(store__set_encode_delta(&alt, &out, 0, &raw), -ERANGE);
    assert_int_equal(store__set_encode_delta(&alt, &out, 1, &raw), 0);
    store__set_free(&cur);
    assert_int_equal(store__set_parse(raw.data, raw.len, true, &out, &cur), -EIO); /* raw, not packed */
    assert_int_equal(store__pack(s, raw.data, raw.len, &packed), 0);
    assert_int_equal(store__set_parse(packed.data, packed.len, true, &out, &cur), 0);
    assert_true(store__set_equal(&alt, &cur));
    store__set_free(&alt);
    store__set_free(&cur);
    /* A run of 3 zeros in a column of 3 values after one value: refused. */
    const unsigned char bad[] = {3, 0x81, 0x01, 1, 1, 0, 18, 10, 0, 2, 0}; /* n_types 1|0x80 */
    assert_int_equal(store__pack(s, bad, sizeof(bad), &packed), 0);
    assert_int_equal(store__set_parse(packed.data, packed.len, true, &base, &cur), -EIO);
    /* The same with a run of 2: fine. */
    const unsigned char good[] = {3, 0x81, 0x01, 1, 1, 0, 18, 10, 0, 1, 0};
    assert_int_equal(store__pack(s, good, sizeof(good), &packed), 0);
    assert_int_equal(store__set_parse(packed.data, packed.len, true, &base, &cur), 0);
    assert_int_equal(cur.values[0], 105);
    assert_int_equal(cur.values[1], 200);
    assert_int_equal(cur.values[2], 0);
    store__set_free(&cur);
    store__set_free(&out);
    store__set_free(&base);
    lw_buf_cleanup(&raw);
    lw_buf_cleanup(&packed);
    store_close(s);
}

/* Functions that differ in one field only (file, start line, system name,
 * or where the text splits between name and system name) stay distinct
 * rows, the first time (string and function rows) and the second (the
 * writer's cache keyed by the function's text). */
static void test_function_text_keys(void **state)
{
    (void)state;
    char path[600];
    int64_t tid;
    store *s = open_with_target(path, sizeof(path), "svc", "127.0.0.1:1", &tid);
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(pprof_add_sample_type(p, "inuse_space", "bytes"), 0);
    p->time_nanos = T0;
    static const struct { const char *name, *sys, *file; int64_t start; } fns[] = {
        {"a.f", "a.f", "x.go", 1},  {"a.f", "a.f", "y.go", 1}, {"a.f", "a.f", "x.go", 2},
        {"a.f", "a.g", "x.go", 1},  {"a.f", "", "x.go", 1},    {"", "a.f", "x.go", 1},
        {"a.", "f", "x.go", 1},
    };
    size_t n = sizeof(fns) / sizeof(fns[0]);
    for (size_t i = 0; i < n; i++) {
        uint64_t f = pprof_add_function(p, fns[i].name, fns[i].sys, fns[i].file, fns[i].start);
        assert_true(f > 0);
        pprof_line l = {.function_id = f, .line = 7};
        uint64_t loc = pprof_add_location(p, 0, 0x1000 + i, &l, 1);
        int64_t v = (int64_t)(i + 1) * 100;
        assert_int_equal(pprof_add_sample(p, &loc, 1, &v, NULL, 0), 0);
    }
    int64_t ids[2] = {ingest_ok(s, tid, "heap", T0, p), ingest_ok(s, tid, "heap", T0 + SEC, p)};
    for (int k = 0; k < 2; k++) {
        pprof_profile *out = NULL;
        assert_int_equal(store_profile_load(s, ids[k], &out, NULL), 0);
        assert_int_equal(out->n_samples, n);
        for (size_t i = 0; i < n; i++) {
            const pprof_sample *smp = &out->samples[i];
            size_t v = (size_t)smp->values[0] / 100 - 1; /* which function */
            assert_true(v < n);
            const pprof_location *loc = NULL;
            for (size_t j = 0; j < out->n_locations; j++)
                if (out->locations[j].id == smp->location_ids[0])
                    loc = &out->locations[j];
            assert_non_null(loc);
            const pprof_function *f = NULL;
            for (size_t j = 0; j < out->n_functions; j++)
                if (out->functions[j].id == loc->lines[0].function_id)
                    f = &out->functions[j];
            assert_non_null(f);
            assert_string_equal(str(out, f->name), fns[v].name);
            assert_string_equal(str(out, f->system_name), fns[v].sys);
            assert_string_equal(str(out, f->filename), fns[v].file);
            assert_int_equal(f->start_line, fns[v].start);
        }
        pprof_free(out);
    }
    store_close(s);
    assert_int_equal(count_rows(path, "functions"), (int64_t)n);
    pprof_free(p);
}

/* Retention deletes a keyframe; its set id is reused by the next full set:
 * deltas must be computed against the new one, not a remembered old one. */
static void test_keyframe_id_reuse(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    int64_t other = target(s, "other", "127.0.0.1:2");
    pprof_profile *b = random_profile(12, 500, 100);
    pprof_profile *a = mutate(b, 9); /* close to b: a delta against it would be kept */
    pprof_profile *c = mutate(b, 3);
    /* Enough younger profiles elsewhere that deleting one runs no full GC
     * (which would clear every cache anyway). */
    pprof_profile *g = goroutine_profile(5);
    for (int i = 0; i < 20; i++)
        ingest_ok(s, other, "goroutine", T0 + 100 * SEC + i, g);
    pprof_free(g);
    ingest_ok(s, tid, "heap", T0, a); /* its set has the highest id */
    int64_t deleted = 0;
    assert_int_equal(store_retention_apply(s, 10 * SEC, 0, T0 + 50 * SEC, &deleted), 0);
    assert_int_equal(deleted, 1);
    ingest_ok(s, tid, "heap", T0 + 20 * SEC, b);
    int64_t cid = ingest_ok(s, tid, "heap", T0 + 21 * SEC, c);
    pprof_profile *out = NULL;
    assert_int_equal(store_profile_load(s, cid, &out, NULL), 0);
    assert_same_profile(c, out);
    pprof_free(out);
    store_close(s);
    printf("deltas: %" PRId64 "\n", count_rows(path, "sample_sets WHERE base_id IS NOT NULL"));
    pprof_free(a);
    pprof_free(b);
    pprof_free(c);
}

/* Rows damaged behind the store's back (random blobs in sample sets, stack
 * chunks, stack rows and meta rows) make reads fail cleanly, never crash or read out of
 * bounds (ASan checks), and retention still works or reports an error. */
static void test_corrupt_rows(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    int64_t ids[8];
    pprof_profile *p = random_profile(31, 400, 100);
    for (int i = 0; i < 8; i++) {
        pprof_profile *q = mutate(p, (uint64_t)i + 1);
        ids[i] = ingest_ok(s, tid, "heap", T0 + i * SEC, q);
        pprof_free(q);
    }
    pprof_free(p);
    store_close(s);

    uint64_t st = 999;
    for (int round = 0; round < 8; round++) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        const char *tables[] = {"sample_sets SET data", "stack_chunks SET data", "profile_meta SET data",
                                "stacks SET frames"};
        const char *table = tables[round % 4];
        unsigned char junk[512];
        size_t n = 1 + rnd(&st) % sizeof(junk);
        for (size_t i = 0; i < n; i++)
            junk[i] = (unsigned char)rnd(&st);
        if (round % 2)
            junk[0] = (unsigned char)(rnd(&st) % 2); /* a plausible format byte */
        char sql[128];
        snprintf(sql, sizeof(sql), "UPDATE %s = ?1 WHERE rowid %% 3 = %d", table, round % 3);
        sqlite3_stmt *up = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &up, NULL), SQLITE_OK);
        sqlite3_bind_blob(up, 1, junk, (int)n, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(up), SQLITE_DONE);
        sqlite3_finalize(up);
        sqlite3_close(db);

        s = open_ok(path, NULL);
        int ok = 0, failed = 0;
        for (int i = 0; i < 8; i++) {
            pprof_profile *out = NULL;
            int rc = store_profile_load(s, ids[i], &out, NULL);
            if (rc == 0) {
                ok++;
                pprof_free(out);
            } else {
                assert_true(rc == -EIO || rc == -ENOENT);
                failed++;
            }
            store_stack_value *sv = NULL;
            size_t nv = 0;
            if (store_profile_stacks(s, ids[i], 0, &sv, &nv) == 0) {
                for (size_t k = 0; k < nv && k < 5; k++) {
                    char fname[128], loc[256];
                    lw_buf d;
                    lw_buf_init(&d, 1 << 16);
                    (void)!store_stack_top_frame(s, sv[k].stack_id, fname, sizeof(fname), loc,
                                                 sizeof(loc));
                    (void)!store_stack_describe(s, sv[k].stack_id, &d);
                    lw_buf_cleanup(&d);
                }
                free(sv);
            }
        }
        printf("round %d (%s): %d profiles loaded, %d refused\n", round, table, ok, failed);
        /* Ingest and retention keep going or fail cleanly. */
        pprof_profile *g = goroutine_profile(3);
        char err[STORE_ERR_LEN];
        int rc = store_ingest(s, tid, "goroutine", T0 + (100 + round) * SEC, g, NULL, err,
                              sizeof(err));
        printf("  ingest after damage: %d\n", rc);
        pprof_free(g);
        int64_t deleted = 0;
        rc = store_retention_apply(s, SEC, 0, T0 + 3 * SEC, &deleted);
        printf("  retention after damage: %d (deleted %" PRId64 ")\n", rc, deleted);
        assert_int_equal(rc, 0);
        store_close(s);
    }
}

static void test_retention_age(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    for (int i = 0; i < 40; i++) {
        pprof_profile *p = random_profile((uint64_t)i + 100, 400, 150);
        ingest_ok(s, tid, "heap", T0 + i * SEC, p);
        pprof_free(p);
        pprof_profile *g = goroutine_profile(i + 1);
        ingest_ok(s, tid, "goroutine", T0 + i * SEC, g);
        pprof_free(g);
    }
    int64_t before = 0, after = 0, deleted = 0, count = 0;
    assert_int_equal(store_retention_apply(s, 0, 0, T0 + 100 * SEC, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(store_size_bytes(s, &before), 0);
    /* Keep profiles younger than 20 s at T0+39 s: times 20..39. */
    assert_int_equal(store_retention_apply(s, 19 * SEC, 0, T0 + 39 * SEC, &deleted), 0);
    assert_int_equal(store_profiles_count(s, &count), 0);
    printf("age retention: deleted %" PRId64 ", %" PRId64 " left\n", deleted, count);
    assert_int_equal(deleted, 40);
    assert_int_equal(count, 40);
    store_profile_query q = {.profile_type = "heap"};
    store_profile_info *list = NULL;
    size_t n = 0;
    assert_int_equal(store_profiles_list(s, &q, &list, &n), 0);
    assert_int_equal(n, 20);
    assert_int_equal(list[0].time_ns, T0 + 20 * SEC);
    free(list);
    store_point *pts = NULL;
    assert_int_equal(store_series_get(s, tid, "goroutines", 0, INT64_MAX, &pts, &n), 0);
    assert_int_equal(n, 20);
    assert_int_equal(pts[0].time_ns, T0 + 20 * SEC);
    free(pts);
    check_integrity(s);
    /* Everything older than now + 1 s: all gone, the file shrinks. */
    assert_int_equal(store_retention_apply(s, SEC, 0, T0 + 1000 * SEC, &deleted), 0);
    assert_int_equal(deleted, 40);
    assert_int_equal(store_size_bytes(s, &after), 0);
    printf("size before %" PRId64 " B, after deleting everything %" PRId64 " B\n", before, after);
    assert_true(after < before / 4);
    assert_int_equal(count_stacks(path), 0);
    assert_int_equal(count_rows(path, "strings"), 0);
    assert_int_equal(count_rows(path, "functions"), 0);
    assert_int_equal(count_rows(path, "sample_sets"), 0);
    check_integrity(s);
    /* The store is still usable and rebuilds stacks after the GC. */
    pprof_profile *g = goroutine_profile(7);
    int64_t id = ingest_ok(s, tid, "goroutine", T0 + 2000 * SEC, g);
    pprof_profile *out = NULL;
    assert_int_equal(store_profile_load(s, id, &out, NULL), 0);
    assert_same_profile(g, out);
    pprof_free(out);
    pprof_free(g);
    store_close(s);
}

static void test_retention_gc_partial(void **state)
{
    (void)state;
    /* Rows still used by remaining profiles survive a GC. */
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    pprof_profile *a = random_profile(7, 300, 100), *b = random_profile(8, 300, 100);
    ingest_ok(s, tid, "heap", T0, a);
    int64_t bid = ingest_ok(s, tid, "heap", T0 + 10 * SEC, b);
    int64_t deleted = 0;
    assert_int_equal(store_retention_apply(s, 5 * SEC, 0, T0 + 12 * SEC, &deleted), 0);
    assert_int_equal(deleted, 1);
    pprof_profile *out = NULL;
    assert_int_equal(store_profile_load(s, bid, &out, NULL), 0);
    assert_same_profile(b, out);
    pprof_free(out);
    /* Ingest a again: its stacks were collected and must be re-created. */
    int64_t aid = ingest_ok(s, tid, "heap", T0 + 20 * SEC, a);
    assert_int_equal(store_profile_load(s, aid, &out, NULL), 0);
    assert_same_profile(a, out);
    pprof_free(out);
    check_integrity(s);
    pprof_free(a);
    pprof_free(b);
    store_close(s);
}

/* A deletion of less than a tenth of the profiles runs no full collection:
 * the sets and meta rows its profiles used are checked one by one. None of
 * them may be left behind unreferenced — including a keyframe whose last
 * delta went in the same step — and none still in use may go. */
static void test_retention_sweeps_without_gc(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1"), other = target(s, "other", "127.0.0.1:2");
    /* t=0 keyframe K, t=1 a delta against K, t=2 a profile of other
     * stacks (a new keyframe), t=3.. deltas against that one. */
    pprof_profile *k = random_profile(31, 400, 120), *d = mutate(k, 1);
    pprof_profile *fresh = random_profile(32, 400, 120);
    ingest_ok(s, tid, "heap", T0, k);
    ingest_ok(s, tid, "heap", T0 + SEC, d);
    int64_t keep_id = ingest_ok(s, tid, "heap", T0 + 2 * SEC, fresh);
    pprof_profile *prev = fresh;
    for (int i = 3; i < 6; i++) {
        pprof_profile *q = mutate(prev, (uint64_t)i);
        ingest_ok(s, tid, "heap", T0 + i * SEC, q);
        if (prev != fresh)
            pprof_free(prev);
        prev = q;
    }
    pprof_free(prev);
    for (int i = 0; i < 40; i++) {
        pprof_profile *g = goroutine_profile(i % 5 + 1);
        ingest_ok(s, other, "goroutine", T0 + 2 * SEC + i, g);
        pprof_free(g);
    }
    int64_t deltas = count_rows(path, "sample_sets WHERE base_id IS NOT NULL");
    int64_t sets_before = count_rows(path, "sample_sets");
    int64_t stacks_before = count_stacks(path);
    assert_true(deltas >= 3);
    /* Delete t=0 and t=1 (2 of 46 profiles: no full collection). */
    int64_t deleted = 0;
    assert_int_equal(store_retention_apply(s, SEC, 0, T0 + 2 * SEC + SEC / 4, &deleted), 0);
    assert_int_equal(deleted, 2);
    int64_t sets_after = count_rows(path, "sample_sets");
    printf("sets %" PRId64 " -> %" PRId64 " (%" PRId64 " deltas before), stacks %" PRId64
           " -> %" PRId64 "\n",
           sets_before, sets_after, deltas, stacks_before, count_stacks(path));
    assert_int_equal(sets_after, sets_before - 2); /* K and its delta */
    assert_int_equal(count_rows(path, "sample_sets WHERE NOT EXISTS (SELECT 1 FROM profiles p "
                                      "WHERE p.sample_set_id = sample_sets.id) AND NOT EXISTS "
                                      "(SELECT 1 FROM sample_sets d WHERE d.base_id = "
                                      "sample_sets.id)"),
                     0);
    assert_int_equal(count_rows(path, "profile_meta WHERE id NOT IN (SELECT meta_id FROM profiles)"),
                     0);
    assert_int_equal(count_rows(path, "profile_meta"), 2); /* heap and goroutine still used */
    /* No collection ran: K's stacks merely wait. */
    assert_int_equal(count_stacks(path), stacks_before);
    /* Series points older than every remaining profile went with them. */
    assert_int_equal(count_rows(path, "series WHERE time_ns < (SELECT min(time_ns) FROM profiles)"),
                     0);
    assert_true(count_rows(path, "series") > 0);
    pprof_profile *out = NULL;
    assert_int_equal(store_profile_load(s, keep_id, &out, NULL), 0);
    assert_same_profile(fresh, out);
    pprof_free(out);
    check_integrity(s);
    store_close(s);
    pprof_free(k);
    pprof_free(d);
    pprof_free(fresh);
}

typedef struct gc_hook_arg {
    int64_t tid;
    const pprof_profile *p;
    int64_t id;
    int calls;
} gc_hook_arg;

static void reingest_between(store *s, void *arg)
{
    gc_hook_arg *h = arg;
    h->calls++;
    h->id = ingest_ok(s, h->tid, "heap", T0 + 20 * SEC, h->p);
}

/* A full collection marks on a snapshot without the writer lock; an ingest
 * between its mark and its sweep may reuse stacks (and through them
 * functions and strings) the snapshot saw unused — the writer's caches
 * still name them. The sweep must keep them. */
static void test_gc_revival(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    /* Different seeds: different packages, so a's functions and strings
     * are a's alone. */
    pprof_profile *a = random_profile(41, 300, 80), *b = random_profile(42, 300, 80);
    ingest_ok(s, tid, "heap", T0, a);
    int64_t bid = ingest_ok(s, tid, "heap", T0 + 10 * SEC, b);
    gc_hook_arg h = {.tid = tid, .p = a};
    s->gc_between = reingest_between;
    s->gc_between_arg = &h;
    int64_t deleted = 0;
    /* Deletes a (half of the profiles: a collection follows). */
    assert_int_equal(store_retention_apply(s, 5 * SEC, 0, T0 + 12 * SEC, &deleted), 0);
    s->gc_between = NULL;
    assert_int_equal(deleted, 1);
    assert_int_equal(h.calls, 1);
    assert_true(h.id > 0);
    assert_loads_as(s, h.id, a);
    assert_loads_as(s, bid, b);
    check_integrity(s);
    /* The same without an ingest in between: b goes, a stays. */
    assert_int_equal(store_retention_apply(s, 5 * SEC, 0, T0 + 22 * SEC, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(h.calls, 1);
    assert_loads_as(s, h.id, a);
    check_integrity(s);
    store_close(s);
    pprof_free(a);
    pprof_free(b);
}

static void test_retention_size(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    int64_t size = 0;
    int i = 0;
    while (size < 3 << 20) {
        pprof_profile *p = random_profile((uint64_t)i + 1000, 1500, 400);
        ingest_ok(s, tid, "heap", T0 + i * SEC, p);
        pprof_free(p);
        i++;
        if (i % 5 == 0)
            assert_int_equal(store_size_bytes(s, &size), 0);
    }
    int64_t deleted = 0, count = 0, after = 0;
    const int64_t limit = 1 << 20;
    assert_int_equal(store_retention_apply(s, 0, limit, T0 + i * SEC, &deleted), 0);
    assert_int_equal(store_profiles_count(s, &count), 0);
    assert_int_equal(store_size_bytes(s, &after), 0);
    printf("size retention: %d profiles, %" PRId64 " B -> deleted %" PRId64 ", %" PRId64
           " left, %" PRId64 " B (limit %" PRId64 ")\n",
           i, size, deleted, count, after, limit);
    assert_true(after <= limit);
    assert_true(count > 0);
    assert_int_equal(count + deleted, i);
    /* The newest profile is kept. */
    store_profile_info info;
    assert_int_equal(store_profile_at(s, tid, "heap", INT64_MAX, &info), 0);
    assert_int_equal(info.time_ns, T0 + (i - 1) * SEC);
    check_integrity(s);
    store_close(s);
}

static void test_lock(void **state)
{
    (void)state;
    char path[600], err[STORE_ERR_LEN] = "";
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL), *s2 = NULL;
    int rc = store_open(path, NULL, &s2, err, sizeof(err));
    printf("second open: %d \"%s\"\n", rc, err);
    assert_int_equal(rc, -EBUSY);
    assert_null(s2);
    char want[128];
    snprintf(want, sizeof(want), "is in use by another leakwatchd (pid %ld)", (long)getpid());
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, path));
    /* A read-only open (CLI) is allowed next to the writer. */
    store_options ro = {.read_only = true};
    s2 = open_ok(path, &ro);
    store_close(s2);
    store_close(s);
    s = open_ok(path, NULL);
    store_close(s);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return d;
}

static void assert_refused_untouched(const char *path, const char *want_msg)
{
    size_t len0, len1;
    unsigned char *before = read_all(path, &len0);
    char err[STORE_ERR_LEN] = "", side[700];
    store *s = NULL;
    int rc = store_open(path, NULL, &s, err, sizeof(err));
    printf("open %s: %d \"%s\"\n", path, rc, err);
    assert_int_equal(rc, -EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, want_msg));
    store_options ro = {.read_only = true};
    assert_int_equal(store_open(path, &ro, &s, err, sizeof(err)), -EINVAL);
    unsigned char *after = read_all(path, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    printf("  %zu bytes identical after the refusal\n", len0);
    const char *suffixes[] = {"-wal", "-shm", "-journal", ".lock"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(side, sizeof(side), "%s%s", path, suffixes[i]);
        if (access(side, F_OK) == 0)
            fail_msg("%s was created", side);
    }
    free(before);
    free(after);
}

static void test_foreign_files(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    char dir[600];
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(mkdir(dir, 0755), 0);

    /* Random bytes. */
    unsigned char junk[8192];
    uint64_t st = 12345;
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)rnd(&st);
    write_file(path, junk, sizeof(junk));
    assert_refused_untouched(path, "not an SQLite file");
    unlink(path);

    /* A foreign SQLite database (in WAL mode, checkpointed). */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); "
                                  "INSERT INTO t VALUES (1), (2);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_refused_untouched(path, "application_id");
    unlink(path);

    /* A leakwatch database with its pages destroyed after the header. */
    store *s = open_ok(path, NULL);
    store_close(s);
    size_t len;
    unsigned char *d = read_all(path, &len);
    for (size_t i = 100; i < len; i++)
        d[i] = (unsigned char)rnd(&st);
    write_file(path, d, len);
    free(d);
    assert_refused_untouched(path, "refusing to touch it");
}

static void test_disk_full(void **state)
{
    (void)state;
    char path[600], err[STORE_ERR_LEN];
    db_path(path, sizeof(path));
    store_options opt = {.max_page_count = 150}; /* 600 KB */
    store *s = open_ok(path, &opt);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    int ok = 0, rc = 0;
    for (int i = 0; i < 200; i++) {
        pprof_profile *p = random_profile((uint64_t)i + 5000, 800, 300);
        err[0] = '\0';
        rc = store_ingest(s, tid, "heap", T0 + i * SEC, p, NULL, err, sizeof(err));
        pprof_free(p);
        if (rc)
            break;
        ok++;
    }
    printf("full after %d profiles: %d \"%s\"\n", ok, rc, err);
    assert_int_equal(rc, -ENOSPC);
    assert_true(ok > 0);
    int64_t count = 0;
    assert_int_equal(store_profiles_count(s, &count), 0);
    assert_int_equal(count, ok); /* nothing partial */
    check_integrity(s);
    /* Reads keep working while full. */
    store_profile_info info;
    assert_int_equal(store_profile_at(s, tid, "heap", INT64_MAX, &info), 0);
    assert_int_equal(info.time_ns, T0 + (ok - 1) * SEC);
    /* Free space: drop the older half; ingest resumes. */
    int64_t deleted = 0;
    assert_int_equal(store_retention_apply(s, 0, 0, 0, &deleted), 0);
    assert_int_equal(store_retention_apply(s, SEC * (1000 - ok / 2), 0, T0 + 1000 * SEC, &deleted), 0);
    printf("retention freed %" PRId64 " profiles\n", deleted);
    assert_true(deleted > 0);
    pprof_profile *p = random_profile(99999, 800, 300);
    rc = store_ingest(s, tid, "heap", T0 + 2000 * SEC, p, NULL, err, sizeof(err));
    printf("ingest after retention: %d\n", rc);
    assert_int_equal(rc, 0);
    pprof_free(p);
    check_integrity(s);
    store_close(s);
}

static void test_state(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    char *v = NULL;
    assert_int_equal(store_state_get(s, "alert/a", &v), -ENOENT);
    assert_int_equal(store_state_put(s, "alert/a", "{\"state\":\"pending\"}"), 0);
    assert_int_equal(store_state_put(s, "alert/b", "{\"state\":\"firing\"}"), 0);
    assert_int_equal(store_state_put(s, "other", "1"), 0);
    assert_int_equal(store_state_put(s, "alert/a", "{\"state\":\"firing\"}"), 0);
    assert_int_equal(store_state_get(s, "alert/a", &v), 0);
    assert_string_equal(v, "{\"state\":\"firing\"}");
    free(v);
    char **keys = NULL, **values = NULL;
    size_t n = 0;
    assert_int_equal(store_state_list(s, "alert/", &keys, &values, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "alert/a");
    assert_string_equal(keys[1], "alert/b");
    assert_string_equal(values[1], "{\"state\":\"firing\"}");
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(values[i]);
    }
    free(keys);
    free(values);
    assert_int_equal(store_state_delete(s, "alert/a"), 0);
    assert_int_equal(store_state_delete(s, "alert/a"), 0);
    assert_int_equal(store_state_get(s, "alert/a", &v), -ENOENT);
    store_close(s);
    s = open_ok(path, NULL);
    assert_int_equal(store_state_get(s, "alert/b", &v), 0);
    free(v);
    assert_int_equal(store_state_list(s, NULL, &keys, &values, &n), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
        free(values[i]);
    }
    free(keys);
    free(values);
    store_close(s);
}

static void test_series_and_lists(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t t1 = target(s, "svc", "127.0.0.1:1");
    int64_t t2 = target(s, "other", "127.0.0.1:2");
    store_label same[] = {{"env", "test"}, {"instance", "127.0.0.1:1"}, {"job", "svc"}};
    int64_t again = 0;
    assert_int_equal(store_target_upsert(s, same, 3, &again), 0);
    assert_int_equal(again, t1);
    store_label nojob[] = {{"instance", "x"}};
    assert_int_equal(store_target_upsert(s, nojob, 1, &again), -EINVAL);
    for (int i = 0; i < 10; i++) {
        pprof_profile *g = goroutine_profile(10 * i);
        ingest_ok(s, t1, "goroutine", T0 + i * 10 * SEC, g);
        ingest_ok(s, t2, "goroutine", T0 + i * 10 * SEC + 1, g);
        pprof_free(g);
        pprof_profile *h = heap_profile(i + 1);
        ingest_ok(s, t1, "heap", T0 + i * 10 * SEC, h);
        pprof_free(h);
    }
    store_point *pts = NULL;
    size_t n = 0;
    assert_int_equal(store_series_get(s, t1, "goroutines", T0, T0 + 45 * SEC, &pts, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        printf("goroutines[%zu] = %.0f at +%" PRId64 "s\n", i, pts[i].value,
               (int64_t)((pts[i].time_ns - T0) / SEC));
        assert_int_equal(pts[i].time_ns, T0 + (int64_t)i * 10 * SEC);
        assert_true(pts[i].value == 10.0 * (double)i + 3);
    }
    free(pts);
    const char *sigs[] = {"heap_inuse_bytes", "heap_inuse_objects", "heap_alloc_bytes",
                          "heap_alloc_objects"};
    double want[] = {5.0 * 1048576 + 192, 5 + 3, 10.0 * 1048576 + 64000, 10 + 1000};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(store_series_get(s, t1, sigs[k], 0, INT64_MAX, &pts, &n), 0);
        assert_int_equal(n, 10);
        printf("%s[0] = %.0f (want %.0f)\n", sigs[k], pts[0].value, want[k]);
        assert_true(pts[0].value == want[k]);
        free(pts);
    }
    assert_int_equal(store_series_get(s, t1, "nonsense", 0, INT64_MAX, &pts, &n), -EINVAL);

    store_profile_info info;
    assert_int_equal(store_profile_at(s, t1, "goroutine", T0 + 35 * SEC, &info), 0);
    assert_int_equal(info.time_ns, T0 + 30 * SEC);
    assert_int_equal(store_profile_at(s, t1, "goroutine", T0 + 30 * SEC, &info), 0);
    assert_int_equal(info.time_ns, T0 + 30 * SEC);
    assert_int_equal(store_profile_at(s, t1, "goroutine", T0 - 1, &info), -ENOENT);
    assert_int_equal(store_profile_at(s, t2, "heap", INT64_MAX, &info), -ENOENT);

    store_profile_info *list = NULL;
    store_profile_query q = {.job = "svc"};
    assert_int_equal(store_profiles_list(s, &q, &list, &n), 0);
    assert_int_equal(n, 20);
    for (size_t i = 1; i < n; i++)
        assert_true(list[i].time_ns >= list[i - 1].time_ns);
    free(list);
    q = (store_profile_query){.instance = "127.0.0.1:2", .profile_type = "goroutine"};
    assert_int_equal(store_profiles_list(s, &q, &list, &n), 0);
    assert_int_equal(n, 10);
    free(list);
    q = (store_profile_query){.target_id = t1, .profile_type = "heap", .from_ns = T0 + 20 * SEC,
                              .to_ns = T0 + 50 * SEC};
    assert_int_equal(store_profiles_list(s, &q, &list, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(list[0].time_ns, T0 + 20 * SEC);
    assert_int_equal(list[3].time_ns, T0 + 50 * SEC);
    free(list);
    q = (store_profile_query){.profile_type = "goroutine", .limit = 3};
    assert_int_equal(store_profiles_list(s, &q, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].time_ns, T0 + 90 * SEC + 1); /* newest first */
    assert_int_equal(list[0].target_id, t2);
    assert_true(list[1].time_ns <= list[0].time_ns && list[2].time_ns <= list[1].time_ns);
    free(list);
    assert_int_equal(store_profiles_list(s, NULL, &list, &n), 0);
    assert_int_equal(n, 30);
    free(list);

    store_target *targets = NULL;
    assert_int_equal(store_targets_list(s, &targets, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(targets[0].job, "svc");
    assert_string_equal(targets[0].instance, "127.0.0.1:1");
    assert_string_equal(targets[0].labels_json,
                        "{\"env\":\"test\",\"instance\":\"127.0.0.1:1\",\"job\":\"svc\"}");
    store_targets_free(targets, n);
    store_close(s);
}

static void test_stacks_and_top_frames(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    pprof_profile *g = goroutine_profile(50);
    /* A second sample with the blocked stack but another label: summed. */
    int64_t v = 5;
    uint64_t ids[4];
    memcpy(ids, g->samples[0].location_ids, sizeof(ids));
    assert_int_equal(pprof_add_sample(g, ids, 4, &v, NULL, 0), 0);
    int64_t id = ingest_ok(s, tid, "goroutine", T0, g);
    store_stack_value *sv = NULL;
    size_t n = 0;
    assert_int_equal(store_profile_stacks(s, id, 1, &sv, &n), -EINVAL);
    assert_null(sv);
    assert_int_equal(store_profile_stacks(s, id, 0, &sv, &n), 0);
    assert_int_equal(n, 3);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        char fname[128], loc[256];
        assert_int_equal(store_stack_top_frame(s, sv[i].stack_id, fname, sizeof(fname), loc,
                                               sizeof(loc)),
                         0);
        lw_buf d;
        lw_buf_init(&d, 1 << 16);
        assert_int_equal(store_stack_describe(s, sv[i].stack_id, &d), 0);
        printf("stack %" PRId64 " value %" PRId64 " top %s (%s):\n%s\n", sv[i].stack_id,
               sv[i].value, fname, loc, d.data);
        if (sv[i].value == 55) {
            assert_string_equal(fname, "main.blockedForever");
            assert_string_equal(loc, "/src/gosvc/main.go:40");
            assert_string_equal(d.data, "runtime.gopark (/usr/lib/go/src/runtime/proc.go:363)\n"
                                        "runtime.chanrecv1 (/usr/lib/go/src/runtime/chan.go:442)\n"
                                        "main.blockedForever (/src/gosvc/main.go:40)\n"
                                        "runtime.goexit (/usr/lib/go/src/runtime/asm_amd64.s:1594)");
            found++;
        }
        if (sv[i].value == 2) {
            /* The inlined frame is the first meaningful one. */
            assert_string_equal(fname, "time.(*Ticker).C");
            found++;
        }
        lw_buf_cleanup(&d);
    }
    assert_int_equal(found, 2);
    free(sv);
    char fname[64], loc[64];
    assert_int_equal(store_stack_top_frame(s, 987654, fname, sizeof(fname), loc, sizeof(loc)),
                     -ENOENT);

    /* C allocator and agent frames are skipped too. */
    pprof_profile *c = pprof_new();
    assert_int_equal(pprof_add_sample_type(c, "inuse_space", "bytes"), 0);
    const char *names[] = {"malloc", "lw_agent_malloc_hook", "__libc_malloc", "leaky_handler",
                           "start_thread", "clone"};
    uint64_t cl[6];
    for (int i = 0; i < 6; i++)
        cl[i] = loc1(c, fn(c, names[i], "x.c"), i + 1);
    v = 100;
    assert_int_equal(pprof_add_sample(c, cl, 6, &v, NULL, 0), 0);
    id = ingest_ok(s, tid, "heap", T0, c);
    assert_int_equal(store_profile_stacks(s, id, 0, &sv, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_stack_top_frame(s, sv[0].stack_id, fname, sizeof(fname), loc,
                                           sizeof(loc)),
                     0);
    printf("C stack top frame: %s (%s)\n", fname, loc);
    assert_string_equal(fname, "leaky_handler");
    assert_string_equal(loc, "x.c:4");
    free(sv);
    pprof_free(c);
    pprof_free(g);
    store_close(s);
}

/* ---- threads ----------------------------------------------------------------- */

typedef struct thr {
    store *s;
    int64_t tid;
    volatile int done;
    int errors;
    int reads;
} thr;

static void *writer_main(void *arg)
{
    thr *t = arg;
    char err[STORE_ERR_LEN];
    for (int i = 0; i < 60; i++) {
        pprof_profile *p = random_profile((uint64_t)(i % 10) + 300, 300, 120);
        if (store_ingest(t->s, t->tid, "heap", T0 + i * SEC, p, NULL, err, sizeof(err)))
            t->errors++;
        pprof_free(p);
        if (i % 20 == 19) {
            int64_t d;
            if (store_retention_apply(t->s, 10 * SEC, 0, T0 + i * SEC, &d))
                t->errors++;
        }
    }
    __atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *reader_main(void *arg)
{
    thr *t = arg;
    while (!__atomic_load_n(&t->done, __ATOMIC_ACQUIRE)) {
        store_profile_info *list = NULL;
        size_t n = 0;
        store_profile_query q = {.limit = 5};
        if (store_profiles_list(t->s, &q, &list, &n)) {
            __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            pprof_profile *p = NULL;
            /* A profile may vanish by retention between list and load. */
            int rc = store_profile_load(t->s, list[i].id, &p, NULL);
            if (rc && rc != -ENOENT)
                __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
            if (!rc) {
                int64_t tot[2];
                pprof_totals(p, tot);
                if (tot[0] != list[i].totals[0])
                    __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
            }
            pprof_free(p);
        }
        free(list);
        store_point *pts = NULL;
        if (store_series_get(t->s, t->tid, "heap_inuse_bytes", 0, INT64_MAX, &pts, &n))
            __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
        free(pts);
        __atomic_add_fetch(&t->reads, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    thr t = {0};
    t.s = open_ok(path, NULL);
    t.tid = target(t.s, "svc", "127.0.0.1:1");
    pthread_t w, r1, r2;
    assert_int_equal(pthread_create(&w, NULL, writer_main, &t), 0);
    assert_int_equal(pthread_create(&r1, NULL, reader_main, &t), 0);
    assert_int_equal(pthread_create(&r2, NULL, reader_main, &t), 0);
    pthread_join(w, NULL);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    printf("threads: %d read rounds, %d errors\n", t.reads, t.errors);
    assert_int_equal(t.errors, 0);
    check_integrity(t.s);
    store_close(t.s);
}

static void test_bad_args(void **state)
{
    (void)state;
    char path[600], err[STORE_ERR_LEN];
    db_path(path, sizeof(path));
    store *s = NULL;
    assert_int_equal(store_open("", NULL, &s, err, sizeof(err)), -EINVAL);
    store_options ro = {.read_only = true};
    assert_int_equal(store_open(path, &ro, &s, err, sizeof(err)), -ENOENT);
    store_close(NULL);
    s = open_ok(path, NULL);
    pprof_profile *g = goroutine_profile(1);
    assert_int_equal(store_ingest(s, 1, "a-very-long-profile-type-name-over-32", T0, g, NULL, err,
                                  sizeof(err)),
                     -EINVAL);
    assert_int_equal(store_ingest(s, 0, "goroutine", T0, g, NULL, err, sizeof(err)), -EINVAL);
    /* A target id that does not exist violates the foreign key. */
    int rc = store_ingest(s, 4242, "goroutine", T0, g, NULL, err, sizeof(err));
    printf("unknown target: %d \"%s\"\n", rc, err);
    assert_int_equal(rc, -ENOENT);
    int64_t count = -1;
    assert_int_equal(store_profiles_count(s, &count), 0);
    assert_int_equal(count, 0);
    pprof_free(g);
    store_close(s);
}

/* Several profiles in one transaction: each stored as if alone, a bad one
 * refused alone (its rows rolled back, the others kept), the memo and the
 * caches right for the items after it. */
/* New stacks: added without a lookup when their hash is unknown, found
 * when known (after a reopen, or by the index once the stacks outgrow the
 * writer's map), never stored twice, and their ids never reused after GC
 * removed the newest. */
static void test_new_stacks(void **state)
{
    (void)state;
    char path[600];
    int64_t t1, t2;
    store *s = open_two_targets(path, sizeof(path), &t1, &t2);
    pprof_profile *a = random_profile(11, 600, 120), *b = random_profile(12, 600, 120);
    ingest_ok(s, t1, "heap", T0 + SEC, a);
    int64_t n_a = count_stacks(path);
    assert_true(n_a > 100);
    assert_stacks_unique(path);
    store_close(s);

    /* Reopened: every stack of a is known and found, none added. */
    s = open_ok(path, NULL);
    int64_t id = ingest_ok(s, t2, "heap", T0 + SEC, a);
    assert_int_equal(count_stacks(path), n_a);
    assert_loads_as(s, id, a);
    /* Some known, some new, in one profile. */
    id = ingest_ok(s, t1, "heap", T0 + 2 * SEC, b);
    int64_t n_ab = count_stacks(path);
    assert_true(n_ab > n_a);
    assert_stacks_unique(path);
    assert_loads_as(s, id, b);
    store_close(s);

    /* More stacks than the map may hold: the index on stacks.hash is built
     * (mid-ingest) and used; a reopen with room drops it again. */
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'stacks_hash'"), 0);
    s = open_ok(path, NULL);
    s->stack_map_max = (size_t)n_ab + 20;
    pprof_profile *c = random_profile(13, 400, 90);
    id = ingest_ok(s, t2, "heap", T0 + 3 * SEC, c);
    assert_true(s->stacks_indexed);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'stacks_hash'"), 1);
    ingest_ok(s, t2, "heap", T0 + 4 * SEC, b); /* known stacks, found by the index */
    assert_stacks_unique(path);
    assert_loads_as(s, id, c);
    store_close(s);
    s = open_ok(path, NULL);
    ingest_ok(s, t1, "heap", T0 + 5 * SEC, c);
    assert_true(s->stack_map_loaded);
    assert_false(s->stacks_indexed);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'stacks_hash'"), 0);
    assert_stacks_unique(path);

    /* GC removes every stack, the newest too; new stacks get new ids. */
    int64_t max_before = 0, deleted = 0, min_after = 0;
    count_stacks_ids(path, NULL, &max_before);
    assert_int_equal(store_retention_apply(s, SEC, 0, T0 + 1000 * SEC, &deleted), 0);
    assert_int_equal(deleted, 6);
    assert_int_equal(count_stacks(path), 0);
    pprof_profile *d = random_profile(14, 300, 70);
    id = ingest_ok(s, t1, "heap", T0 + 2000 * SEC, d);
    assert_true(count_stacks_ids(path, &min_after, NULL) > 0);
    assert_true(min_after > max_before);
    assert_stacks_unique(path);
    assert_loads_as(s, id, d);
    check_integrity(s);
    store_close(s);
    pprof_free(a);
    pprof_free(b);
    pprof_free(c);
    pprof_free(d);
}

/* Samples are resolved a block at a time (SAMPLE_BLOCK, 16): one new
 * stack met twice in one block, again in the next block and by a location
 * of another id with the same frames gets one stack id and one row. */
static void test_new_stack_repeated_in_block(void **state)
{
    (void)state;
    char path[600];
    int64_t t1, t2;
    store *s = open_two_targets(path, sizeof(path), &t1, &t2);
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(pprof_add_sample_type(p, "inuse_space", "bytes"), 0);
    p->time_nanos = T0;
    uint64_t f = fn(p, "main.leak", "/src/main.go"), g = fn(p, "main.main", "/src/main.go");
    uint64_t la = loc1(p, f, 10), lb = loc1(p, g, 20), lc = loc1(p, f, 11);
    pprof_line dup_line = {.function_id = f, .line = 10};
    uint64_t la2 = pprof_add_location(p, 0, 0x9000, &dup_line, 1); /* la's frames, another id */
    assert_true(la2 > 0);
    /* A location of five inlined lines: more than 16 bytes of frames,
     * which the blob builder's fixed-size copies leave to its general loop. */
    pprof_line inl[5];
    for (int k = 0; k < 5; k++)
        inl[k] = (pprof_line){.function_id = k % 2 ? f : g, .line = 100000 + k};
    uint64_t lin = pprof_add_location(p, 0, 0xa000, inl, 5);
    assert_true(lin > 0);
    uint64_t rep[] = {la, lb}, rep2[] = {la2, lb}, other[] = {lc, lb}, deep[] = {la, lin, lb};
    for (int i = 0; i < 40; i++) {
        /* Samples 0, 1, 17 and 33 (la2) have the repeated stack; 5 and 21
         * the deep one. */
        bool r = i == 0 || i == 1 || i == 17;
        int64_t v = r ? 1000 : 1;
        const uint64_t *st = r ? rep : i == 33 ? rep2 : other;
        if (i == 33)
            v = 1000;
        if (i == 5 || i == 21)
            assert_int_equal(pprof_add_sample(p, deep, 3, &v, NULL, 0), 0);
        else
            assert_int_equal(pprof_add_sample(p, st, 2, &v, NULL, 0), 0);
    }
    int64_t id = ingest_ok(s, t1, "heap", T0 + SEC, p);
    assert_int_equal(count_stacks(path), 3);
    assert_stacks_unique(path);
    store_stack_value *sv = NULL;
    size_t n = 0;
    assert_int_equal(store_profile_stacks(s, id, 0, &sv, &n), 0);
    assert_int_equal(n, 3);
    int64_t big = 0;
    for (size_t k = 0; k < n; k++)
        big = sv[k].value > big ? sv[k].value : big;
    assert_int_equal(big, 4000); /* all four on one stack id */
    free(sv);
    assert_loads_as(s, id, p);
    /* The other target's first profile: the same stacks, found. */
    ingest_ok(s, t2, "heap", T0 + SEC, p);
    assert_int_equal(count_stacks(path), 3);
    store_close(s);
    pprof_free(p);
}

/* Chunk codec: stacks come back with their ids and frames; a stack that
 * ends like the previous one stores only its differing start; damaged
 * blobs are -EIO, never a read out of bounds. */
static void test_chunk_codec(void **state)
{
    (void)state;
    const unsigned char f1[] = {1, 2, 3, 4, 5, 6}, f2[] = {9, 4, 5, 6}, f3[] = {7}, f4[] = {0};
    const unsigned char *frames[] = {f1, f2, f3, f4, f1};
    const size_t lens[] = {sizeof(f1), sizeof(f2), sizeof(f3), 0, sizeof(f1)};
    const int64_t ids[] = {100, 101, 105, 106, 300};
    lw_buf out;
    lw_buf_init(&out, 1 << 20);
    store__chunk_enc e;
    store__chunk_enc_init(&e, &out, 100);
    for (int i = 0; i < 5; i++)
        assert_int_equal(store__chunk_enc_add(&e, ids[i], frames[i], lens[i]), 0);
    assert_int_equal(store__chunk_enc_add(&e, 300, f1, sizeof(f1)), -EINVAL); /* not ascending */
    assert_int_equal(e.n, 5);
    store__chunk_enc_free(&e);
    /* f2 shares 3 bytes with f1: 3 varints + 1 byte, not 3 + 4. */
    const unsigned char *d = (const unsigned char *)out.data;
    assert_int_equal(d[9], 1);  /* id gap */
    assert_int_equal(d[10], 3); /* shared */
    assert_int_equal(d[11], 1); /* new bytes */
    assert_int_equal(d[12], 9);

    store__chunk_iter it = {0};
    store__chunk_iter_init(&it, 100, out.data, out.len);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(store__chunk_iter_next(&it), 1);
        assert_int_equal(it.id, ids[i]);
        assert_int_equal(it.frames_len, lens[i]);
        if (lens[i])
            assert_memory_equal(it.cur, frames[i], lens[i]);
    }
    assert_int_equal(store__chunk_iter_next(&it), 0);
    /* Every truncation either ends early or is -EIO. */
    for (size_t cut = 0; cut < out.len; cut++) {
        store__chunk_iter_init(&it, 100, out.data, cut);
        int rc, k = 0;
        while ((rc = store__chunk_iter_next(&it)) == 1)
            k++;
        assert_true(rc == 0 || rc == -EIO);
        assert_true(k < 5);
    }
    /* More shared bytes than the previous stack has; a zero id gap. */
    const unsigned char bad1[] = {1, 0, 1, 7, 1, 2, 0}, bad2[] = {0, 0, 1, 7};
    store__chunk_iter_init(&it, 1, bad1, sizeof(bad1));
    assert_int_equal(store__chunk_iter_next(&it), 1);
    assert_int_equal(store__chunk_iter_next(&it), -EIO);
    store__chunk_iter_init(&it, 1, bad2, sizeof(bad2));
    assert_int_equal(store__chunk_iter_next(&it), -EIO);
    store__chunk_iter_free(&it);
    lw_buf_cleanup(&out);
}

/* The stack map keeps equal hashes of different stacks side by side. */
static void test_stackmap(void **state)
{
    (void)state;
    store__stackmap m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(store__stackmap_next(&m, 5, &(size_t){0}), 0);
    assert_int_equal(store__stackmap_add(&m, 5, 0), -EINVAL);
    for (int64_t id = 1; id <= 3000; id++) /* grows; hash 5 + 1024k share home slots */
        assert_int_equal(store__stackmap_add(&m, (uint64_t)(id % 7 == 0 ? 5 : id * 1024), id), 0);
    assert_int_equal(store__stackmap_add(&m, 0, 4000), 0);
    size_t pos = 0, n = 0;
    int64_t id, sum = 0;
    while ((id = store__stackmap_next(&m, 5, &pos)) != 0) {
        assert_int_equal(id % 7, 0);
        sum += id;
        n++;
    }
    assert_int_equal(n, 3000 / 7);
    assert_int_equal(sum, 7 * (int64_t)(n * (n + 1) / 2));
    pos = 0;
    assert_int_equal(store__stackmap_next(&m, 0, &pos), 4000);
    assert_int_equal(store__stackmap_next(&m, 0, &pos), 0);
    pos = 0;
    assert_int_equal(store__stackmap_next(&m, 6, &pos), 0);
    store__stackmap_free(&m);

    /* Reserved room: no growth while it lasts, everything found after the
     * one rehash of what was there. */
    assert_int_equal(store__stackmap_add(&m, 77, 1), 0);
    assert_int_equal(store__stackmap_reserve(&m, 5000), 0);
    size_t slots = m.n_slots;
    assert_true(slots >= 10000);
    for (int64_t k = 2; k <= 5000; k++)
        assert_int_equal(store__stackmap_add(&m, (uint64_t)k * 0x9E3779B97F4A7C15ULL, k), 0);
    assert_int_equal(m.n_slots, slots);
    assert_int_equal(store__stackmap_next(&m, 77, &(size_t){0}), 1);
    for (int64_t k = 2; k <= 5000; k++)
        assert_int_equal(store__stackmap_next(&m, (uint64_t)k * 0x9E3779B97F4A7C15ULL, &(size_t){0}), k);
    assert_int_equal(store__stackmap_reserve(&m, 100), 0); /* never shrinks */
    assert_int_equal(m.n_slots, slots);
    store__stackmap_free(&m);
}

/* A version 1 file (stacks as rows, with the index stacks_hash) is read
 * as it is by a read-only open; opened for writing it loses the index and
 * gains stack_chunks (version 3), its stacks found through the map and
 * new ones written as chunks; a file without the index profiles_time
 * (made before retention used it) gets it, the read-only open leaving it
 * as it is; a file of a newer version is refused untouched. */
static void test_schema_upgrade(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    int64_t t1 = target(s, "svc", "127.0.0.1:1");
    pprof_profile *a = random_profile(21, 300, 60), *b = random_profile(22, 200, 60);
    /* A map of no room: the writer looks stacks up by the index and keeps
     * them as rows, as version 1 did. */
    s->stack_map_max = 0;
    int64_t id_a = ingest_ok(s, t1, "heap", T0 + SEC, a);
    assert_true(s->stacks_indexed);
    int64_t n = count_stacks(path);
    assert_true(n > 50);
    assert_int_equal(count_rows(path, "stacks"), n);
    store_close(s);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE stack_chunks; DROP INDEX profiles_time; "
                                      "PRAGMA user_version = 1",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'stacks_hash'"), 1);
    store_options ro = {.read_only = true};
    s = open_ok(path, &ro); /* read-only: accepted and read as it is */
    assert_loads_as(s, id_a, a);
    store_close(s);
    assert_int_equal(query_int(path, "PRAGMA user_version"), 1);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'profiles_time'"), 0);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'stack_chunks'"), 0);
    s = open_ok(path, NULL);
    assert_int_equal(query_int(path, "PRAGMA user_version"), 3);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'stacks_hash'"), 0);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'profiles_time'"), 1);
    assert_int_equal(query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'stack_chunks'"), 1);
    int64_t id = ingest_ok(s, t1, "heap", T0 + 2 * SEC, a);
    assert_int_equal(count_stacks(path), n); /* every stack found, as a row */
    assert_loads_as(s, id, a);
    id = ingest_ok(s, t1, "heap", T0 + 3 * SEC, b); /* new stacks: chunks */
    assert_true(count_stacks(path) > n);
    assert_int_equal(count_rows(path, "stacks"), n);
    assert_true(count_rows(path, "stack_chunks") > 0);
    assert_stacks_unique(path);
    assert_loads_as(s, id, b);
    assert_loads_as(s, id_a, a);
    check_integrity(s);
    store_close(s);
    pprof_free(a);
    pprof_free(b);

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 4", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_refused_untouched(path, "schema version 4 (this build reads 1 to 3)");
}

static void test_ingest_batch(void **state)
{
    (void)state;
    char path[600], err[STORE_ERR_LEN];
    int64_t t1, t2;
    store *s = open_two_targets(path, sizeof(path), &t1, &t2);
    pprof_profile *g1 = goroutine_profile(10), *g2 = goroutine_profile(20);
    pprof_profile *r = random_profile(7, 500, 80), *bad = random_profile(8, 300, 50);
    /* A sample pointing at a location that does not exist: refused. */
    bad->samples[bad->n_samples / 2].location_ids[0] = 999999;
    store_ingest_item items[5] = {
        {.target_id = t1, .profile_type = "goroutine", .time_ns = T0 + SEC, .profile = g1},
        {.target_id = t1, .profile_type = "heap", .time_ns = T0 + SEC, .profile = bad},
        {.target_id = t1, .profile_type = "goroutine", .time_ns = T0 + 2 * SEC, .profile = g2},
        {.target_id = 4242, .profile_type = "goroutine", .time_ns = T0 + SEC, .profile = g1},
        {.target_id = t2, .profile_type = "heap", .time_ns = T0 + SEC, .profile = r},
    };
    assert_int_equal(store_ingest_batch(s, items, 5), 0);
    for (size_t i = 0; i < 5; i++)
        printf("item %zu: rc %d id %" PRId64 " \"%s\"\n", i, items[i].rc, items[i].id, items[i].err);
    assert_int_equal(items[0].rc, 0);
    assert_int_equal(items[1].rc, -EINVAL);
    assert_non_null(strstr(items[1].err, "location id 999999 does not exist"));
    assert_int_equal(items[1].id, 0);
    assert_int_equal(items[2].rc, 0);
    assert_int_equal(items[3].rc, -ENOENT); /* unknown target */
    assert_int_equal(items[4].rc, 0);
    assert_true(items[0].id < items[2].id && items[2].id < items[4].id);
    int64_t count = -1;
    assert_int_equal(store_profiles_count(s, &count), 0);
    assert_int_equal(count, 3);
    const pprof_profile *want[] = {g1, NULL, g2, NULL, r};
    for (size_t i = 0; i < 5; i++) {
        if (!want[i])
            continue;
        pprof_profile *out = NULL;
        assert_int_equal(store_profile_load(s, items[i].id, &out, NULL), 0);
        assert_same_profile(want[i], out);
        pprof_free(out);
    }
    /* After the batch: the same content stored alone dedups against it, and
     * the refused profile, fixed, is stored fine. */
    int64_t again = ingest_ok(s, t2, "heap", T0 + 2 * SEC, r);
    pprof_profile *out = NULL;
    assert_int_equal(store_profile_load(s, again, &out, NULL), 0);
    assert_same_profile(r, out);
    pprof_free(out);
    bad->samples[bad->n_samples / 2].location_ids[0] = bad->locations[0].id;
    int64_t fixed = ingest_ok(s, t1, "heap", T0 + 3 * SEC, bad);
    assert_int_equal(store_profile_load(s, fixed, &out, NULL), 0);
    assert_same_profile(bad, out);
    pprof_free(out);
    assert_int_equal(store_ingest_batch(s, items, 0), 0);
    assert_int_equal(store_ingest_batch(NULL, items, 1), -EINVAL);
    assert_stacks_unique(path);
    check_integrity(s);
    store_close(s);

    /* Read-only: every item refused with a message. */
    store_options ro = {.read_only = true};
    s = open_ok(path, &ro);
    assert_int_equal(store_ingest_batch(s, items, 2), -EROFS);
    assert_int_equal(items[0].rc, -EROFS);
    assert_string_equal(items[1].err, "database opened read-only");
    (void)err;
    store_close(s);
    pprof_free(g1);
    pprof_free(g2);
    pprof_free(r);
    pprof_free(bad);
}

/* Blobs written by zlib (databases of earlier versions) unpack with the
 * libdeflate code, and packed blobs unpack to the same bytes; a corrupt
 * payload is refused. */
static void test_pack_formats(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store *s = open_ok(path, NULL);
    unsigned char raw[5000];
    uint64_t st = 7;
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i % 61 == 0 ? rnd(&st) : i % 7); /* compressible */
    /* zlib-made: format 1, uvarint length, compress2 level 1 output. */
    uLongf zlen = compressBound(sizeof(raw));
    unsigned char *z = malloc(zlen + 8);
    assert_non_null(z);
    z[0] = 1;
    size_t hdr = 1;
    for (uint64_t v = sizeof(raw);; v >>= 7) {
        z[hdr++] = (unsigned char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    assert_int_equal(compress2(z + hdr, &zlen, raw, sizeof(raw), 1), Z_OK);
    lw_buf out, packed;
    lw_buf_init(&out, 1 << 20);
    lw_buf_init(&packed, 1 << 20);
    assert_int_equal(store__unpack(z, hdr + zlen, &out), 0);
    assert_int_equal(out.len, sizeof(raw));
    assert_memory_equal(out.data, raw, sizeof(raw));
    /* Ours round-trips and is smaller than the input. */
    assert_int_equal(store__pack(s, raw, sizeof(raw), &packed), 0);
    printf("5000 bytes: zlib %zu, ours %zu bytes packed\n", hdr + (size_t)zlen, packed.len);
    assert_true(packed.len < sizeof(raw) / 2);
    assert_int_equal(store__unpack(packed.data, packed.len, &out), 0);
    assert_int_equal(out.len, sizeof(raw));
    assert_memory_equal(out.data, raw, sizeof(raw));
    /* Corrupt payload and a lying length are refused. */
    z[hdr + zlen / 2] ^= 0xff;
    assert_int_equal(store__unpack(z, hdr + zlen, &out), -EINVAL);
    packed.data[1] ^= 0x01; /* the length's low bit */
    assert_int_equal(store__unpack(packed.data, packed.len, &out), -EINVAL);
    free(z);
    lw_buf_cleanup(&out);
    lw_buf_cleanup(&packed);
    store_close(s);
}

/* ---- batched loads and the reader pool ----------------------------------------- */

/* A copy of p with its samples shuffled and only about one in `keep` kept:
 * the stack ids of the stored copy are then out of order and have gaps of
 * every size (both the stepping and the re-seeking path of the batched
 * stack scan). */
static pprof_profile *shuffled_subset(const pprof_profile *p, uint64_t seed, unsigned keep)
{
    uint64_t st = seed * 31 + 5;
    pprof_profile *q = pprof_copy(p);
    assert_non_null(q);
    for (size_t i = q->n_samples; i > 1; i--) {
        size_t j = (size_t)(rnd(&st) % i);
        pprof_sample tmp = q->samples[i - 1];
        q->samples[i - 1] = q->samples[j];
        q->samples[j] = tmp;
    }
    size_t n = 0;
    for (size_t i = 0; i < q->n_samples; i++)
        if (rnd(&st) % keep == 0)
            q->samples[n++] = q->samples[i];
    q->n_samples = n;
    return q;
}

static void test_load_batched(void **state)
{
    (void)state;
    char path[600];
    int64_t t1, t2;
    store *s = open_two_targets(path, sizeof(path), &t1, &t2);
    /* Two large profiles with their own stacks, stored one after the other
     * (their stack ids are two ranges), a small one, then a mix of all
     * three: shuffled, a subset, labels on some samples. */
    pprof_profile *a = random_profile(11, 3000, 400);
    pprof_profile *b = random_profile(12, 3000, 400);
    pprof_profile *c = random_profile(13, 300, 40);
    int64_t ia = ingest_ok(s, t1, "heap", T0, a);
    int64_t ib = ingest_ok(s, t2, "heap", T0, b);
    int64_t ic = ingest_ok(s, t1, "heap", T0 + SEC, c);
    const pprof_profile *parts[3] = {b, a, c};
    pprof_profile *merged = NULL;
    char err[PPROF_ERR_LEN] = "";
    assert_int_equal(pprof_merge(parts, 3, &merged, err, sizeof(err)), 0);
    pprof_profile *m = shuffled_subset(merged, 3, 6);
    pprof_profile *lab = mutate(m, 9);
    printf("mixed profile: %zu of %zu merged samples, shuffled, 5 labelled ones added\n",
           lab->n_samples, merged->n_samples);
    int64_t im = ingest_ok(s, t2, "heap", T0 + 2 * SEC, lab);
    const pprof_profile *want[4] = {a, b, c, lab};
    const int64_t ids[4] = {ia, ib, ic, im};
    for (int k = 0; k < 4; k++) {
        pprof_profile *got = NULL;
        store_profile_info info;
        assert_int_equal(store_profile_load(s, ids[k], &got, &info), 0);
        printf("profile %" PRId64 " (%zu samples):\n", ids[k], want[k]->n_samples);
        assert_same_profile(want[k], got);
        pprof_free(got);
    }
    /* All four at once (threads, one reader each), then with an absent id:
     * all or nothing. */
    pprof_profile *many[4] = {NULL, NULL, NULL, NULL};
    store_profile_info infos[4];
    assert_int_equal(store_profiles_load(s, ids, 4, many, infos), 0);
    for (int k = 0; k < 4; k++) {
        printf("store_profiles_load[%d] = profile %" PRId64 ":\n", k, infos[k].id);
        assert_int_equal(infos[k].id, ids[k]);
        assert_same_profile(want[k], many[k]);
        pprof_free(many[k]);
    }
    const int64_t bad[3] = {ia, 999999, ib};
    int rc = store_profiles_load(s, bad, 3, many, NULL);
    printf("store_profiles_load with an absent id: %d, out %p %p %p\n", rc, (void *)many[0],
           (void *)many[1], (void *)many[2]);
    assert_int_equal(rc, -ENOENT);
    assert_null(many[0]);
    assert_null(many[1]);
    assert_null(many[2]);
    assert_int_equal(store_profiles_load(s, ids, 0, many, NULL), -EINVAL);
    pprof_free(a);
    pprof_free(b);
    pprof_free(c);
    pprof_free(merged);
    pprof_free(m);
    pprof_free(lab);
    store_close(s);
}

/* The pool hands out distinct connections that read at the same time: two
 * readers taken by one thread both hold open read transactions at once
 * (with one shared connection the second BEGIN would fail). Bulk reads
 * never take the last connection: with all but one taken by bulk readers,
 * short queries still run (on the last one), from a thread that must
 * finish. */
typedef struct short_q {
    store *s;
    int64_t tid, pid;
    int rc;
} short_q;

static void *short_queries(void *arg)
{
    short_q *q = arg;
    store_point *pts = NULL;
    store_stack_value *sv = NULL;
    store_profile_info *list = NULL;
    size_t n = 0;
    q->rc = store_series_get(q->s, q->tid, "heap_inuse_bytes", 0, INT64_MAX, &pts, &n);
    if (!q->rc)
        q->rc = store_profile_stacks(q->s, q->pid, 1, &sv, &n);
    if (!q->rc)
        q->rc = store_profiles_list(q->s, NULL, &list, &n);
    free(pts);
    free(sv);
    free(list);
    return NULL;
}

static void test_reader_pool(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    store_options opt = {.max_readers = 3};
    store *s = open_ok(path, &opt);
    int64_t tid = target(s, "svc", "127.0.0.1:1");
    pprof_profile *p = random_profile(21, 200, 30);
    int64_t pid = ingest_ok(s, tid, "heap", T0, p);

    store__conn *r1 = store__reader_get(s, true);
    store__conn *r2 = store__reader_get(s, true);
    assert_ptr_not_equal(r1, r2);
    assert_int_equal(store__exec(r1->db, "BEGIN; SELECT count(*) FROM profiles"), 0);
    assert_int_equal(store__exec(r2->db, "BEGIN; SELECT count(*) FROM stacks"), 0);
    printf("two readers in open read transactions at once: ok\n");
    store__exec_best_effort(r1->db, "COMMIT");
    store__exec_best_effort(r2->db, "COMMIT");
    /* r1 and r2 (2 of 3) are bulk: the short queries get the third. */
    short_q q = {.s = s, .tid = tid, .pid = pid, .rc = -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, short_queries, &q), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    printf("short queries with all but one reader taken by bulk reads: rc %d\n", q.rc);
    assert_int_equal(q.rc, 0);
    store__reader_put(s, r1);
    store__reader_put(s, r2);
    /* A read-only handle of the same file has its own pool. */
    store_options ro = {.read_only = true, .max_readers = 2};
    store *s2 = open_ok(path, &ro);
    pprof_profile *got = NULL;
    assert_int_equal(store_profile_load(s2, pid, &got, NULL), 0);
    assert_same_profile(p, got);
    pprof_free(got);
    store_close(s2);
    pprof_free(p);
    store_close(s);
}

/* Several bulk readers (whole profiles), a short-query reader (series,
 * stacks, top frames: the detector's reads) and a writer (ingest with
 * retention) at once on one handle with the default pool. */
typedef struct pool_thr {
    store *s;
    int64_t tid;
    int64_t big_id;
    int64_t big_total;
    volatile int done;
    int errors;
    int loads, shorts;
} pool_thr;

static void *pool_writer(void *arg)
{
    pool_thr *t = arg;
    char err[STORE_ERR_LEN];
    for (int i = 0; i < 40; i++) {
        pprof_profile *p = random_profile((uint64_t)(i % 8) + 500, 400, 150);
        if (store_ingest(t->s, t->tid, "heap", T0 + (i + 10) * SEC, p, NULL, err, sizeof(err)))
            __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
        pprof_free(p);
        if (i % 10 == 9) {
            int64_t d;
            if (store_retention_apply(t->s, 8 * SEC, 0, T0 + (i + 10) * SEC, &d))
                __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
        }
    }
    __atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *pool_loader(void *arg)
{
    pool_thr *t = arg;
    while (!__atomic_load_n(&t->done, __ATOMIC_ACQUIRE)) {
        pprof_profile *p = NULL;
        int64_t tot[2] = {0, 0};
        int rc = store_profile_load(t->s, t->big_id, &p, NULL);
        if (!rc)
            pprof_totals(p, tot);
        if (rc || tot[0] != t->big_total)
            __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
        pprof_free(p);
        __atomic_add_fetch(&t->loads, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *pool_short(void *arg)
{
    pool_thr *t = arg;
    while (!__atomic_load_n(&t->done, __ATOMIC_ACQUIRE)) {
        store_point *pts = NULL;
        store_stack_value *sv = NULL;
        size_t n = 0, nsv = 0;
        if (store_series_get(t->s, t->tid, "heap_inuse_bytes", 0, INT64_MAX, &pts, &n) ||
            store_profile_stacks(t->s, t->big_id, 1, &sv, &nsv))
            __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
        for (size_t i = 0; i < nsv && i < 20; i++) {
            char fname[128], loc[256];
            if (store_stack_top_frame(t->s, sv[i].stack_id, fname, sizeof(fname), loc,
                                      sizeof(loc)))
                __atomic_add_fetch(&t->errors, 1, __ATOMIC_RELAXED);
        }
        free(pts);
        free(sv);
        __atomic_add_fetch(&t->shorts, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_reader_pool_threads(void **state)
{
    (void)state;
    char path[600];
    db_path(path, sizeof(path));
    pool_thr t = {0};
    t.s = open_ok(path, NULL);
    t.tid = target(t.s, "svc", "127.0.0.1:1");
    int64_t other = target(t.s, "svc", "127.0.0.1:2");
    /* The profile the loaders read belongs to another target, so
     * retention of the writer's series never deletes it. */
    pprof_profile *big = random_profile(77, 3000, 300);
    t.big_id = ingest_ok(t.s, other, "heap", T0 + 100 * SEC, big);
    int64_t tot[2];
    pprof_totals(big, tot);
    t.big_total = tot[0];
    pthread_t w, l[3], sh;
    assert_int_equal(pthread_create(&w, NULL, pool_writer, &t), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&l[i], NULL, pool_loader, &t), 0);
    assert_int_equal(pthread_create(&sh, NULL, pool_short, &t), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(l[i], NULL);
    pthread_join(sh, NULL);
    printf("pool: %d loads, %d short-query rounds, %d errors\n", t.loads, t.shorts, t.errors);
    assert_int_equal(t.errors, 0);
    assert_true(t.loads > 0);
    assert_true(t.shorts > 0);
    check_integrity(t.s);
    pprof_free(big);
    store_close(t.s);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "%s/test-work", LW_BINARY_DIR);
    mkdir(g_dir, 0755);
    snprintf(g_dir, sizeof(g_dir), "%s/test-work/store-XXXXXX", LW_BINARY_DIR);
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_unsymbolized),
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_delta_sets),
        cmocka_unit_test(test_memo_reordered),
        cmocka_unit_test(test_idset_del),
        cmocka_unit_test(test_delta_formats),
        cmocka_unit_test(test_function_text_keys),
        cmocka_unit_test(test_keyframe_id_reuse),
        cmocka_unit_test(test_corrupt_rows),
        cmocka_unit_test(test_retention_age),
        cmocka_unit_test(test_retention_gc_partial),
        cmocka_unit_test(test_retention_sweeps_without_gc),
        cmocka_unit_test(test_gc_revival),
        cmocka_unit_test(test_retention_size),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_foreign_files),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_series_and_lists),
        cmocka_unit_test(test_stacks_and_top_frames),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_ingest_batch),
        cmocka_unit_test(test_new_stacks),
        cmocka_unit_test(test_new_stack_repeated_in_block),
        cmocka_unit_test(test_chunk_codec),
        cmocka_unit_test(test_stackmap),
        cmocka_unit_test(test_schema_upgrade),
        cmocka_unit_test(test_pack_formats),
        cmocka_unit_test(test_load_batched),
        cmocka_unit_test(test_reader_pool),
        cmocka_unit_test(test_reader_pool_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
