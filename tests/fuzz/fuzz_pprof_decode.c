/* fuzz_pprof_decode.c — libFuzzer target for the profile codec: every input
 * goes through pprof_decode(); a profile that decodes must validate, survive
 * an encode/decode round trip unchanged (sample count, sample types, totals,
 * normalized stack of every sample), render as top, folded and JSON, and
 * merge and diff with itself (merge doubles the totals, diff nets them to
 * zero, when no value is large enough to saturate).
 *
 * Caps are smaller than the daemon's defaults so that a fuzzer spends its
 * time on structure rather than on inflating one huge input; the cap logic
 * itself is the same code.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lw_buf.h"
#include "pprof.h"

#define FUZZ_MAX_COMPRESSED ((size_t)4 << 20)
#define FUZZ_MAX_DECOMPRESSED ((size_t)16 << 20)
#define FUZZ_MAX_OUTPUT ((size_t)64 << 20)
#define FUZZ_MAX_RENDERED_TYPES 4

static void check_round_trip(const pprof_profile *p, const pprof_limits *lim)
{
    lw_buf enc;
    lw_buf_init(&enc, FUZZ_MAX_OUTPUT);
    pprof_profile *q = NULL;
    int64_t *ta = NULL, *tb = NULL;
    char err[PPROF_ERR_LEN] = "";

    int rc = pprof_encode(p, false, &enc);
    if (rc == -E2BIG || rc == -ENOMEM)
        goto out;
    if (rc)
        fuzz_fail("pprof_encode of a valid profile failed: %d", rc);
    rc = pprof_decode(enc.data ? enc.data : "", enc.len, lim, &q, err, sizeof(err));
    if (rc == -E2BIG || rc == -ENOMEM)
        goto out;
    if (rc)
        fuzz_fail("re-decoding an encoded valid profile failed (%d): %s", rc, err);
    if (q->n_samples != p->n_samples || q->n_sample_types != p->n_sample_types)
        fuzz_fail("round trip changed the shape: %zu samples x %zu types -> %zu x %zu",
                  p->n_samples, p->n_sample_types, q->n_samples, q->n_sample_types);
    size_t nt = p->n_sample_types ? p->n_sample_types : 1;
    ta = calloc(nt, sizeof(*ta));
    tb = calloc(nt, sizeof(*tb));
    if (!ta || !tb)
        goto out;
    pprof_totals(p, ta);
    pprof_totals(q, tb);
    if (memcmp(ta, tb, p->n_sample_types * sizeof(*ta)) != 0)
        fuzz_fail("round trip changed the totals");
    for (size_t i = 0; i < p->n_samples; i++) {
        uint64_t ha = pprof_stack_hash(p, &p->samples[i]);
        uint64_t hb = pprof_stack_hash(q, &q->samples[i]);
        if (ha != hb)
            fuzz_fail("round trip changed the stack of sample %zu", i);
    }
out:
    free(ta);
    free(tb);
    pprof_free(q);
    lw_buf_cleanup(&enc);
}

/* True when every value of p is small enough that no sum of two profiles'
 * totals can saturate, so arithmetic properties hold exactly. */
static bool values_small(const pprof_profile *p)
{
    const int64_t lim = INT64_C(1) << 40;
    for (size_t i = 0; i < p->n_samples; i++)
        for (size_t j = 0; j < p->samples[i].n_values; j++)
            if (p->samples[i].values[j] > lim || p->samples[i].values[j] < -lim)
                return false;
    return p->n_samples < (size_t)1 << 20;
}

/* merge(p, p) doubles the totals; diff(p, p) nets every total to zero; both
 * results validate and render. */
