/* test_pprof.c — unit tests of the pprof codec (pprof/pprof.h).
 *
 * Profiles are built with the builder API, or packed with protobuf-c's
 * generated code (the independent reference for the wire format) and then
 * broken one field at a time to check each validation message. Bad inputs
 * (truncated gzip, random bytes, gzip of garbage, a doubly gzipped bomb)
 * must fail with a clear message and never crash under ASan/UBSan. Render
 * outputs are compared with exact text checked against `go tool pprof -top`
 * on the same (encoded) profile. Allocation failures are injected into every
 * allocation of every operation (see fail_nth).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "pprof.h"
#include "profile.pb-c.h"

#define MS 1000000LL

/* ---- allocation failure injection ---------------------------------------------- */

/* The test binary is linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc (tests/pprof.cmake), so every allocation made by lwpprof
 * and lwcommon goes through these. When fail_at is n > 0, the n-th
 * allocation from then on fails. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long fail_at;     /* 0: never fail */
static long alloc_count; /* allocations since fail_at was set */
static bool failed;      /* the injected failure happened */

static bool inject(void)
{
    if (fail_at <= 0)
        return false;
    if (++alloc_count == fail_at) {
        failed = true;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return inject() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return inject() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return inject() ? NULL : __real_realloc(p, n);
}

static void fail_nth(long n)
{
    fail_at = n;
    alloc_count = 0;
    failed = false;
}

/* ---- fixtures --------------------------------------------------------------- */

typedef struct tiny_ids {
    uint64_t leaf, helper_work, work_rec, main_loc;
} tiny_ids;

/* A tiny CPU profile (samples/count, cpu/nanoseconds):
 *   S1: main.main -> main.work -> main.helper (inlined) -> main.leaf   10ms
 *   S2: main.main -> main.work -> main.helper (inlined)                20ms
 *   S3: main.main -> main.work -> main.helper (inlined) -> main.work   30ms
 * `shuffle` builds the same stacks with other ids, addresses and order, as
 * another process of the same program would. */
static pprof_profile *tiny(bool shuffle)
{
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(pprof_add_sample_type(p, "samples", "count"), 0);
    assert_int_equal(pprof_add_sample_type(p, "cpu", "nanoseconds"), 0);
    assert_int_equal(pprof_set_period(p, "cpu", "nanoseconds", 10 * MS), 0);
    p->time_nanos = shuffle ? 2000 : 1000;
    p->duration_nanos = 1000000000;
    pprof_mapping m = {0};
    m.memory_start = shuffle ? 0x7f0000 : 0x400000;
    m.memory_limit = m.memory_start + 0x100000;
    m.filename = pprof_intern(p, "/usr/bin/svc");
    m.has_functions = true;
    uint64_t map_id = pprof_add_mapping(p, &m);
    assert_true(map_id > 0);
    uint64_t f_main, f_work, f_helper, f_leaf;
    if (shuffle) {
        f_leaf = pprof_add_function(p, "main.leaf", "main.leaf", "leaf.go", 8);
        f_helper = pprof_add_function(p, "main.helper", "main.helper", "work.go", 28);
        f_work = pprof_add_function(p, "main.work", "main.work", "work.go", 18);
        f_main = pprof_add_function(p, "main.main", "main.main", "main.go", 3);
    } else {
        f_main = pprof_add_function(p, "main.main", "main.main", "main.go", 3);
        f_work = pprof_add_function(p, "main.work", "main.work", "work.go", 18);
        f_helper = pprof_add_function(p, "main.helper", "main.helper", "work.go", 28);
        f_leaf = pprof_add_function(p, "main.leaf", "main.leaf", "leaf.go", 8);
    }
    assert_true(f_main && f_work && f_helper && f_leaf);
    uint64_t base = m.memory_start;
    pprof_line l_main = {f_main, 5, 0};
    pprof_line l_hw[2] = {{f_helper, 30, 0}, {f_work, 20, 0}};
    pprof_line l_rec = {f_work, 25, 0};
    pprof_line l_leaf = {f_leaf, 10, 0};
    tiny_ids ids;
    ids.main_loc = pprof_add_location(p, map_id, base + 0x500, &l_main, 1);
    ids.work_rec = pprof_add_location(p, map_id, base + 0x250, &l_rec, 1);
    ids.helper_work = pprof_add_location(p, map_id, base + 0x200, l_hw, 2);
    ids.leaf = pprof_add_location(p, map_id, base + 0x100, &l_leaf, 1);
    assert_true(ids.main_loc && ids.work_rec && ids.helper_work && ids.leaf);
    uint64_t s1[] = {ids.leaf, ids.helper_work, ids.main_loc};
    uint64_t s2[] = {ids.helper_work, ids.main_loc};
    uint64_t s3[] = {ids.work_rec, ids.helper_work, ids.main_loc};
    int64_t v1[] = {1, 10 * MS}, v2[] = {2, 20 * MS}, v3[] = {3, 30 * MS};
    if (shuffle) {
        assert_int_equal(pprof_add_sample(p, s3, 3, v3, NULL, 0), 0);
        assert_int_equal(pprof_add_sample(p, s2, 2, v2, NULL, 0), 0);
        assert_int_equal(pprof_add_sample(p, s1, 3, v1, NULL, 0), 0);
    } else {
        assert_int_equal(pprof_add_sample(p, s1, 3, v1, NULL, 0), 0);
        assert_int_equal(pprof_add_sample(p, s2, 2, v2, NULL, 0), 0);
        assert_int_equal(pprof_add_sample(p, s3, 3, v3, NULL, 0), 0);
    }
    char err[PPROF_ERR_LEN] = "";
    assert_int_equal(pprof_validate(p, err, sizeof(err)), 0);
    return p;
}

static void encode(const pprof_profile *p, bool gz, lw_buf *out)
{
    lw_buf_init(out, (size_t)64 << 20);
    assert_int_equal(pprof_encode(p, gz, out), 0);
    assert_true(out->len > 0);
}

static int decode_msg(const void *data, size_t len, const pprof_limits *lim, char *err, size_t n)
{
    pprof_profile *p = (pprof_profile *)1;
    err[0] = '\0';
    int rc = pprof_decode(data, len, lim, &p, err, n);
    if (rc == 0)
        pprof_free(p);
    else
        assert_null(p);
    printf("    decode -> %d: %s\n", rc, err);
    return rc;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        printf("    expected \"%s\" in \"%s\"\n", needle, hay);
        fail();
    }
}

