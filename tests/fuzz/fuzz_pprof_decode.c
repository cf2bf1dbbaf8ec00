/* fuzz_pprof_decode.c — libFuzzer target for the profile codec: every input
 * goes through pprof_decode(); a profile that decodes must validate, survive
 * an encode/decode round trip unchanged (sample count, sample types, totals,
 * normalized stack of every sample) and render as top, folded and JSON.
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
    pprof_free(p);
    return 0;
}
