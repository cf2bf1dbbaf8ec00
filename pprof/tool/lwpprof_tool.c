/* lwpprof_tool.c — lwpprof-tool, a small command line front end to the pprof codec.
 *
 * Used by the integration tests and for debugging: every subcommand decodes
 * its inputs with the default caps and prints the codec's error message (and
 * exits 1) on bad input; usage errors exit 2. `bench` times decoding against
 * plain zlib inflate and protobuf-c's unpack on a real file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "lw_util.h"
#include "pprof.h"
#include "profile.pb-c.h"

#define MAX_FILE_BYTES (PPROF_DEFAULT_MAX_COMPRESSED_BYTES + 1)
#define MAX_OUT_BYTES ((size_t)1 << 30)

static int read_file(const char *path, lw_buf *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "lwpprof-tool: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    lw_buf_init(b, MAX_FILE_BYTES);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = lw_buf_append(b, chunk, n);
    if (rc == 0 && ferror(f))
        rc = -EIO;
    fclose(f);
    if (rc)
        fprintf(stderr, "lwpprof-tool: %s: cannot read (%s)\n", path, strerror(-rc));
    return rc;
}

static int write_file(const char *path, const lw_buf *b)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "lwpprof-tool: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    int rc = 0;
    if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
        rc = -EIO;
    if (fclose(f) != 0)
        rc = -EIO;
    if (rc)
        fprintf(stderr, "lwpprof-tool: %s: write failed\n", path);
    return rc;
}

static int load(const char *path, pprof_profile **out)
{
    lw_buf b;
    char err[PPROF_ERR_LEN];
    int rc = read_file(path, &b);
    if (rc == 0) {
        rc = pprof_decode(b.data, b.len, NULL, out, err, sizeof(err));
        if (rc)
            fprintf(stderr, "lwpprof-tool: %s: %s\n", path, err);
    }
    lw_buf_cleanup(&b);
    return rc;
}

static int save(const char *path, const pprof_profile *p)
{
    lw_buf b;
    lw_buf_init(&b, MAX_OUT_BYTES);
    int rc = pprof_encode(p, true, &b);
    if (rc)
        fprintf(stderr, "lwpprof-tool: encode: %s\n", strerror(-rc));
    else
        rc = write_file(path, &b);
    lw_buf_cleanup(&b);
    return rc;
}

static int print_buf(lw_buf *b, int rc)
{
    if (rc)
        fprintf(stderr, "lwpprof-tool: render: %s\n", strerror(-rc));
    else if (b->len)
        fwrite(b->data, 1, b->len, stdout);
    lw_buf_cleanup(b);
    return rc;
}

static int sample_index(const pprof_profile *p, const char *name)
{
    int si = pprof_sample_type_index(p, name);
    if (si < 0)
        fprintf(stderr, "lwpprof-tool: no sample type %s\n", name ? name : "(default)");
    return si;
}

static int cmd_totals(pprof_profile *p)
{
    int64_t *t = calloc(p->n_sample_types + 1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    pprof_totals(p, t);
    for (size_t i = 0; i < p->n_sample_types; i++)
        printf("%s/%s %" PRId64 "\n", p->strings[p->sample_types[i].type],
               p->strings[p->sample_types[i].unit], t[i]);
    free(t);
    return 0;
}

static int cmd_stacks(pprof_profile *p)
{
    pprof_frame *fr = NULL;
    size_t cap = 0;
    uint64_t *hashes = calloc(p->n_samples + 1, sizeof(*hashes));
    if (!hashes || pprof_stack_hashes(p, hashes)) {
        free(hashes);
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->n_samples; i++) {
        const pprof_sample *s = &p->samples[i];
        size_t depth = pprof_sample_depth(p, s);
        if (depth > cap) {
            free(fr);
            cap = depth;
            fr = malloc(cap * sizeof(*fr));
            if (!fr) {
                free(hashes);
                return -ENOMEM;
            }
        }
        size_t n = pprof_sample_frames(p, s, fr, cap);
        if (hashes[i] != pprof_stack_hash(p, s)) {
            fprintf(stderr, "lwpprof-tool: sample %zu: bulk and single stack hashes differ\n", i);
            free(fr);
            free(hashes);
            return -EINVAL;
        }
        printf("%016" PRIx64 "\t", hashes[i]);
        for (size_t t = 0; t < s->n_values; t++)
            printf("%s%" PRId64, t ? "," : "", s->values[t]);
        printf("\t");
        for (size_t j = 0; j < n; j++)
            printf("%s%s %s:%" PRId64, j ? ";" : "", fr[j].function, fr[j].file, fr[j].line);
        printf("\n");
    }
    free(fr);
    free(hashes);
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: less noisy on a shared machine */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Inflate only, into a reused buffer: the baseline throughput. */
static size_t inflate_only(const lw_buf *in, unsigned char *out, size_t out_cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return 0;
    z.next_in = (unsigned char *)in->data;
    z.avail_in = (unsigned)in->len;
    z.next_out = out;
    z.avail_out = (unsigned)out_cap;
    inflate(&z, Z_FINISH);
    size_t n = out_cap - z.avail_out;
    inflateEnd(&z);
    return n;
}