static void check_arithmetic(const pprof_profile *p)
{
    pprof_profile *m = NULL, *d = NULL;
    int64_t *t = NULL, *tm = NULL, *td = NULL;
    char err[PPROF_ERR_LEN] = "";
    size_t nt = p->n_sample_types ? p->n_sample_types : 1;
    bool exact = values_small(p);

    const pprof_profile *const two[] = {p, p};
    int rc = pprof_merge(two, 2, &m, err, sizeof(err));
    if (rc == -ENOMEM)
        goto out;
    if (rc)
        fuzz_fail("merging a valid profile with itself failed (%d): %s", rc, err);
    rc = pprof_diff(p, p, &d, err, sizeof(err));
    if (rc == -ENOMEM)
        goto out;
    if (rc)
        fuzz_fail("diffing a valid profile with itself failed (%d): %s", rc, err);
    if ((rc = pprof_validate(m, err, sizeof(err))) != 0 && rc != -ENOMEM)
        fuzz_fail("merge result does not validate: %s", err);
    if ((rc = pprof_validate(d, err, sizeof(err))) != 0 && rc != -ENOMEM)
        fuzz_fail("diff result does not validate: %s", err);
    t = calloc(nt, sizeof(*t));
    tm = calloc(nt, sizeof(*tm));
    td = calloc(nt, sizeof(*td));
    if (!t || !tm || !td)
        goto out;
    pprof_totals(p, t);
    pprof_totals(m, tm);
    pprof_totals(d, td);
    for (size_t i = 0; exact && i < p->n_sample_types; i++) {
        if (tm[i] != 2 * t[i])
            fuzz_fail("merge(p, p) total %zu is %lld, want 2 x %lld", i, (long long)tm[i],
                      (long long)t[i]);
        if (td[i] != 0)
            fuzz_fail("diff(p, p) total %zu is %lld, want 0", i, (long long)td[i]);
    }
    lw_buf out;
    lw_buf_init(&out, FUZZ_MAX_OUTPUT);
    if (p->n_sample_types > 0) {
        rc = pprof_render_top(d, 0, 10, &out);
        if (rc && rc != -E2BIG && rc != -ENOMEM)
            fuzz_fail("pprof_render_top of a diff failed: %d", rc);
    }
    lw_buf_cleanup(&out);
out:
    free(t);
    free(tm);
    free(td);
    pprof_free(m);
    pprof_free(d);
}

static void render_all(const pprof_profile *p)
{
    lw_buf out;
    lw_buf_init(&out, FUZZ_MAX_OUTPUT);
    size_t n = p->n_sample_types < FUZZ_MAX_RENDERED_TYPES ? p->n_sample_types
                                                            : FUZZ_MAX_RENDERED_TYPES;
    for (size_t i = 0; i < n; i++) {
        int rc = pprof_render_top(p, (int)i, 10, &out);
        if (rc && rc != -E2BIG && rc != -ENOMEM)
            fuzz_fail("pprof_render_top(%zu) failed: %d", i, rc);
        lw_buf_reset(&out);
        rc = pprof_render_folded(p, (int)i, &out);
        if (rc && rc != -E2BIG && rc != -ENOMEM)
            fuzz_fail("pprof_render_folded(%zu) failed: %d", i, rc);
        lw_buf_reset(&out);
    }
    int rc = pprof_render_json(p, &out);
    if (rc && rc != -E2BIG && rc != -ENOMEM)
        fuzz_fail("pprof_render_json failed: %d", rc);
    lw_buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const pprof_limits lim = {
        .max_compressed_bytes = FUZZ_MAX_COMPRESSED,
        .max_decompressed_bytes = FUZZ_MAX_DECOMPRESSED,
    };
    pprof_profile *p = NULL;
    char err[PPROF_ERR_LEN] = "";

    int rc = pprof_decode(data, size, &lim, &p, err, sizeof(err));
    if (rc) {
        if (p)
            fuzz_fail("pprof_decode failed (%d) but set *out", rc);
        if (rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM)
            fuzz_fail("pprof_decode returned %d, not -EINVAL/-E2BIG/-ENOMEM", rc);
        if (err[0] == '\0')
            fuzz_fail("pprof_decode failed (%d) without a message", rc);
        return 0;
    }
    rc = pprof_validate(p, err, sizeof(err));
    if (rc && rc != -ENOMEM)
        fuzz_fail("a decoded profile does not validate: %s", err);
    check_round_trip(p, &lim);
    render_all(p);
    check_arithmetic(p);
    pprof_free(p);
    return 0;
}
