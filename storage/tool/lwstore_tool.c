/* lwstore_tool.c — a small command-line window into a leakwatch database,
 * used by the storage integration tests and for measurements.
 *
 *   lwstore-tool ingest DB FILE TYPE [N]   store FILE (a .pb.gz) N times (default 1),
 *                                          one second apart; prints the ids, the
 *                                          database growth and the ingest rate
 *   lwstore-tool dump DB ID OUT            rebuild profile ID as a .pb.gz file
 *   lwstore-tool stats DB                  profiles, size, integrity (one JSON line)
 *   lwstore-tool top DB ID                 stacks of profile ID with their top frames
 *   lwstore-tool retain DB MAX_AGE_S MAX_BYTES   apply retention at "now"
 *   lwstore-tool soak DB TYPE N RETAIN_EVERY FILE...  ingest the files in turn N times,
 *                                          printing "id time_ns" after each commit
 *                                          (for crash tests; see cmd_soak)
 *   lwstore-tool bench [--batch N] [--warm] DB TYPE ROUNDS FILE...
 *                                          ingest the files in turn, ROUNDS
 *                                          times, in one process (rounds after the
 *                                          first repeat stored profiles: the dedup
 *                                          path), N per transaction; the very first
 *                                          ingest (dictionary fill) is not timed;
 *                                          prints inflate, decode and store rates of
 *                                          the others (thread CPU time, robust to a
 *                                          busy machine); --warm: after an untimed
 *                                          run into DB-warmup (see cmd_bench)
 *   lwstore-tool load-bench DB ROUNDS ID...      load the profiles ROUNDS times each
 *                                          (read-only handle); prints samples and
 *                                          min/median/max wall and thread-CPU ms
 *                                          per load of each; with 2..8 ids also the
 *                                          wall ms of loading all at once
 *                                          (store_profiles_load, one thread each)
 *
 * Exit status: 0 success, 1 failure (with a message on stderr), 2 usage.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "store.h"
#include "lw_util.h"

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this thread: rates stay comparable on a busy machine. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_file(const char *path, lw_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = lw_buf_append(out, chunk, n);
    if (!rc && ferror(f))
        rc = -EIO;
    fclose(f);
    return rc;
}

static int cmd_ingest(int argc, char **argv)
{
    const char *db = argv[2], *file = argv[3], *type = argv[4];
    long n = argc > 5 ? strtol(argv[5], NULL, 10) : 1;
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    pprof_profile *p = NULL;
    lw_buf raw;
    int rc;
    lw_buf_init(&raw, PPROF_DEFAULT_MAX_COMPRESSED_BYTES);
    if (n < 1)
        n = 1;
    if ((rc = read_file(file, &raw))) {
        fprintf(stderr, "%s: %s\n", file, strerror(-rc));
        goto out;
    }
    if ((rc = store_open(db, NULL, &s, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    store_label labels[] = {{"job", "lwstore-tool"}, {"instance", "local"}};
    int64_t target, before = 0, after = 0;
    if ((rc = store_target_upsert(s, labels, 2, &target))) {
        fprintf(stderr, "target: %s\n", strerror(-rc));
        goto out;
    }
    /* Measure from a checkpointed file (close and reopen), as at the end. */
    store_close(s);
    s = NULL;
    if ((rc = store_open(db, NULL, &s, err, sizeof(err))) || (rc = store_size_bytes(s, &before)))
        goto out;
    int64_t t0 = lw_wall_ns();
    double decode_s = 0, store_s = 0;
    for (long i = 0; i < n; i++) {
        double a = mono_s();
        if ((rc = pprof_decode(raw.data, raw.len, NULL, &p, err, sizeof(err)))) {
            fprintf(stderr, "%s: %s\n", file, err);
            goto out;
        }
        double b = mono_s();
        int64_t id;
        if ((rc = store_ingest(s, target, type, t0 + (int64_t)i * 1000000000, p, &id, err,
                               sizeof(err)))) {
            fprintf(stderr, "ingest: %s\n", err);
            goto out;
        }
        decode_s += b - a;
        store_s += mono_s() - b;
        pprof_free(p);
        p = NULL;
        if (n <= 10)
            printf("%" PRId64 "\n", id);
    }
    store_close(s);
    s = NULL;
    if ((rc = store_open(db, NULL, &s, err, sizeof(err))) || (rc = store_size_bytes(s, &after)))
        goto out;
    fprintf(stderr,
            "ingested %ld x %zu bytes: db grew %" PRId64 " bytes (%.1f bytes/profile, %.2f%% of "
            "input); decode %.1f MB/s, store %.1f MB/s, decode+store %.1f MB/s (of .pb.gz "
            "bytes)\n",
            n, raw.len, after - before, (double)(after - before) / (double)n,
            100.0 * (double)(after - before) / ((double)n * (double)raw.len),
            (double)raw.len * (double)n / decode_s / 1e6,
            (double)raw.len * (double)n / store_s / 1e6,
            (double)raw.len * (double)n / (decode_s + store_s) / 1e6);