static int cmd_bench(const char *path, int iters)
{
    lw_buf in;
    int rc = read_file(path, &in);
    if (rc)
        return rc;
    size_t cap = (size_t)256 << 20;
    unsigned char *raw = malloc(cap);
    if (!raw) {
        lw_buf_cleanup(&in);
        return -ENOMEM;
    }
    size_t raw_len = inflate_only(&in, raw, cap);
    double t0 = now_seconds();
    for (int i = 0; i < iters; i++)
        inflate_only(&in, raw, cap);
    double t_inflate = (now_seconds() - t0) / iters;

    t0 = now_seconds();
    for (int i = 0; i < iters; i++) {
        Perftools__Profiles__Profile *pb =
            perftools__profiles__profile__unpack(NULL, raw_len, raw);
        if (!pb) {
            rc = -EINVAL;
            break;
        }
        perftools__profiles__profile__free_unpacked(pb, NULL);
    }
    double t_unpack = (now_seconds() - t0) / iters;

    char err[PPROF_ERR_LEN];
    t0 = now_seconds();
    for (int i = 0; i < iters && rc == 0; i++) {
        pprof_profile *p;
        rc = pprof_decode(in.data, in.len, NULL, &p, err, sizeof(err));
        pprof_free(p);
    }
    double t_decode = (now_seconds() - t0) / iters;
    pprof_profile *p = NULL;
    double t_hash = 0;
    if (rc == 0 && (rc = pprof_decode(in.data, in.len, NULL, &p, err, sizeof(err))) == 0) {
        uint64_t *h = calloc(p->n_samples + 1, sizeof(*h));
        t0 = now_seconds();
        for (int i = 0; i < iters && rc == 0 && h; i++)
            rc = pprof_stack_hashes(p, h);
        t_hash = (now_seconds() - t0) / iters;
        if (!h)
            rc = -ENOMEM;
        free(h);
    }
    pprof_free(p);
    if (rc == 0) {
        printf("file %s: %zu bytes gzipped, %zu bytes raw\n", path, in.len, raw_len);
        printf("zlib inflate:              %8.3f ms  %8.1f MB/s (raw)\n", t_inflate * 1e3,
               (double)raw_len / t_inflate / 1e6);
        printf("protobuf-c unpack (raw):   %8.3f ms  %8.1f MB/s (raw)\n", t_unpack * 1e3,
               (double)raw_len / t_unpack / 1e6);
        printf("pprof_decode (gzip+parse+validate): %8.3f ms  %8.1f MB/s (raw), %.0f%% of inflate\n",
               t_decode * 1e3, (double)raw_len / t_decode / 1e6, 100.0 * t_inflate / t_decode);
        printf("pprof_stack_hashes (all samples):    %8.3f ms\n", t_hash * 1e3);
        printf("decode + stack hashes: %.0f%% of inflate throughput\n",
               100.0 * t_inflate / (t_decode + t_hash));
    } else {
        fprintf(stderr, "lwpprof-tool: bench failed: %s\n", rc == -EINVAL ? "bad input" : err);
    }
    free(raw);
    lw_buf_cleanup(&in);
    return rc;
}

/* Time the phases of `diff` (CPU time, best of iters). */
static int cmd_bench_diff(const char *base_path, const char *cur_path, int iters)
{
    lw_buf a, b, out;
    char err[PPROF_ERR_LEN];
    int rc = read_file(base_path, &a);
    if (rc)
        return rc;
    if ((rc = read_file(cur_path, &b))) {
        lw_buf_cleanup(&a);
        return rc;
    }
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int i = 0; i < iters && rc == 0; i++) {
        pprof_profile *p = NULL, *q = NULL, *d = NULL;
        lw_buf_init(&out, MAX_OUT_BYTES);
        double t0 = now_seconds();
        rc = pprof_decode(a.data, a.len, NULL, &p, err, sizeof(err));
        if (rc == 0)
            rc = pprof_decode(b.data, b.len, NULL, &q, err, sizeof(err));
        double t1 = now_seconds();
        if (rc == 0)
            rc = pprof_diff(p, q, &d, err, sizeof(err));
        double t2 = now_seconds();
        if (rc == 0)
            rc = pprof_encode(d, true, &out);
        double t3 = now_seconds();
        double t[4] = {t1 - t0, t2 - t1, t3 - t2, t3 - t0};
        for (int k = 0; k < 4; k++)
            best[k] = t[k] < best[k] ? t[k] : best[k];
        pprof_free(p);
        pprof_free(q);
        pprof_free(d);
        lw_buf_cleanup(&out);
    }
    if (rc == 0)
        printf("decode both %.3f ms, diff %.3f ms, encode+gzip %.3f ms, total %.3f ms (CPU, best of %d)\n",
               best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, best[3] * 1e3, iters);
    else
        fprintf(stderr, "lwpprof-tool: bench-diff failed: %s\n", err);
    lw_buf_cleanup(&a);
    lw_buf_cleanup(&b);
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: lwpprof-tool totals FILE\n"
            "       lwpprof-tool roundtrip IN OUT\n"
            "       lwpprof-tool diff BASE NEW OUT\n"
            "       lwpprof-tool merge OUT IN...\n"
            "       lwpprof-tool top FILE [sample_type|-] [rows]\n"
            "       lwpprof-tool folded FILE [sample_type]\n"
            "       lwpprof-tool json FILE\n"
            "       lwpprof-tool stacks FILE\n"
            "       lwpprof-tool bench FILE [iterations]\n"
            "       lwpprof-tool bench-diff BASE NEW [iterations]\n");
}