/* gzip data into a new malloc'd buffer (*out_len bytes). */
static unsigned char *gz(const void *data, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    z.next_in = (unsigned char *)(uintptr_t)data;
    z.avail_in = (unsigned)len;
    z.next_out = out;
    z.avail_out = (unsigned)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* n zero bytes, gzipped (streamed, never materialised). */
static unsigned char *gz_zeros(size_t n, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    static const unsigned char zeros[1 << 16];
    size_t cap = n / 512 + 4096, done = 0;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    z.next_out = out;
    z.avail_out = (unsigned)cap;
    int zr;
    do {
        size_t chunk = n - done < sizeof(zeros) ? n - done : sizeof(zeros);
        z.next_in = (unsigned char *)(uintptr_t)zeros;
        z.avail_in = (unsigned)chunk;
        done += chunk;
        zr = deflate(&z, done == n ? Z_FINISH : Z_NO_FLUSH);
        assert_true(z.avail_out > 0);
    } while (zr == Z_OK);
    assert_int_equal(zr, Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* ---- round trips ------------------------------------------------------------------ */

static void test_build_encode_decode(void **state)
{
    (void)state;
    pprof_profile *p = tiny(false);
    for (int g = 0; g < 2; g++) {
        lw_buf b;
        encode(p, g == 1, &b);
        char err[PPROF_ERR_LEN];
        pprof_profile *q = NULL;
        assert_int_equal(pprof_decode(b.data, b.len, NULL, &q, err, sizeof(err)), 0);
        assert_int_equal(q->n_samples, 3);
        assert_int_equal(q->n_locations, 4);
        assert_int_equal(q->n_functions, 4);
        assert_int_equal(q->n_mappings, 1);
        assert_int_equal(q->period, 10 * MS);
        assert_string_equal(q->strings[q->period_type.type], "cpu");
        int64_t t[2];
        pprof_totals(q, t);
        printf("    %s: totals %lld %lld\n", g ? "gzip" : "raw", (long long)t[0], (long long)t[1]);
        assert_int_equal(t[0], 6);
        assert_int_equal(t[1], 60 * MS);
        for (size_t i = 0; i < 3; i++)
            assert_int_equal(pprof_stack_hash(p, &p->samples[i]), pprof_stack_hash(q, &q->samples[i]));
        /* Re-encoding the decoded profile gives the same bytes. */
        lw_buf b2;
        encode(q, g == 1, &b2);
        assert_int_equal(b2.len, b.len);
        assert_memory_equal(b2.data, b.data, b.len);
        lw_buf_cleanup(&b2);
        pprof_free(q);
        lw_buf_cleanup(&b);
    }
    pprof_free(p);
}

/* Cross-check the direct decoder against protobuf-c's unpack, and the
 * direct encoder against protobuf-c's pack. */
/* A profile using every field: labels (string and numeric), negative
 * values, comments, default sample type, frames regexps, mapping flags. */
static pprof_profile *rich(void)
{
    pprof_profile *a = tiny(false), *c = tiny(true), *d = NULL;
    char err[PPROF_ERR_LEN];
    pprof_scale(c, 2.0);
    assert_int_equal(pprof_diff(a, c, &d, err, sizeof(err)), 0);
    pprof_free(a);
    pprof_free(c);
    pprof_label *l = d->samples[0].labels = malloc(2 * sizeof(pprof_label));
    assert_non_null(l);
    l[0] = (pprof_label){pprof_intern(d, "bytes"), 0, -4096, pprof_intern(d, "bytes")};
    l[1] = (pprof_label){pprof_intern(d, "worker"), pprof_intern(d, "w1"), 0, 0};
    d->samples[0].n_labels = 2;
    assert_int_equal(pprof_add_comment(d, "made by test_pprof"), 0);
    assert_int_equal(pprof_set_default_sample_type(d, "cpu"), 0);
    d->drop_frames = pprof_intern(d, "runtime\\..*");
    d->keep_frames = pprof_intern(d, "main\\..*");
    d->mappings[0].has_filenames = d->mappings[0].has_line_numbers = true;
    d->mappings[0].has_inline_frames = true;
    d->mappings[0].build_id = pprof_intern(d, "abc123");
    d->mappings[0].file_offset = 0x1000;
    d->locations[0].is_folded = true;
    d->locations[0].lines[0].column = 7;
    d->functions[0].start_line = -1;
    d->time_nanos = -5;
    return d;
}

static void cross_check(pprof_profile *p)
{
    lw_buf b;
    encode(p, false, &b);
    Perftools__Profiles__Profile *pb =
        perftools__profiles__profile__unpack(NULL, b.len, (const uint8_t *)b.data);
    assert_non_null(pb);
    pprof_profile *q = NULL;
    char err[PPROF_ERR_LEN];
    assert_int_equal(pprof_decode(b.data, b.len, NULL, &q, err, sizeof(err)), 0);
    assert_int_equal(pb->n_sample, q->n_samples);
    assert_int_equal(pb->n_location, q->n_locations);
    assert_int_equal(pb->n_function, q->n_functions);
    assert_int_equal(pb->n_string_table, q->n_strings);
    for (size_t i = 0; i < pb->n_string_table; i++)
        assert_string_equal(pb->string_table[i], q->strings[i]);
    for (size_t i = 0; i < pb->n_sample; i++) {
        assert_int_equal(pb->sample[i]->n_value, q->samples[i].n_values);
        assert_int_equal(pb->sample[i]->n_location_id, q->samples[i].n_locations);
        for (size_t j = 0; j < pb->sample[i]->n_value; j++)
            assert_int_equal(pb->sample[i]->value[j], q->samples[i].values[j]);
        for (size_t j = 0; j < pb->sample[i]->n_location_id; j++)
            assert_int_equal(pb->sample[i]->location_id[j], q->samples[i].location_ids[j]);
    }
    for (size_t i = 0; i < pb->n_location; i++) {
        assert_int_equal(pb->location[i]->id, q->locations[i].id);
        assert_int_equal(pb->location[i]->address, q->locations[i].address);
        assert_int_equal(pb->location[i]->n_line, q->locations[i].n_lines);
    }
    /* Our direct encoder writes exactly what protobuf-c's packer writes. */
    size_t size = perftools__profiles__profile__get_packed_size(pb);
    uint8_t *packed = malloc(size);
    assert_non_null(packed);
    assert_int_equal(perftools__profiles__profile__pack(pb, packed), size);
    printf("    ours %zu bytes, protobuf-c %zu bytes\n", b.len, size);
    assert_int_equal(size, b.len);
    assert_memory_equal(packed, b.data, size);
    free(packed);
    perftools__profiles__profile__free_unpacked(pb, NULL);
    pprof_free(q);
    lw_buf_cleanup(&b);
}

static void test_protobuf_c_cross_check(void **state)
{
    (void)state;
    pprof_profile *p = tiny(true);
    cross_check(p);
    pprof_free(p);
    p = rich();
    pprof_label *labels = p->samples[0].labels; /* malloc'd by rich() */
    cross_check(p);
    pprof_free(p);
    free(labels);
    /* Bigger than the encoder's 64 KiB write buffer: many samples (the
     * buffer is flushed between elements) and one string of 200 KiB (an
     * element that needs a bigger buffer). Gzip must round-trip too. */
    p = tiny(false);
    char *big = malloc(200 * 1024 + 1);
    assert_non_null(big);
    memset(big, 'x', 200 * 1024);
    big[200 * 1024] = '\0';
    assert_true(pprof_intern(p, big) > 0);
    free(big);
    uint64_t stack[] = {p->samples[0].location_ids[0], p->samples[0].location_ids[1]};
    for (int64_t i = 0; i < 20000; i++) {
        int64_t v[] = {i, i * 1000};
        assert_int_equal(pprof_add_sample(p, stack, 2, v, NULL, 0), 0);
    }
    cross_check(p);
    lw_buf gz, raw;
    encode(p, true, &gz);
    encode(p, false, &raw);
    pprof_profile *q = NULL;
    char err[PPROF_ERR_LEN];
    assert_int_equal(pprof_decode(gz.data, gz.len, NULL, &q, err, sizeof(err)), 0);
    lw_buf again;
    encode(q, false, &again);
    printf("    big profile: %zu bytes raw, %zu gzipped\n", raw.len, gz.len);
    assert_int_equal(again.len, raw.len);
    assert_memory_equal(again.data, raw.data, raw.len);
    pprof_free(q);
    lw_buf_cleanup(&gz);
    lw_buf_cleanup(&raw);
    lw_buf_cleanup(&again);
    pprof_free(p);
}

static void test_copy(void **state)
{
    (void)state;
    pprof_profile *p = tiny(false);
    pprof_profile *c = pprof_copy(p);
    assert_non_null(c);
    lw_buf a, b;
    encode(p, false, &a);
    encode(c, false, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    /* The copy is independent and still buildable. */
    uint64_t f = pprof_add_function(c, "main.extra", NULL, "x.go", 1);
    assert_int_equal(f, 5);
    assert_int_equal(p->n_functions, 4);
    lw_buf_cleanup(&a);
    lw_buf_cleanup(&b);
    pprof_free(c);
    pprof_free(p);
    pprof_free(NULL);
}

static void test_builder_dedup_and_errors(void **state)
{
    (void)state;
    pprof_profile *p = pprof_new();
    assert_non_null(p);
    assert_int_equal(p->n_strings, 1);
    assert_string_equal(p->strings[0], "");
    assert_int_equal(pprof_intern(p, NULL), 0);
    int64_t a = pprof_intern(p, "a");
    assert_int_equal(pprof_intern(p, "a"), a);
    assert_int_equal(pprof_add_sample_type(p, "goroutine", "count"), 0);
    uint64_t f1 = pprof_add_function(p, "f", "f", "f.go", 1);
    assert_int_equal(pprof_add_function(p, "f", "f", "f.go", 1), f1);
    assert_int_not_equal(pprof_add_function(p, "f", "f", "f.go", 2), f1);
    pprof_line l = {f1, 3, 0};
    uint64_t loc = pprof_add_location(p, 0, 0x10, &l, 1);
    assert_int_equal(pprof_add_location(p, 0, 0x10, &l, 1), loc);
    pprof_line bad = {99, 3, 0};
    assert_int_equal(pprof_add_location(p, 0, 0x10, &bad, 1), 0);  /* unknown function */
    assert_int_equal(pprof_add_location(p, 7, 0x10, &l, 1), 0);    /* unknown mapping */
    int64_t v = 1;
    uint64_t missing = 1234;
    assert_int_equal(pprof_add_sample(p, &missing, 1, &v, NULL, 0), -EINVAL);
    assert_int_equal(pprof_add_sample(p, &loc, 1, &v, NULL, 0), 0);
    assert_int_equal(pprof_add_sample_type(p, "late", "count"), -EINVAL);
    assert_int_equal(pprof_add_comment(p, "hello"), 0);
    assert_int_equal(pprof_set_default_sample_type(p, "goroutine"), 0);
    char err[PPROF_ERR_LEN];
    assert_int_equal(pprof_validate(p, err, sizeof(err)), 0);
    pprof_free(p);
}

/* ---- validation, one broken field at a time ------------------------------------------ */

typedef void (*breaker)(Perftools__Profiles__Profile *pb);

static void break_string_index(Perftools__Profiles__Profile *pb) { pb->function[0]->name = 999; }
static void break_location_id0(Perftools__Profiles__Profile *pb) { pb->location[1]->id = 0; }
static void break_dup_function(Perftools__Profiles__Profile *pb) { pb->function[1]->id = pb->function[0]->id; }
static void break_dup_location(Perftools__Profiles__Profile *pb) { pb->location[2]->id = pb->location[0]->id; }
static void break_value_count(Perftools__Profiles__Profile *pb) { pb->sample[0]->n_value = 1; }
static void break_missing_function(Perftools__Profiles__Profile *pb) { pb->location[0]->line[0]->function_id = 99; }
static void break_missing_mapping(Perftools__Profiles__Profile *pb) { pb->location[0]->mapping_id = 42; }
static void break_missing_location(Perftools__Profiles__Profile *pb) { pb->sample[0]->location_id[0] = 77; }
static void break_sample_type_str(Perftools__Profiles__Profile *pb) { pb->sample_type[1]->unit = -3; }

static char not_empty[] = "oops";
static char *saved_first;
static void break_string0(Perftools__Profiles__Profile *pb)
{
    saved_first = pb->string_table[0];
    pb->string_table[0] = not_empty;
}

static void break_no_strings(Perftools__Profiles__Profile *pb)
{
    pb->n_string_table = 0;
}

static void check_broken(breaker brk, const char *want)
{
    pprof_profile *p = tiny(false);
    lw_buf b;
    encode(p, false, &b);
    Perftools__Profiles__Profile *pb =
        perftools__profiles__profile__unpack(NULL, b.len, (const uint8_t *)b.data);
    assert_non_null(pb);
    size_t n_strings = pb->n_string_table;
    saved_first = NULL;
    brk(pb);
    size_t size = perftools__profiles__profile__get_packed_size(pb);
    uint8_t *raw = malloc(size + 1);
    assert_non_null(raw);
    assert_int_equal(perftools__profiles__profile__pack(pb, raw), size);
    char err[PPROF_ERR_LEN];
    assert_int_equal(decode_msg(raw, size, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, want);
    /* The same check through pprof_validate on a hand-broken struct is
     * covered by decode: it runs pprof_validate's code. Gzipped too: */
    size_t zlen;
    unsigned char *z = gz(raw, size, &zlen);
    assert_int_equal(decode_msg(z, zlen, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, want);
    free(z);
    free(raw);
    if (saved_first)
        pb->string_table[0] = saved_first;
    pb->n_string_table = n_strings;
    pb->sample[0]->n_value = 2;
    perftools__profiles__profile__free_unpacked(pb, NULL);
    lw_buf_cleanup(&b);
    pprof_free(p);
}

static void test_validation_messages(void **state)
{
    (void)state;
    check_broken(break_string_index, "function[0].name: string index 999 out of range");
    check_broken(break_location_id0, "location[1]: id is 0");
    check_broken(break_dup_function, "duplicate function id 1");
    check_broken(break_dup_location, "duplicate location id");
    check_broken(break_value_count, "sample 0: has 1 values, but the profile has 2 sample types");
    check_broken(break_missing_function, "function id 99 does not exist");
    check_broken(break_missing_mapping, "mapping id 42 does not exist");
    check_broken(break_missing_location, "sample 0: location id 77 does not exist");
    check_broken(break_sample_type_str, "sample_type[1].unit: string index -3 out of range");
    check_broken(break_string0, "string_table[0] must be empty");
    check_broken(break_no_strings, "string_table is empty");
}

/* The decoder checks samples by bounds gathered while reading them (one
 * pass fewer); whatever breaks those bounds must still be found and named
 * exactly: a location id one past the dense range, a location id 0, a
 * sample with too many values, label strings out of range (big and
 * negative), and non-dense location ids, which take the precise pass. */
static void check_broken_struct(void (*brk)(pprof_profile *), const char *want)
{
    pprof_profile *p = tiny(false);
    int64_t v[] = {4, 40, 400};
    pprof_label lab = {.key = pprof_intern(p, "bytes"), .num = 64};
    assert_int_equal(pprof_add_sample(p, p->samples[0].location_ids, 1, v, &lab, 1), 0);
    brk(p);
    lw_buf b;
    encode(p, true, &b);
    char err[PPROF_ERR_LEN];
    assert_int_equal(decode_msg(b.data, b.len, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, want);
    lw_buf_cleanup(&b);
    pprof_free(p);
}

static void brk_past_end(pprof_profile *p) { p->samples[2].location_ids[1] = p->n_locations + 1; }
static void brk_zero_id(pprof_profile *p) { p->samples[1].location_ids[0] = 0; }
static void brk_extra_value(pprof_profile *p) { p->samples[3].n_values = 3; }
static void brk_label_key(pprof_profile *p) { p->samples[3].labels[0].key = (int64_t)p->n_strings; }
static void brk_label_unit(pprof_profile *p) { p->samples[3].labels[0].num_unit = -2; }
static void brk_sparse_ids(pprof_profile *p)
{
    /* Location ids 1000.. (not dense): the decoder checks each sample. */
    for (size_t i = 0; i < p->n_locations; i++)
        p->locations[i].id += 1000;
    for (size_t i = 0; i < p->n_samples; i++)
        for (size_t j = 0; j < p->samples[i].n_locations; j++)
            p->samples[i].location_ids[j] += 1000;
    p->samples[3].location_ids[0] = 7;
}

static void test_sample_bounds(void **state)
{
    (void)state;
    char want[96];
    pprof_profile *p = tiny(false);
    snprintf(want, sizeof(want), "sample 2: location id %zu does not exist", p->n_locations + 1);
    pprof_free(p);
    check_broken_struct(brk_past_end, want);
    check_broken_struct(brk_zero_id, "sample 1: location id 0 does not exist");
    check_broken_struct(brk_extra_value, "sample 3: has 3 values, but the profile has 2 sample types");
    check_broken_struct(brk_label_key, "sample label[3].key: string index");
    check_broken_struct(brk_label_unit, "sample label[3].num_unit: string index -2 out of range");
    check_broken_struct(brk_sparse_ids, "sample 3: location id 7 does not exist");
}

static void test_validate_api(void **state)
{
    (void)state;
    pprof_profile *p = tiny(false);
    char err[PPROF_ERR_LEN];
    p->samples[1].location_ids[0] = 555;
    assert_int_equal(pprof_validate(p, err, sizeof(err)), -EINVAL);
    printf("    validate: %s\n", err);
    assert_contains(err, "sample 1: location id 555 does not exist");
    p->samples[1].location_ids[0] = p->samples[0].location_ids[1];
    p->functions[2].id = 0;
    assert_int_equal(pprof_validate(p, err, sizeof(err)), -EINVAL);
    assert_contains(err, "function[2]: id is 0");
    assert_int_equal(pprof_validate(p, NULL, 0), -EINVAL);
    pprof_free(p);
}

/* ---- bad input ------------------------------------------------------------------------- */

static void test_truncated_gzip(void **state)
{
    (void)state;
    pprof_profile *p = tiny(false);
    lw_buf b;
    encode(p, true, &b);
    char err[PPROF_ERR_LEN];
    size_t cuts[] = {b.len / 2, b.len - 4, 12, 3};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_int_equal(decode_msg(b.data, cuts[i], NULL, err, sizeof(err)), -EINVAL);
        assert_contains(err, "gzip: ");
    }
    assert_int_equal(decode_msg(b.data, b.len / 2, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "unexpected end of stream");
    /* Corrupt the deflate data in the middle. */
    b.data[b.len / 2] ^= 0x55;
    b.data[b.len / 2 + 1] ^= 0xaa;
    assert_int_not_equal(decode_msg(b.data, b.len, NULL, err, sizeof(err)), 0);
    lw_buf_cleanup(&b);
    pprof_free(p);
}

static void test_random_bytes(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    unsigned char buf[4096];
    char err[PPROF_ERR_LEN];
    int failures = 0;
    for (int round = 0; round < 300; round++) {
        size_t len = 1 + (size_t)(round * 13) % sizeof(buf);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (unsigned char)x;
        }
        pprof_profile *p = NULL;
        int rc = pprof_decode(buf, len, NULL, &p, err, sizeof(err));
        if (rc) {
            failures++;
            assert_true(err[0] != '\0');
        }
        pprof_free(p);
    }
    printf("    300 random inputs: %d refused\n", failures);
    assert_int_equal(failures, 300);
    assert_int_equal(decode_msg(buf, 0, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "empty input");
    buf[0] = 0x0a; /* field 1, LEN, length beyond the end */
    buf[1] = 0x7f;
    assert_int_equal(decode_msg(buf, 2, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "protobuf: malformed");
}

/* Every truncation and every single-bit flip of a raw encoded profile must
 * decode cleanly or fail cleanly; whatever decodes must validate, render,
 * merge and re-encode without tripping ASan/UBSan. */
static void test_mutations(void **state)
{
    (void)state;
    pprof_profile *p = tiny(false);
    lw_buf b;
    encode(p, false, &b);
    unsigned char *m = malloc(b.len);
    assert_non_null(m);
    char err[PPROF_ERR_LEN];
    int ok = 0, refused = 0;
    for (size_t len = 0; len <= b.len; len++) {
        pprof_profile *q = NULL;
        if (pprof_decode(b.data, len, NULL, &q, err, sizeof(err)) == 0)
            ok++;
        else
            refused++;
        pprof_free(q);
    }
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(m, b.data, b.len);
            m[i] ^= (unsigned char)(1u << bit);
            pprof_profile *q = NULL;
            if (pprof_decode(m, b.len, NULL, &q, err, sizeof(err)) != 0) {
                refused++;
                assert_true(err[0] != '\0');
                continue;
            }
            ok++;
            assert_int_equal(pprof_validate(q, err, sizeof(err)), 0);
            lw_buf out;
            lw_buf_init(&out, 1 << 20);
            int64_t t[8];
            if (q->n_sample_types <= 8)
                pprof_totals(q, t);
            for (size_t st = 0; st < q->n_sample_types; st++) {
                assert_int_equal(pprof_render_top(q, (int)st, 0, &out), 0);
                assert_int_equal(pprof_render_folded(q, (int)st, &out), 0);
            }
            assert_int_equal(pprof_render_json(q, &out), 0);
            assert_int_equal(pprof_encode(q, true, &out), 0);
            const pprof_profile *two[2] = {q, q};
            pprof_profile *mq = NULL;
            int rc = pprof_merge(two, 2, &mq, err, sizeof(err));
            assert_true(rc == 0 || rc == -EINVAL);
            pprof_free(mq);
            uint64_t *h = calloc(q->n_samples + 1, sizeof(*h));
            assert_non_null(h);
            assert_int_equal(pprof_stack_hashes(q, h), 0);
            free(h);
            lw_buf_cleanup(&out);
            pprof_free(q);
        }
    }
    printf("    %zu-byte profile: %d mutations decoded, %d refused\n", b.len, ok, refused);
    assert_true(refused > 0 && ok > 0);
    free(m);
    lw_buf_cleanup(&b);
    pprof_free(p);
}

static void test_gzip_of_garbage(void **state)
{
    (void)state;
    const char text[] = "this is not a profile, just some text\n";
    size_t zlen;
    unsigned char *z = gz(text, sizeof(text) - 1, &zlen);
    char err[PPROF_ERR_LEN];
    assert_int_equal(decode_msg(z, zlen, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "protobuf: malformed");
    free(z);
    /* Trailing garbage after a complete gzip stream. */
    pprof_profile *p = tiny(false);
    lw_buf b;
    encode(p, true, &b);
    assert_int_equal(lw_buf_append(&b, "xyz", 3), 0);
    assert_int_equal(decode_msg(b.data, b.len, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "trailing garbage");
    lw_buf_cleanup(&b);
    pprof_free(p);
}

/* The whole-buffer fast path (libdeflate) and the streaming path must
 * agree: a trailer size that lies (smaller or larger than the data, or over
 * the cap), a bad CRC and a two-member stream. */
static void test_gzip_trailer_edge_cases(void **state)
{
    (void)state;
    char err[PPROF_ERR_LEN];
    pprof_profile *p = tiny(false), *q = NULL;
    lw_buf raw, b;
    encode(p, false, &raw);
    encode(p, true, &b);
    unsigned char *t = (unsigned char *)b.data + b.len - 4;
    uint32_t isize = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    assert_int_equal(isize, raw.len);
    uint32_t lies[] = {isize - 1, isize + 1, 0, 0xffffffffu};
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        for (int k = 0; k < 4; k++)
            t[k] = (unsigned char)(lies[i] >> (8 * k));
        assert_int_equal(decode_msg(b.data, b.len, NULL, err, sizeof(err)), -EINVAL);
        printf("    trailer size %u for %u bytes: %s\n", lies[i], isize, err);
        assert_contains(err, "gzip: ");
    }
    for (int k = 0; k < 4; k++)
        t[k] = (unsigned char)(isize >> (8 * k));
    t[-1] ^= 0x55; /* the CRC-32 */
    assert_int_equal(decode_msg(b.data, b.len, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "gzip: ");
    t[-1] ^= 0x55;
    /* Two members: the raw bytes split in two, each gzipped. */
    size_t l1, l2, half = raw.len / 2;
    unsigned char *m1 = gz(raw.data, half, &l1), *m2 = gz(raw.data + half, raw.len - half, &l2);
    lw_buf two;
    lw_buf_init(&two, 1 << 20);
    assert_int_equal(lw_buf_append(&two, m1, l1), 0);
    assert_int_equal(lw_buf_append(&two, m2, l2), 0);
    assert_int_equal(pprof_decode(two.data, two.len, NULL, &q, err, sizeof(err)), 0);
    lw_buf again;
    encode(q, false, &again);
    assert_int_equal(again.len, raw.len);
    assert_memory_equal(again.data, raw.data, raw.len);
    pprof_free(q);
    /* The intact stream still decodes. */
    assert_int_equal(pprof_decode(b.data, b.len, NULL, &q, err, sizeof(err)), 0);
    pprof_free(q);
    free(m1);
    free(m2);
    lw_buf_cleanup(&again);
    lw_buf_cleanup(&two);
    lw_buf_cleanup(&raw);
    lw_buf_cleanup(&b);
    pprof_free(p);
}

static void test_gzip_bomb(void **state)
{
    (void)state;
    char err[PPROF_ERR_LEN];
    /* 16 MiB of zeros gzipped twice: tiny input, refused at a 4 MiB cap while
     * inflating the inner layer. */
    size_t l1, l2;
    unsigned char *once = gz_zeros((size_t)16 << 20, &l1);
    unsigned char *twice = gz(once, l1, &l2);
    printf("    16 MiB of zeros: %zu bytes gzipped, %zu bytes gzipped twice\n", l1, l2);
    pprof_limits lim = {(size_t)1 << 20, (size_t)4 << 20};
    assert_int_equal(decode_msg(twice, l2, &lim, err, sizeof(err)), -E2BIG);
    assert_contains(err, "decompressed size exceeds 4194304 bytes");
    assert_int_equal(decode_msg(once, l1, &lim, err, sizeof(err)), -E2BIG);
    /* Under the default 256 MiB cap the zeros decompress and are refused as
     * protobuf (field number 0). */
    assert_int_equal(decode_msg(twice, l2, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "protobuf: malformed");
    free(once);
    free(twice);
    /* 300 MiB of zeros gzipped twice goes over the default cap. */
    once = gz_zeros((size_t)300 << 20, &l1);
    twice = gz(once, l1, &l2);
    printf("    300 MiB of zeros: %zu bytes gzipped, %zu bytes gzipped twice\n", l1, l2);
    assert_int_equal(decode_msg(twice, l2, NULL, err, sizeof(err)), -E2BIG);
    assert_contains(err, "decompressed size exceeds 268435456 bytes");
    free(once);
    free(twice);
    /* Compressed-size cap. */
    pprof_limits small = {16, (size_t)1 << 20};
    pprof_profile *p = tiny(false);
    lw_buf b;
    encode(p, true, &b);
    assert_int_equal(decode_msg(b.data, b.len, &small, err, sizeof(err)), -E2BIG);
    assert_contains(err, "over the cap of 16 bytes");
    lw_buf_cleanup(&b);
    pprof_free(p);
}

/* ---- arithmetic ------------------------------------------------------------------------- */

static void test_sample_type_index(void **state)
{
    (void)state;
    pprof_profile *p = tiny(false);
    assert_int_equal(pprof_sample_type_index(p, NULL), 1);
    assert_int_equal(pprof_sample_type_index(p, "samples"), 0);
    assert_int_equal(pprof_sample_type_index(p, "cpu"), 1);
    assert_int_equal(pprof_sample_type_index(p, "nope"), -ENOENT);
    assert_int_equal(pprof_set_default_sample_type(p, "samples"), 0);
    assert_int_equal(pprof_sample_type_index(p, NULL), 0);
    pprof_free(p);
    p = pprof_new();
    assert_int_equal(pprof_sample_type_index(p, NULL), -ENOENT);
    pprof_free(p);
}

static void test_scale(void **state)
{
    (void)state;
    pprof_profile *p = pprof_new();
    assert_int_equal(pprof_add_sample_type(p, "a", "count"), 0);
    assert_int_equal(pprof_add_sample_type(p, "b", "count"), 0);
    uint64_t f = pprof_add_function(p, "f", NULL, NULL, 0);
    pprof_line l = {f, 1, 0};
    uint64_t loc = pprof_add_location(p, 0, 1, &l, 1);
    int64_t vals[][2] = {{3, -3}, {5, 1}, {1, 0}, {-5, 7}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pprof_add_sample(p, &loc, 1, vals[i], NULL, 0), 0);
    pprof_scale(p, 0.5);
    /* math.Round: halves away from zero; {1,0}*0.5 = {1,0} stays. */
    assert_int_equal(p->n_samples, 4);
    assert_int_equal(p->samples[0].values[0], 2);
    assert_int_equal(p->samples[0].values[1], -2);
    assert_int_equal(p->samples[1].values[0], 3);
    assert_int_equal(p->samples[1].values[1], 1);
    assert_int_equal(p->samples[2].values[0], 1);
    assert_int_equal(p->samples[3].values[0], -3);
    assert_int_equal(p->samples[3].values[1], 4);
    pprof_scale(p, 0.2);
    /* {2,-2}->{0,0} and {1,0}->{0,0} are dropped, as pprof does. */
    assert_int_equal(p->n_samples, 2);
    assert_int_equal(p->samples[0].values[0], 1);
    assert_int_equal(p->samples[1].values[0], -1);
    pprof_scale(p, 1e30); /* saturates instead of overflowing */
    assert_int_equal(p->samples[0].values[0], INT64_MAX);
    pprof_free(p);
}

static void test_merge(void **state)
{
    (void)state;
    pprof_profile *a = tiny(false), *b = tiny(true);
    const pprof_profile *both[2] = {a, b};
    pprof_profile *m = NULL;
    char err[PPROF_ERR_LEN];
    assert_int_equal(pprof_merge(both, 2, &m, err, sizeof(err)), 0);
    int64_t t[2];
    pprof_totals(m, t);
    printf("    merged: %zu samples, %zu locations, totals %lld %lld\n", m->n_samples,
           m->n_locations, (long long)t[0], (long long)t[1]);
    assert_int_equal(m->n_samples, 3); /* same normalized stacks combine */
    assert_int_equal(m->n_locations, 4);
    assert_int_equal(m->n_functions, 4);
    assert_int_equal(m->n_mappings, 1);
    assert_int_equal(t[0], 12);
    assert_int_equal(t[1], 120 * MS);
    assert_int_equal(m->time_nanos, 1000);
    assert_int_equal(m->duration_nanos, 2000000000);
    assert_int_equal(pprof_validate(m, err, sizeof(err)), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(pprof_stack_hash(m, &m->samples[i]), pprof_stack_hash(a, &a->samples[i]));
    pprof_free(m);

    /* A label keeps samples apart. */
    pprof_label lab = {pprof_intern(b, "worker"), pprof_intern(b, "7"), 0, 0};
    b->samples[0].labels = &lab;
    b->samples[0].n_labels = 1;
    assert_int_equal(pprof_merge(both, 2, &m, err, sizeof(err)), 0);
    assert_int_equal(m->n_samples, 4);
    pprof_totals(m, t);
    assert_int_equal(t[1], 120 * MS);
    b->samples[0].labels = NULL;
    b->samples[0].n_labels = 0;
    pprof_free(m);

    /* Different sample types are refused. */
    pprof_profile *c = pprof_new();
    assert_int_equal(pprof_add_sample_type(c, "inuse_space", "bytes"), 0);
    const pprof_profile *mixed[2] = {a, c};
    assert_int_equal(pprof_merge(mixed, 2, &m, err, sizeof(err)), -EINVAL);
    assert_null(m);
    printf("    %s\n", err);
    assert_contains(err, "sample types differ");
    assert_int_equal(pprof_merge(mixed, 0, &m, err, sizeof(err)), -EINVAL);
    pprof_free(c);
    pprof_free(a);
    pprof_free(b);
}

static void test_diff(void **state)
{
    (void)state;
    pprof_profile *base = tiny(false), *cur = tiny(true);
    pprof_scale(cur, 3.0);
    pprof_profile *d = NULL;
    char err[PPROF_ERR_LEN];
    assert_int_equal(pprof_diff(base, cur, &d, err, sizeof(err)), 0);
    int64_t t[2];
    pprof_totals(d, t);
    printf("    diff: %zu samples, totals %lld %lld\n", d->n_samples, (long long)t[0], (long long)t[1]);
    assert_int_equal(t[0], 18 - 6);
    assert_int_equal(t[1], 180 * MS - 60 * MS);
    assert_int_equal(d->n_samples, 6); /* base samples keep their pprof::base label */
    size_t n_base = 0;
    for (size_t i = 0; i < d->n_samples; i++) {
        const pprof_sample *s = &d->samples[i];
        if (s->n_labels == 1) {
            assert_string_equal(d->strings[s->labels[0].key], "pprof::base");
            assert_string_equal(d->strings[s->labels[0].str], "true");
            assert_true(s->values[1] < 0);
            n_base++;
        }
    }
    assert_int_equal(n_base, 3);
    /* The base itself is untouched. */
    pprof_totals(base, t);
    assert_int_equal(t[1], 60 * MS);
    /* Diff against itself nets out to zero. */
    pprof_profile *z = NULL;
    assert_int_equal(pprof_diff(base, base, &z, err, sizeof(err)), 0);
    pprof_totals(z, t);
    assert_int_equal(t[0], 0);
    assert_int_equal(t[1], 0);
    pprof_free(z);
    pprof_free(d);
    pprof_free(base);
    pprof_free(cur);
}

/* ---- stacks --------------------------------------------------------------------------- */

static void test_stacks(void **state)
{
    (void)state;
    pprof_profile *a = tiny(false), *b = tiny(true);
    /* b's samples are in reverse order. */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(pprof_stack_hash(a, &a->samples[i]), pprof_stack_hash(b, &b->samples[2 - i]));
    assert_int_not_equal(pprof_stack_hash(a, &a->samples[0]), pprof_stack_hash(a, &a->samples[1]));
    assert_int_equal(pprof_sample_depth(a, &a->samples[0]), 4); /* inlined helper counts */
    pprof_frame fr[8];
    assert_int_equal(pprof_sample_frames(a, &a->samples[2], fr, 8), 4);
    const char *want[] = {"main.work", "main.helper", "main.work", "main.main"};
    int64_t lines[] = {25, 30, 20, 5};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(fr[i].function, want[i]);
        assert_int_equal(fr[i].line, lines[i]);
    }
    assert_string_equal(fr[1].file, "work.go");
    assert_int_equal(pprof_sample_frames(a, &a->samples[2], fr, 2), 4); /* capped write */
    /* The bulk computation gives the same hashes. */
    uint64_t bulk[3];
    assert_int_equal(pprof_stack_hashes(a, bulk), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(bulk[i], pprof_stack_hash(a, &a->samples[i]));
    /* A changed line changes the identity. */
    uint64_t h = pprof_stack_hash(b, &b->samples[2]);
    b->locations[3].lines[0].line = 11;
    assert_int_not_equal(pprof_stack_hash(b, &b->samples[2]), h);
    pprof_free(a);
    pprof_free(b);
}

static void test_unsymbolized_identity(void **state)
{
    (void)state;
    uint64_t hashes[2];
    for (int i = 0; i < 2; i++) {
        pprof_profile *p = pprof_new();
        assert_int_equal(pprof_add_sample_type(p, "x", "count"), 0);
        pprof_mapping m = {0};
        m.memory_start = i ? 0x7f1234560000 : 0x555500000000;
        m.memory_limit = m.memory_start + 0x10000;
        m.file_offset = 0x1000;
        m.filename = pprof_intern(p, "/usr/lib/libfoo.so");
        uint64_t mid = pprof_add_mapping(p, &m);
        uint64_t loc = pprof_add_location(p, mid, m.memory_start + 0x42, NULL, 0);
        int64_t v = 1;
        assert_int_equal(pprof_add_sample(p, &loc, 1, &v, NULL, 0), 0);
        hashes[i] = pprof_stack_hash(p, &p->samples[0]);
        uint64_t bulk;
        assert_int_equal(pprof_stack_hashes(p, &bulk), 0);
        assert_int_equal(bulk, hashes[i]);
        pprof_frame f;
        assert_int_equal(pprof_sample_frames(p, &p->samples[0], &f, 1), 1);
        assert_string_equal(f.file, "/usr/lib/libfoo.so");
        pprof_free(p);
    }
    assert_int_equal(hashes[0], hashes[1]);
}

/* ---- rendering -------------------------------------------------------------------------- */

static void test_format_value(void **state)
{
    (void)state;
    char b[64];
    assert_string_equal(pprof_format_value(1572864, "bytes", b, sizeof(b)), "1.50MB");
    assert_string_equal(pprof_format_value(1048832, "bytes", b, sizeof(b)), "1MB");
    assert_string_equal(pprof_format_value(1023, "bytes", b, sizeof(b)), "1023B");
    assert_string_equal(pprof_format_value(-2048, "bytes", b, sizeof(b)), "-2kB");
    assert_string_equal(pprof_format_value(10 * MS, "nanoseconds", b, sizeof(b)), "10ms");
    assert_string_equal(pprof_format_value(1500 * MS, "nanoseconds", b, sizeof(b)), "1.50s");
    assert_string_equal(pprof_format_value(1234, "count", b, sizeof(b)), "1234");
    assert_string_equal(pprof_format_value(0, "bytes", b, sizeof(b)), "0");
    assert_string_equal(pprof_format_value(7, NULL, b, sizeof(b)), "7");
}

/* Checked against `go tool pprof -top` on the encoded tiny profile. */
static const char want_top[] =
    "Type: cpu\n"
    "Showing nodes accounting for 60ms, 100% of 60ms total\n"
    "      flat  flat%   sum%        cum   cum%\n"
    "      30ms 50.00% 50.00%       60ms   100%  main.work\n"
    "      20ms 33.33% 83.33%       60ms   100%  main.helper (inline)\n"
    "      10ms 16.67%   100%       10ms 16.67%  main.leaf\n"
    "         0     0%   100%       60ms   100%  main.main\n";

static const char want_folded[] =
    "main.main;main.work;main.helper 20000000\n"
    "main.main;main.work;main.helper;main.leaf 10000000\n"
    "main.main;main.work;main.helper;main.work 30000000\n";

/* With LW_PPROF_DUMP_DIR set, write the tiny profiles there, so the expected
 * texts above can be re-checked with `go tool pprof -top DIR/tiny.pb.gz`. */
static void dump(const pprof_profile *p, const char *name)
{
    const char *dir = getenv("LW_PPROF_DUMP_DIR");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    lw_buf b;
    encode(p, true, &b);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    fclose(f);
    lw_buf_cleanup(&b);
}

static void test_render(void **state)
{
    (void)state;
    pprof_profile *p = tiny(true);
    dump(p, "tiny.pb.gz");
    lw_buf out;
    lw_buf_init(&out, 1 << 20);
    assert_int_equal(pprof_render_top(p, 1, 0, &out), 0);
    printf("%s", out.data);
    assert_string_equal(out.data, want_top);
    lw_buf_reset(&out);
    assert_int_equal(pprof_render_top(p, 0, 2, &out), 0);
    printf("%s", out.data);
    assert_contains(out.data, "Showing nodes accounting for 5, 83.33% of 6 total\n");
    assert_contains(out.data, "Showing top 2 nodes out of 4\n");
    assert_contains(out.data, "         3 50.00% 50.00%          6   100%  main.work\n");
    lw_buf_reset(&out);
    assert_int_equal(pprof_render_folded(p, 1, &out), 0);
    printf("%s", out.data);
    assert_string_equal(out.data, want_folded);
    lw_buf_reset(&out);
    assert_int_equal(pprof_render_json(p, &out), 0);
    assert_contains(out.data, "{\"sample_types\":[{\"type\":\"samples\",\"unit\":\"count\"},"
                              "{\"type\":\"cpu\",\"unit\":\"nanoseconds\"}],");
    assert_contains(out.data, "\"totals\":[6,60000000]");
    assert_contains(out.data, "{\"values\":[3,30000000],\"labels\":{},\"stack\":[{\"function\":"
                              "\"main.work\",\"file\":\"work.go\",\"line\":25},");
    assert_int_equal(pprof_render_top(p, 2, 0, &out), -EINVAL);
    /* Caps: a failing render leaves the buffer as it was. */
    lw_buf small;
    lw_buf_init(&small, 40);
    assert_int_equal(lw_buf_puts(&small, "keep"), 0);
    assert_int_equal(pprof_render_top(p, 1, 0, &small), -E2BIG);
    assert_string_equal(small.data, "keep");
    assert_int_equal(pprof_render_folded(p, 1, &small), -E2BIG);
    assert_int_equal(pprof_render_json(p, &small), -E2BIG);
    assert_int_equal(pprof_encode(p, true, &small), -E2BIG);
    assert_int_equal(pprof_encode(p, false, &small), -E2BIG);
    assert_string_equal(small.data, "keep");
    lw_buf_cleanup(&small);
    lw_buf_cleanup(&out);
    pprof_free(p);
}

static void test_render_diff_total(void **state)
{
    (void)state;
    /* For a diff, pprof's total (and percentages) are the base's. */
    pprof_profile *base = tiny(false), *cur = tiny(true);
    pprof_scale(cur, 2.0);
    pprof_profile *d = NULL;
    char err[PPROF_ERR_LEN];
    assert_int_equal(pprof_diff(base, cur, &d, err, sizeof(err)), 0);
    dump(d, "tiny-diff.pb.gz");
    lw_buf out;
    lw_buf_init(&out, 1 << 20);
    assert_int_equal(pprof_render_top(d, 1, 0, &out), 0);
    printf("%s", out.data);
    assert_contains(out.data, "Showing nodes accounting for 60ms, 100% of 60ms total\n");
    assert_contains(out.data, "      30ms 50.00% 50.00%       60ms   100%  main.work\n");
    lw_buf_cleanup(&out);
    pprof_free(d);
    pprof_free(base);
    pprof_free(cur);
}

/* Fail each allocation of each operation in turn: every call must report
 * -ENOMEM (or NULL), leave its outputs untouched and leak nothing (LSan). */
static void test_allocation_failures(void **state)
{
    (void)state;
    pprof_profile *a = tiny(false), *b = tiny(true);
    lw_buf gzd, raw;
    encode(a, true, &gzd);
    encode(a, false, &raw);
    char err[PPROF_ERR_LEN];
    long points = 0;
    for (int op = 0; op < 10; op++) {
        for (long n = 1;; n++) {
            lw_buf out;
            lw_buf_init(&out, 1 << 20);
            pprof_profile *r = NULL;
            const pprof_profile *both[2] = {a, b};
            int rc = 0;
            fail_nth(n);
            switch (op) {
            case 0: rc = pprof_decode(gzd.data, gzd.len, NULL, &r, err, sizeof(err)); break;
            case 1: rc = pprof_decode(raw.data, raw.len, NULL, &r, err, sizeof(err)); break;
            case 2: rc = pprof_merge(both, 2, &r, err, sizeof(err)); break;
            case 3: rc = pprof_diff(a, b, &r, err, sizeof(err)); break;
            case 4: r = pprof_copy(a); rc = r ? 0 : -ENOMEM; break;
            case 9: {
                uint64_t h[3];
                rc = pprof_stack_hashes(a, h);
                break;
            }
            case 5: rc = pprof_encode(a, true, &out); break;
            case 6: rc = pprof_render_top(a, 1, 0, &out); break;
            case 7: rc = pprof_render_folded(a, 1, &out); break;
            case 8: rc = pprof_render_json(a, &out); break;
            }
            bool hit = failed;
            fail_nth(0);
            if (!hit) {
                assert_int_equal(rc, 0);
                pprof_free(r);
                lw_buf_cleanup(&out);
                printf("    op %d: %ld allocations, each failure handled\n", op, n - 1);
                break;
            }
            points++;
            if (op == 4 && rc == 0) {
                /* pprof_copy may lose only its optional id index. */
                assert_int_equal(pprof_validate(r, err, sizeof(err)), 0);
                pprof_free(r);
                lw_buf_cleanup(&out);
                continue;
            }
            if (rc != -ENOMEM)
                printf("    op %d, allocation %ld: rc %d\n", op, n, rc);
            assert_int_equal(rc, -ENOMEM);
            assert_null(r);
            assert_int_equal(out.len, 0);
            lw_buf_cleanup(&out);
        }
    }
    /* Builder calls under failure report it and leave a usable profile. */
    for (long n = 1; n < 40; n++) {
        pprof_profile *p = pprof_new();
        if (!p)
            continue;
        fail_nth(n);
        int rc = pprof_add_sample_type(p, "x", "count");
        uint64_t f = rc ? 0 : pprof_add_function(p, "f", "f", "f.go", 1);
        pprof_line l = {f, 1, 0};
        uint64_t loc = f ? pprof_add_location(p, 0, 1, &l, 1) : 0;
        int64_t v = 1;
        if (loc)
            rc = pprof_add_sample(p, &loc, 1, &v, NULL, 0);
        fail_nth(0);
        assert_true(rc == 0 || rc == -ENOMEM);
        assert_int_equal(pprof_validate(p, err, sizeof(err)), 0);
        pprof_free(p);
    }
    printf("    %ld injected allocation failures\n", points);
    assert_true(points > 50);
    lw_buf_cleanup(&gzd);
    lw_buf_cleanup(&raw);
    pprof_free(a);
    pprof_free(b);
}

/* Distinct profiles from distinct threads at once: each thread decodes,
 * merges, diffs and renders its own profiles and must get exactly the
 * single-threaded result (run under TSan with -DLW_TSAN=ON). */
typedef struct thread_job {
    const lw_buf *input;
    const char *want; /* expected rendering */
    int rc;
} thread_job;

static int render_all(const lw_buf *input, lw_buf *out)
{
    pprof_profile *p = NULL, *q = NULL, *m = NULL, *d = NULL;
    char err[PPROF_ERR_LEN];
    int rc = pprof_decode(input->data, input->len, NULL, &p, err, sizeof(err));
    if (rc == 0)
        rc = pprof_decode(input->data, input->len, NULL, &q, err, sizeof(err));
    const pprof_profile *both[2] = {p, q};
    if (rc == 0)
        rc = pprof_merge(both, 2, &m, err, sizeof(err));
    if (rc == 0)
        rc = pprof_diff(p, m, &d, err, sizeof(err));
    if (rc == 0)
        rc = pprof_render_top(d, 1, 0, out);
    if (rc == 0)
        rc = pprof_render_folded(m, 1, out);
    if (rc == 0)
        rc = pprof_render_json(d, out);
    pprof_free(p);
    pprof_free(q);
    pprof_free(m);
    pprof_free(d);
    return rc;
}

static void *thread_main(void *arg)
{
    thread_job *job = arg;
    for (int i = 0; i < 20 && job->rc == 0; i++) {
        lw_buf out;
        lw_buf_init(&out, 1 << 20);
        job->rc = render_all(job->input, &out);
        if (job->rc == 0 && strcmp(out.data, job->want) != 0)
            job->rc = -EIO;
        lw_buf_cleanup(&out);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pprof_profile *a = tiny(false);
    lw_buf in, want;
    encode(a, true, &in);
    lw_buf_init(&want, 1 << 20);
    assert_int_equal(render_all(&in, &want), 0);
    pthread_t t[4];
    thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){&in, want.data, 0};
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        printf("    thread %d: rc %d\n", i, jobs[i].rc);
        assert_int_equal(jobs[i].rc, 0);
    }
    lw_buf_cleanup(&in);
    lw_buf_cleanup(&want);
    pprof_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_encode_decode),
        cmocka_unit_test(test_protobuf_c_cross_check),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_builder_dedup_and_errors),
        cmocka_unit_test(test_validation_messages),
        cmocka_unit_test(test_validate_api),
        cmocka_unit_test(test_sample_bounds),
        cmocka_unit_test(test_truncated_gzip),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_gzip_of_garbage),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_gzip_trailer_edge_cases),
        cmocka_unit_test(test_sample_type_index),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_stacks),
        cmocka_unit_test(test_unsymbolized_identity),
        cmocka_unit_test(test_format_value),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_diff_total),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