out:
    pprof_free(p);
    store_close(s);
    lw_buf_cleanup(&raw);
    return rc ? 1 : 0;
}

static int cmd_dump(char **argv)
{
    store_options opt = {.read_only = true};
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    pprof_profile *p = NULL;
    lw_buf out;
    int rc;
    lw_buf_init(&out, (size_t)1 << 30);
    if ((rc = store_open(argv[2], &opt, &s, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if ((rc = store_profile_load(s, strtoll(argv[3], NULL, 10), &p, NULL))) {
        fprintf(stderr, "load %s: %s\n", argv[3], strerror(-rc));
        goto out;
    }
    if ((rc = pprof_encode(p, true, &out))) {
        fprintf(stderr, "encode: %s\n", strerror(-rc));
        goto out;
    }
    FILE *f = fopen(argv[4], "wb");
    if (!f || fwrite(out.data, 1, out.len, f) != out.len) {
        rc = -EIO;
        fprintf(stderr, "%s: write failed\n", argv[4]);
    }
    if (f && fclose(f) != 0)
        rc = -EIO;
out:
    pprof_free(p);
    store_close(s);
    lw_buf_cleanup(&out);
    return rc ? 1 : 0;
}

static int cmd_stats(char **argv)
{
    store_options opt = {.read_only = true};
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    int64_t count = 0, size = 0;
    int rc;
    if ((rc = store_open(argv[2], &opt, &s, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rc = store_profiles_count(s, &count);
    if (!rc)
        rc = store_size_bytes(s, &size);
    int irc = rc ? rc : store_integrity_check(s, err, sizeof(err));
    if (!rc)
        printf("{\"profiles\":%" PRId64 ",\"size_bytes\":%" PRId64 ",\"integrity\":\"%s\"}\n",
               count, size, irc ? err : "ok");
    store_close(s);
    return rc || irc ? 1 : 0;
}

static int cmd_top(char **argv)
{
    store_options opt = {.read_only = true};
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    store_stack_value *v = NULL;
    size_t n = 0;
    int rc;
    if ((rc = store_open(argv[2], &opt, &s, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int64_t id = strtoll(argv[3], NULL, 10);
    store_profile_info info;
    rc = store_profile_info_get(s, id, &info);
    if (!rc)
        rc = store_profile_stacks(s, id, info.n_sample_types - 1, &v, &n);
    for (size_t i = 0; !rc && i < n; i++) {
        char fn[256], loc[512];
        rc = store_stack_top_frame(s, v[i].stack_id, fn, sizeof(fn), loc, sizeof(loc));
        if (!rc)
            printf("%" PRId64 "\t%" PRId64 "\t%s\t%s\n", v[i].stack_id, v[i].value,
                   fn[0] ? fn : "(empty stack)", loc);
    }
    if (rc)
        fprintf(stderr, "top %s: %s\n", argv[3], strerror(-rc));
    free(v);
    store_close(s);
    return rc ? 1 : 0;
}

static int cmd_retain(char **argv)
{
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    int64_t deleted = 0;
    int rc;
    if ((rc = store_open(argv[2], NULL, &s, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rc = store_retention_apply(s, strtoll(argv[3], NULL, 10) * 1000000000, strtoll(argv[4], NULL, 10),
                               lw_wall_ns(), &deleted);
    if (rc)
        fprintf(stderr, "retention: %s\n", strerror(-rc));
    else
        printf("%" PRId64 "\n", deleted);
    store_close(s);
    return rc ? 1 : 0;
}

/* Time to gunzip data (the bench's floor), in seconds. */
static double inflate_seconds(const lw_buf *in, size_t *raw_len)
{
    unsigned char out[1 << 16];
    z_stream z;
    memset(&z, 0, sizeof(z));
    double a = cpu_s();
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return 0;
    z.next_in = (unsigned char *)in->data;
    z.avail_in = (uInt)in->len;
    size_t total = 0;
    int zrc;
    do {
        z.next_out = out;
        z.avail_out = sizeof(out);
        zrc = inflate(&z, Z_NO_FLUSH);
        total += sizeof(out) - z.avail_out;
    } while (zrc == Z_OK);
    inflateEnd(&z);
    *raw_len = total;
    return cpu_s() - a;
}

/* bench [--batch N] [--warm] DB TYPE ROUNDS FILE...: decode and store the
 * files in turn, N profiles per transaction (store_ingest_batch, as the
 * collector under load; default 1 = store_ingest), against zlib inflate of
 * the same bytes. --warm first runs the same ingest, untimed, into a
 * scratch database next to DB (deleted after): the timed run then meets
 * its stacks as new but in a process whose allocator has served such
 * profiles before, as a daemon that has been running a while. */
#define BENCH_BATCH_BYTES ((size_t)1 << 20) /* collector/scrape.c INGEST_BATCH_BYTES */

typedef struct {
    double inflate, decode, store; /* thread CPU seconds of the timed profiles */
    size_t gz_bytes, raw_bytes;
    int64_t profiles, grew;
} bench_result;

static int bench_pass(const char *db, const char *type, long rounds, long batch, const lw_buf *files,
                      char **names, int n_files, bench_result *res)
{
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    store_ingest_item *items = calloc((size_t)batch, sizeof(*items));
    pprof_profile **profs = calloc((size_t)batch, sizeof(*profs));
    int rc = items && profs ? 0 : -ENOMEM;
    int64_t before = 0, after = 0;
    memset(res, 0, sizeof(*res));
    if (!rc && (rc = store_open(db, NULL, &s, err, sizeof(err))))
        fprintf(stderr, "%s\n", err);
    store_label labels[] = {{"job", "lwstore-tool"}, {"instance", "bench"}};
    int64_t target = 0;
    if (!rc)
        rc = store_target_upsert(s, labels, 2, &target);
    /* Measure from a checkpointed file (close and reopen), as at the end. */
    store_close(s);
    s = NULL;
    if (!rc && !(rc = store_open(db, NULL, &s, err, sizeof(err))))
        rc = store_size_bytes(s, &before);
    int64_t t0 = lw_wall_ns(), k = 0, total = rounds * (int64_t)n_files;
    while (k < total && !rc) {
        /* The very first ingest fills the dictionary: alone and not timed. */
        int64_t n = k == 0 ? 1 : (total - k < batch ? total - k : batch);
        size_t raw = 0, body_bytes = 0;
        double t_dec = 0;
        for (int64_t b = 0; b < n && !rc; b++) {
            const lw_buf *f = &files[(k + b) % n_files];
            if (b > 0 && body_bytes + f->len > BENCH_BATCH_BYTES) {
                n = b; /* as the collector: a batch holds at most 1 MiB of bodies */
                break;
            }
            body_bytes += f->len;
            size_t raw_len = 0;
            double t_inf = inflate_seconds(f, &raw_len);
            double a = cpu_s();
            rc = pprof_decode(f->data, f->len, NULL, &profs[b], err, sizeof(err));
            t_dec += cpu_s() - a;
            if (rc) {
                fprintf(stderr, "%s: %s\n", names[(k + b) % n_files], err);
                break;
            }
            items[b] = (store_ingest_item){.target_id = target, .profile_type = type,
                                           .time_ns = t0 + (k + b) * 1000000000,
                                           .profile = profs[b]};
            if (k > 0) {
                res->inflate += t_inf;
                res->gz_bytes += f->len;
                raw += raw_len;
            }
        }
        if (!rc) {
            double a = cpu_s();
            rc = store_ingest_batch(s, items, (size_t)n);
            double c = cpu_s();
            for (int64_t b = 0; b < n && !rc; b++)
                if ((rc = items[b].rc))
                    fprintf(stderr, "%s: %s\n", names[(k + b) % n_files], items[b].err);
            if (k > 0) {
                res->decode += t_dec;
                res->store += c - a;
                res->raw_bytes += raw;
            }
        }
        for (int64_t b = 0; b < n; b++) {
            pprof_free(profs[b]);
            profs[b] = NULL;
        }
        k += n;
    }
    store_close(s);
    s = NULL;
    if (!rc && !(rc = store_open(db, NULL, &s, err, sizeof(err))))
        rc = store_size_bytes(s, &after);
    store_close(s);
    res->profiles = k;
    res->grew = after - before;
    free(items);
    free(profs);
    return rc;
}

static void remove_db(const char *db)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s%s", db, suffixes[i]) < (int)sizeof(path))
            unlink(path);
    }
}

static int cmd_bench(int argc, char **argv)
{
    long batch = 1;
    bool warm = false;
    for (;;) {
        if (argc >= 7 && !strcmp(argv[2], "--batch")) {
            batch = strtol(argv[3], NULL, 10);
            argv += 2;
            argc -= 2;
        } else if (argc >= 6 && !strcmp(argv[2], "--warm")) {
            warm = true;
            argv++;
            argc--;
        } else {
            break;
        }
    }
    if (batch < 1 || batch > 1024) {
        fprintf(stderr, "bench: --batch must be 1..1024\n");
        return 2;
    }
    if (argc < 6) {
        fprintf(stderr, "usage: lwstore-tool bench [--batch N] [--warm] DB TYPE ROUNDS FILE...\n");
        return 2;
    }
    const char *db = argv[2], *type = argv[3];
    long rounds = strtol(argv[4], NULL, 10);
    int n_files = argc - 5;
    lw_buf *files = calloc((size_t)n_files, sizeof(*files));
    int rc = files ? 0 : -ENOMEM;
    for (int i = 0; i < n_files && !rc; i++) {
        lw_buf_init(&files[i], PPROF_DEFAULT_MAX_COMPRESSED_BYTES);
        if ((rc = read_file(argv[5 + i], &files[i])))
            fprintf(stderr, "%s: %s\n", argv[5 + i], strerror(-rc));
    }
    bench_result r;
    if (!rc && warm) {
        char scratch[4096];
        if (snprintf(scratch, sizeof(scratch), "%s-warmup", db) >= (int)sizeof(scratch)) {
            rc = -ENAMETOOLONG;
        } else {
            remove_db(scratch);
            rc = bench_pass(scratch, type, rounds, batch, files, argv + 5, n_files, &r);
            remove_db(scratch);
        }
    }
    if (!rc)
        rc = bench_pass(db, type, rounds, batch, files, argv + 5, n_files, &r);
    if (!rc) {
        double raw_mb = (double)r.raw_bytes / 1e6;
        printf("%" PRId64 " profiles (the first not timed), %ld per transaction, %.1f MB gzipped, "
               "%.1f MB raw timed%s\n",
               r.profiles, batch, (double)r.gz_bytes / 1e6, raw_mb, warm ? ", warm process" : "");
        printf("inflate        %8.1f MB/s raw\n", raw_mb / r.inflate);
        printf("decode         %8.1f MB/s raw\n", raw_mb / r.decode);
        double timed = (double)(r.profiles > 1 ? r.profiles - 1 : 1);
        printf("store          %8.1f MB/s raw (%.2f ms/profile)\n", raw_mb / r.store,
               1e3 * r.store / timed);
        printf("decode+store   %8.1f MB/s raw = %.1f%% of inflate\n",
               raw_mb / (r.decode + r.store), 100.0 * r.inflate / (r.decode + r.store));
        printf("db grew        %" PRId64 " bytes = %.1f%% of the gzipped input\n", r.grew,
               100.0 * (double)r.grew / (double)r.gz_bytes);
    }
    for (int i = 0; files && i < n_files; i++)
        lw_buf_cleanup(&files[i]);
    free(files);
    return rc ? 1 : 0;
}

/* Ingest the files in turn N times, printing each profile id (flushed) as
 * soon as its transaction has committed: a crash test kills the process at
 * a random moment and checks every printed id is still there. With
 * RETAIN_EVERY > 0, retention (keep the last 20 profile-seconds) runs after
 * every RETAIN_EVERY ingests. */
static int cmd_soak(int argc, char **argv)
{
    const char *db = argv[2], *type = argv[3];
    long n = strtol(argv[4], NULL, 10), retain_every = strtol(argv[5], NULL, 10);
    int n_files = argc - 6;
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    lw_buf *files = calloc((size_t)n_files, sizeof(*files));
    int rc = files ? 0 : -ENOMEM;
    for (int i = 0; i < n_files && !rc; i++) {
        lw_buf_init(&files[i], PPROF_DEFAULT_MAX_COMPRESSED_BYTES);
        if ((rc = read_file(argv[6 + i], &files[i])))
            fprintf(stderr, "%s: %s\n", argv[6 + i], strerror(-rc));
    }
    if (!rc && (rc = store_open(db, NULL, &s, err, sizeof(err))))
        fprintf(stderr, "%s\n", err);
    store_label labels[] = {{"job", "lwstore-tool"}, {"instance", "soak"}};
    int64_t target = 0, t0 = lw_wall_ns();
    if (!rc)
        rc = store_target_upsert(s, labels, 2, &target);
    for (long k = 0; k < n && !rc; k++) {
        pprof_profile *p = NULL;
        int64_t id = 0, t = t0 + k * 1000000000;
        const lw_buf *f = &files[k % n_files];
        rc = pprof_decode(f->data, f->len, NULL, &p, err, sizeof(err));
        if (!rc)
            rc = store_ingest(s, target, type, t, p, &id, err, sizeof(err));
        pprof_free(p);
        if (rc) {
            fprintf(stderr, "ingest: %s\n", err);
            break;
        }
        printf("%" PRId64 " %" PRId64 "\n", id, t);
        fflush(stdout);
        if (retain_every > 0 && k % retain_every == retain_every - 1) {
            int64_t deleted;
            rc = store_retention_apply(s, 20LL * 1000000000, 0, t, &deleted);
            if (rc)
                fprintf(stderr, "retention: %s\n", strerror(-rc));
        }
    }
    store_close(s);
    for (int i = 0; files && i < n_files; i++)
        lw_buf_cleanup(&files[i]);
    free(files);
    return rc ? 1 : 0;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_load_bench(int argc, char **argv)
{
    store_options opt = {.read_only = true};
    char err[STORE_ERR_LEN] = "";
    store *s = NULL;
    long rounds = strtol(argv[3], NULL, 10);
    double *t = NULL, *c = NULL;
    int rc = 0;
    if (rounds < 1 || rounds > 100000) {
        fprintf(stderr, "ROUNDS: 1..100000\n");
        return 2;
    }
    t = calloc((size_t)rounds, sizeof(*t));
    c = calloc((size_t)rounds, sizeof(*c));
    if (!t || !c) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = store_open(argv[2], &opt, &s, err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    for (int k = 4; k < argc && !rc; k++) {
        int64_t id = strtoll(argv[k], NULL, 10);
        size_t n_samples = 0;
        for (long r = 0; r < rounds && !rc; r++) {
            pprof_profile *p = NULL;
            double t0 = mono_s(), c0 = cpu_s();
            rc = store_profile_load(s, id, &p, NULL);
            t[r] = (mono_s() - t0) * 1e3;
            c[r] = (cpu_s() - c0) * 1e3;
            if (p)
                n_samples = p->n_samples;
            pprof_free(p);
        }
        if (rc) {
            fprintf(stderr, "load %" PRId64 ": %s\n", id, strerror(-rc));
            break;
        }
        qsort(t, (size_t)rounds, sizeof(*t), dbl_cmp);
        qsort(c, (size_t)rounds, sizeof(*c), dbl_cmp);
        printf("profile %" PRId64 ": %zu samples, load ms wall min %.2f median %.2f max %.2f, "
               "cpu min %.2f median %.2f max %.2f\n",
               id, n_samples, t[0], t[rounds / 2], t[rounds - 1], c[0], c[rounds / 2],
               c[rounds - 1]);
    }
    size_t n_ids = (size_t)(argc - 4);
    if (!rc && n_ids >= 2 && n_ids <= STORE_LOAD_MAX) {
        int64_t ids[STORE_LOAD_MAX];
        for (size_t k = 0; k < n_ids; k++)
            ids[k] = strtoll(argv[4 + k], NULL, 10);
        for (long r = 0; r < rounds && !rc; r++) {
            pprof_profile *ps[STORE_LOAD_MAX];
            double t0 = mono_s();
            rc = store_profiles_load(s, ids, n_ids, ps, NULL);
            t[r] = (mono_s() - t0) * 1e3;
            for (size_t k = 0; !rc && k < n_ids; k++)
                pprof_free(ps[k]);
        }
        if (rc) {
            fprintf(stderr, "store_profiles_load: %s\n", strerror(-rc));
        } else {
            qsort(t, (size_t)rounds, sizeof(*t), dbl_cmp);
            printf("all %zu at once (store_profiles_load): wall ms min %.2f median %.2f max %.2f\n",
                   n_ids, t[0], t[rounds / 2], t[rounds - 1]);
        }
    }
out:
    store_close(s);
    free(t);
    free(c);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    lw_malloc_keep_freed(); /* as leakwatchd, so `bench` measures what it runs */
    if (argc >= 5 && !strcmp(argv[1], "ingest"))
        return cmd_ingest(argc, argv);
    if (argc == 5 && !strcmp(argv[1], "dump"))
        return cmd_dump(argv);
    if (argc == 3 && !strcmp(argv[1], "stats"))
        return cmd_stats(argv);
    if (argc == 4 && !strcmp(argv[1], "top"))
        return cmd_top(argv);
    if (argc == 5 && !strcmp(argv[1], "retain"))
        return cmd_retain(argv);
    if (argc >= 6 && !strcmp(argv[1], "bench"))
        return cmd_bench(argc, argv);
    if (argc >= 7 && !strcmp(argv[1], "soak"))
        return cmd_soak(argc, argv);
    if (argc >= 5 && !strcmp(argv[1], "load-bench"))
        return cmd_load_bench(argc, argv);
    fprintf(stderr, "usage: lwstore-tool ingest DB FILE TYPE [N] | dump DB ID OUT | stats DB | "
                    "top DB ID | retain DB MAX_AGE_S MAX_BYTES | bench [--batch N] [--warm] DB TYPE ROUNDS FILE... | "
                    "soak DB TYPE N RETAIN_EVERY FILE... | load-bench DB ROUNDS ID...\n");
    return 2;
}