static int run(int argc, char **argv)
{
    const char *cmd = argv[1];
    pprof_profile *p = NULL, *q = NULL, *r = NULL;
    char err[PPROF_ERR_LEN];
    lw_buf out;
    int rc;
    lw_buf_init(&out, MAX_OUT_BYTES);
    if (strcmp(cmd, "bench") == 0 && (argc == 3 || argc == 4))
        return cmd_bench(argv[2], argc == 4 ? atoi(argv[3]) > 0 ? atoi(argv[3]) : 1 : 5);
    if (strcmp(cmd, "bench-diff") == 0 && (argc == 4 || argc == 5))
        return cmd_bench_diff(argv[2], argv[3], argc == 5 && atoi(argv[4]) > 0 ? atoi(argv[4]) : 5);
    if (strcmp(cmd, "diff") == 0 && argc == 5) {
        if ((rc = load(argv[2], &p)) || (rc = load(argv[3], &q)))
            goto out;
        rc = pprof_diff(p, q, &r, err, sizeof(err));
        if (rc)
            fprintf(stderr, "lwpprof-tool: diff: %s\n", err);
        else
            rc = save(argv[4], r);
        goto out;
    }
    if (strcmp(cmd, "merge") == 0 && argc >= 4) {
        size_t n = (size_t)argc - 3;
        pprof_profile **ps = calloc(n, sizeof(*ps));
        rc = ps ? 0 : -ENOMEM;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = load(argv[3 + i], &ps[i]);
        if (rc == 0) {
            rc = pprof_merge((const pprof_profile *const *)ps, n, &r, err, sizeof(err));
            if (rc)
                fprintf(stderr, "lwpprof-tool: merge: %s\n", err);
            else
                rc = save(argv[2], r);
        }
        for (size_t i = 0; ps && i < n; i++)
            pprof_free(ps[i]);
        free(ps);
        goto out;
    }
    if (argc < 3) {
        usage();
        return 2;
    }
    if ((rc = load(argv[2], &p)))
        goto out;
    if (strcmp(cmd, "totals") == 0 && argc == 3) {
        rc = cmd_totals(p);
    } else if (strcmp(cmd, "roundtrip") == 0 && argc == 4) {
        rc = save(argv[3], p);
    } else if (strcmp(cmd, "top") == 0 && argc >= 3 && argc <= 5) {
        const char *type = argc >= 4 && strcmp(argv[3], "-") != 0 ? argv[3] : NULL;
        int si = sample_index(p, type);
        rc = si < 0 ? si
                    : print_buf(&out, pprof_render_top(p, si, argc == 5 ? (size_t)atol(argv[4]) : 0,
                                                       &out));
    } else if (strcmp(cmd, "folded") == 0 && argc >= 3 && argc <= 4) {
        int si = sample_index(p, argc == 4 ? argv[3] : NULL);
        rc = si < 0 ? si : print_buf(&out, pprof_render_folded(p, si, &out));
    } else if (strcmp(cmd, "json") == 0 && argc == 3) {
        rc = print_buf(&out, pprof_render_json(p, &out));
    } else if (strcmp(cmd, "stacks") == 0 && argc == 3) {
        rc = cmd_stacks(p);
    } else {
        usage();
        rc = 2;
    }
out:
    lw_buf_cleanup(&out);
    pprof_free(p);
    pprof_free(q);
    pprof_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    lw_malloc_keep_freed(); /* as leakwatchd */
    if (argc < 2) {
        usage();
        return 2;
    }
    int rc = run(argc, argv);
    return rc == 0 ? 0 : rc == 2 ? 2 : 1;
}
