/* store_sets.c — sample sets: the samples of one profile as one blob.
 *
 * A sample set is a list of (stack id, values, labels) rows. It is stored
 * either in full or as a delta against a keyframe: an earlier full set of
 * the same target and profile type. Successive heap profiles of a service
 * share almost every row and most values, so a delta is mostly "same row
 * as the keyframe's row j, values +0" and deflates to a few hundred bytes;
 * a delta never refers to another delta, so reading one costs at most two
 * blobs. Both layouts are column-wise (all stack ids, then each value
 * column, then labels), which deflate rewards. All numbers are varints;
 * signed ones zigzag-encoded.
 *
 * Full:  n_samples, n_types, stack ids (deltas from the previous row's),
 *        values column by column, n_labels per row, then per label: key,
 *        str (string ids) and, when str == 0, num and unit.
 * Delta: n_samples, n_types, a match column (0 = a new row, else
 *        1 + zigzag(j - (previous j + 1)) for "keyframe row j"), the new
 *        rows' stack ids (deltas), values column by column (new rows: the
 *        value; matched rows: value minus the keyframe's), the new rows'
 *        n_labels and labels. A matched row has the keyframe row's stack
 *        and labels. The n_types varint may carry
 *        DELTA_ZERO_RUNS: each value column then codes a run of L zeros
 *        (most of a series' differences) as 0, L - 1 and any other value
 *        as its zigzag varint (never 0). Deltas without the flag (older
 *        databases) are read as before.
 */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SET_MAX_BYTES ((size_t)1 << 30)
/* Flag in a delta's n_types (at most 64): value columns use zero runs. */
#define DELTA_ZERO_RUNS 0x80

/* Room for `need` elements; the contents are not kept (a reader's arrays
 * are refilled after store__set_alloc), so a bigger array is a fresh one,
 * not a copy. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap && *arr)
        return 0;
    size_t n = need ? need : 1;
    free(*arr);
    *arr = malloc(n * elem);
    *cap = *arr ? n : 0;
    return *arr ? 0 : -ENOMEM;
}

int store__set_alloc(store__set_reader *r, size_t n, size_t nt, size_t n_labels)
{
    size_t cap_off = r->cap_samples;
    r->n_samples = n;
    r->n_types = nt;
    if (grow((void **)&r->stack_ids, &r->cap_samples, n + 1, sizeof(int64_t)) ||
        grow((void **)&r->label_off, &cap_off, n + 1, sizeof(size_t)) ||
        grow((void **)&r->values, &r->cap_values, n * nt, sizeof(int64_t)) ||
        grow((void **)&r->labels, &r->cap_labels, n_labels * 4, sizeof(int64_t))) {
        store__set_free(r);
        return -ENOMEM;
    }
    /* stack_ids and label_off share cap_samples: keep them the same size. */
    if (cap_off != r->cap_samples) {
        size_t c = cap_off;
        if (grow((void **)&r->label_off, &c, r->cap_samples, sizeof(size_t))) {
            store__set_free(r);
            return -ENOMEM;
        }
    }
    return 0;
}

void store__set_free(store__set_reader *r)
{
    free(r->stack_ids);
    free(r->values);
    free(r->label_off);
    free(r->labels);
    memset(r, 0, sizeof(*r));
}

bool store__set_equal(const store__set_reader *a, const store__set_reader *b)
{
    size_t n = a->n_samples;
    if (n != b->n_samples || a->n_types != b->n_types)
        return false;
    return memcmp(a->stack_ids, b->stack_ids, n * sizeof(int64_t)) == 0 &&
           memcmp(a->values, b->values, n * a->n_types * sizeof(int64_t)) == 0 &&
           memcmp(a->label_off, b->label_off, (n + 1) * sizeof(size_t)) == 0 &&
           memcmp(a->labels, b->labels, a->label_off[n] * 4 * sizeof(int64_t)) == 0;
}

static void vw_label(store__vw *w, const int64_t *l)
{
    store__vw_u(w, (uint64_t)l[0]);
    store__vw_u(w, (uint64_t)l[1]);
    if (l[1] == 0) {
        store__vw_s(w, l[2]);
        store__vw_u(w, (uint64_t)l[3]);
    }
}

/* A delta column's pending run of *zeros zero values (if any): 0, L - 1. */
static void vw_zero_run(store__vw *w, uint64_t *zeros)
{
    if (*zeros) {
        store__vw_u(w, 0);
        store__vw_u(w, *zeros - 1);
        *zeros = 0;
    }
}

int store__set_encode_full(const store__set_reader *r, lw_buf *b)
{
    size_t n = r->n_samples, nt = r->n_types;
    store__vw w = {.b = b};
    lw_buf_reset(b);
    store__vw_u(&w, n);
    store__vw_u(&w, nt);
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        store__vw_s(&w, (int64_t)((uint64_t)r->stack_ids[i] - (uint64_t)prev));
        prev = r->stack_ids[i];
    }
    for (size_t t = 0; t < nt; t++)
        for (size_t i = 0; i < n; i++)
            store__vw_s(&w, r->values[i * nt + t]);
    for (size_t i = 0; i < n; i++)
        store__vw_u(&w, r->label_off[i + 1] - r->label_off[i]);
    for (size_t j = 0; j < r->label_off[n]; j++)
        vw_label(&w, &r->labels[j * 4]);
    return store__vw_finish(&w);
}

/* Row identity for matching: stack id and labels. */
static uint64_t row_hash(const store__set_reader *r, size_t i)
{
    uint64_t h = store__hash(&r->stack_ids[i], sizeof(int64_t));
    size_t nl = r->label_off[i + 1] - r->label_off[i];
    if (nl)
        h ^= store__hash(&r->labels[r->label_off[i] * 4], nl * 4 * sizeof(int64_t)) * 31;
    return h | 1; /* 0 marks an empty slot */
}

static bool row_equal(const store__set_reader *a, size_t i, const store__set_reader *b, size_t j)
{
    size_t na = a->label_off[i + 1] - a->label_off[i], nb = b->label_off[j + 1] - b->label_off[j];
    if (a->stack_ids[i] != b->stack_ids[j] || na != nb)
        return false;
    /* A row has a label or two: a plain loop beats a call. */
    const int64_t *la = &a->labels[a->label_off[i] * 4], *lb = &b->labels[b->label_off[j] * 4];
    for (size_t k = 0; k < na * 4; k++)
        if (la[k] != lb[k])
            return false;
    return true;
}

typedef struct row_slot {
    uint64_t hash;
    size_t index;
} row_slot;

/* Index every keyframe row by hash (for rows that are not where the
 * sequential guess expects them). 0 or -ENOMEM. */
static int index_rows(const store__set_reader *base, row_slot **slots_out, size_t *n_slots_out)
{
    size_t bn = base->n_samples, n_slots = 16;
    while (n_slots < bn * 2)
        n_slots *= 2;
    row_slot *slots = calloc(n_slots, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t j = 0; j < bn; j++) {
        uint64_t h = row_hash(base, j);
        size_t k = (size_t)h & (n_slots - 1);
        while (slots[k].hash)
            k = (k + 1) & (n_slots - 1);
        slots[k] = (row_slot){h, j};
    }
    *slots_out = slots;
    *n_slots_out = n_slots;
    return 0;
}

/* A keyframe this small is indexed whenever a row misses the window (the
 * index is cheap; every unmatched row costs a full row in the delta). */
#define SMALL_KEYFRAME_ROWS 4096

typedef struct delta_col {
    lw_buf b;
    store__vw w;
    uint64_t zeros; /* pending zero run */
} delta_col;

int store__set_encode_delta(const store__set_reader *r, const store__set_reader *base,
                            size_t max_new_rows, lw_buf *b)
{
    size_t n = r->n_samples, nt = r->n_types, bn = base->n_samples;
    size_t n_slots = 0;
    row_slot *slots = NULL;
    bool *used = NULL;
    int64_t *match = NULL; /* per row: keyframe row or -1 */
    delta_col *cols = NULL; /* per sample type: its encoded value column */
    int rc;
    lw_buf_reset(b);
    if (base->n_types != nt)
        return -EINVAL;
    /* Rows match one keyframe row each: rows beyond the keyframe's count
     * match nothing, known before matching any. */
    if (n > bn && n - bn > max_new_rows)
        return -ERANGE;
    used = calloc(bn ? bn : 1, sizeof(*used));
    match = malloc((n ? n : 1) * sizeof(*match));
    if (!used || !match) {
        rc = -ENOMEM;
        goto out;
    }
    /* Look for each row's keyframe row near the one after the previous
     * match (store__near): when rows repeat (same stack and labels) that
     * keeps the match column at 1s. Rows this misses are looked up in a
     * hash index of the keyframe when it is small or many rows missed;
     * otherwise they stay unmatched (stored in full). */
    int64_t prev = -1, lo = 0, hi = -1;
    size_t n_pending = 0;
    for (size_t j = 0; j < bn; j++) {
        lo = j == 0 || base->stack_ids[j] < lo ? base->stack_ids[j] : lo;
        hi = j == 0 || base->stack_ids[j] > hi ? base->stack_ids[j] : hi;
    }
    for (size_t i = 0; i < n; i++) {
        match[i] = -1;
        for (size_t k = 0; k < STORE_NEAR_N; k++) {
            size_t j = (size_t)(prev + 1 + store__near[k]);
            if (j < bn && !used[j] && row_equal(r, i, base, j)) {
                match[i] = (int64_t)j;
                used[j] = true;
                prev = (int64_t)j;
                break;
            }
        }
        /* A stack outside the keyframe's range of stack ids (a stack
         * stored after the keyframe has a higher id) matches no row. */
        if (match[i] < 0 && r->stack_ids[i] >= lo && r->stack_ids[i] <= hi)
            n_pending++;
    }
    if (n_pending && (bn <= SMALL_KEYFRAME_ROWS || n_pending > n / 32 + 16)) {
        if ((rc = index_rows(base, &slots, &n_slots)))
            goto out;
        for (size_t i = 0; i < n; i++) {
            if (match[i] >= 0 || r->stack_ids[i] < lo || r->stack_ids[i] > hi)
                continue;
            uint64_t h = row_hash(r, i);
            for (size_t k = (size_t)h & (n_slots - 1); slots[k].hash; k = (k + 1) & (n_slots - 1)) {
                size_t j = slots[k].index;
                if (slots[k].hash == h && !used[j] && row_equal(r, i, base, j)) {
                    match[i] = (int64_t)j;
                    used[j] = true;
                    break;
                }
            }
        }
    }
    size_t n_new = 0;
    for (size_t i = 0; i < n; i++)
        n_new += match[i] < 0;
    if (n_new > max_new_rows) {
        rc = -ERANGE;
        goto out;
    }
    store__vw w = {.b = b};
    store__vw_u(&w, n);
    store__vw_u(&w, nt | DELTA_ZERO_RUNS);
    prev = -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t m = 0;
        if (match[i] >= 0) {
            int64_t d = match[i] - (prev + 1);
            m = 1 + (((uint64_t)d << 1) ^ (uint64_t)(d >> 63));
            prev = match[i];
        }
        store__vw_u(&w, m);
    }
    int64_t prev_stack = 0;
    for (size_t i = 0; i < n; i++) {
        if (match[i] >= 0)
            continue;
        store__vw_s(&w, (int64_t)((uint64_t)r->stack_ids[i] - (uint64_t)prev_stack));
        prev_stack = r->stack_ids[i];
    }
    /* The value columns follow one another in the blob, but are computed
     * in one pass over the rows, each into its own buffer (a pass per
     * column strides through both sets' rows nt times: 4x the memory
     * traffic of a 67k-row heap profile, most of the encoder's time). */
    cols = calloc(nt ? nt : 1, sizeof(*cols));
    if (!cols) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t t = 0; t < nt; t++) {
        lw_buf_init(&cols[t].b, b->max_bytes);
        cols[t].w.b = &cols[t].b;
    }
    for (size_t i = 0; i < n; i++) {
        const int64_t *cur = &r->values[i * nt];
        const int64_t *old = match[i] >= 0 ? &base->values[(size_t)match[i] * nt] : NULL;
        for (size_t t = 0; t < nt; t++) {
            int64_t v = old ? (int64_t)((uint64_t)cur[t] - (uint64_t)old[t]) : cur[t];
            if (v == 0) {
                cols[t].zeros++;
                continue;
            }
            vw_zero_run(&cols[t].w, &cols[t].zeros);
            store__vw_s(&cols[t].w, v);
        }
    }
    store__vw_flush(&w);
    for (size_t t = 0; t < nt; t++) {
        vw_zero_run(&cols[t].w, &cols[t].zeros);
        if ((rc = store__vw_finish(&cols[t].w)) ||
            (rc = cols[t].b.len ? lw_buf_append(b, cols[t].b.data, cols[t].b.len) : 0))
            goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (match[i] < 0)
            store__vw_u(&w, r->label_off[i + 1] - r->label_off[i]);
    for (size_t i = 0; i < n; i++) {
        if (match[i] >= 0)
            continue;
        for (size_t j = r->label_off[i]; j < r->label_off[i + 1]; j++)
            vw_label(&w, &r->labels[j * 4]);
    }
    rc = store__vw_finish(&w);
    if (rc)
        goto out;
    rc = 0;
out:
    for (size_t t = 0; cols && t < nt; t++)
        lw_buf_cleanup(&cols[t].b);
    free(cols);
    free(slots);
    free(used);
    free(match);
    return rc;
}

static int get_label(const unsigned char *d, size_t dl, size_t *pos, int64_t *l)
{
    uint64_t key, str, unit = 0;
    int64_t num = 0;
    if (store__get_uvarint(d, dl, pos, &key) || store__get_uvarint(d, dl, pos, &str))
        return -EINVAL;
    if (str == 0 && (store__get_svarint(d, dl, pos, &num) || store__get_uvarint(d, dl, pos, &unit)))
        return -EINVAL;
    l[0] = (int64_t)key;
    l[1] = (int64_t)str;
    l[2] = num;
    l[3] = (int64_t)unit;
    return 0;
}

static int parse_full(const unsigned char *d, size_t dl, store__set_reader *r)
{
    size_t pos = 0, n_labels = 0;
    uint64_t n, nt, u;
    int64_t v;
    int rc;
    /* Every row takes at least one byte per column (stack, values, label
     * count): bound the counts by the data before allocating. */
    if (store__get_uvarint(d, dl, &pos, &n) || store__get_uvarint(d, dl, &pos, &nt) || n > dl ||
        nt > 64 || n * (2 + nt) > dl)
        return -EINVAL;
    /* Label counts come after the values: find them first to size the
     * label array. Cheap: one pass over varints. */
    size_t scan = pos;
    for (uint64_t k = 0; k < n * (1 + nt); k++)
        if (store__get_svarint(d, dl, &scan, &v))
            return -EINVAL;
    for (uint64_t i = 0; i < n; i++) {
        if (store__get_uvarint(d, dl, &scan, &u) || u > dl)
            return -EINVAL;
        n_labels += u;
    }
    if (n_labels > dl)
        return -EINVAL;
    if ((rc = store__set_alloc(r, n, nt, n_labels)))
        return rc;
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (store__get_svarint(d, dl, &pos, &v))
            goto bad;
        prev = (int64_t)((uint64_t)prev + (uint64_t)v);
        r->stack_ids[i] = prev;
    }
    for (size_t t = 0; t < nt; t++)
        for (size_t i = 0; i < n; i++)
            if (store__get_svarint(d, dl, &pos, &r->values[i * nt + t]))
                goto bad;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (store__get_uvarint(d, dl, &pos, &u))
            goto bad;
        r->label_off[i] = off;
        off += u;
    }
    r->label_off[n] = off;
    for (size_t j = 0; j < off; j++)
        if (get_label(d, dl, &pos, &r->labels[j * 4]))
            goto bad;
    if (pos != dl)
        goto bad;
    return 0;
bad:
    store__set_free(r);
    return -EINVAL;
}

/* One value column of a delta with zero runs: count values into
 * dst[i * stride] (NULL: skip them). -EINVAL when malformed. */
static int get_zero_run_column(const unsigned char *d, size_t dl, size_t *pos, size_t count,
                               int64_t *dst, size_t stride)
{
    size_t i = 0;
    while (i < count) {
        uint64_t u;
        if (store__get_uvarint(d, dl, pos, &u))
            return -EINVAL;
        if (u != 0) {
            if (dst)
                dst[i * stride] = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            i++;
            continue;
        }
        if (store__get_uvarint(d, dl, pos, &u) || u >= count - i)
            return -EINVAL;
        for (uint64_t k = 0; k <= u; k++, i++)
            if (dst)
                dst[i * stride] = 0;
    }
    return 0;
}

/* base == NULL: shallow parse (for GC): matched rows get stack id 0, no
 * labels, and their value deltas. */
static int parse_delta(const unsigned char *d, size_t dl, const store__set_reader *base,
                       store__set_reader *r)
{
    size_t pos = 0;
    uint64_t n, nt, u;
    int64_t v;
    int64_t *match = NULL, *new_stacks = NULL;
    size_t *new_nl = NULL;
    int rc = -EINVAL;
    memset(r, 0, sizeof(*r));
    if (store__get_uvarint(d, dl, &pos, &n) || store__get_uvarint(d, dl, &pos, &nt))
        return -EINVAL;
    /* Zero runs: a column of n values may take 2 bytes; otherwise every
     * value takes one at least. The match column always takes n. */
    bool zero_runs = (nt & DELTA_ZERO_RUNS) != 0;
    nt &= ~(uint64_t)DELTA_ZERO_RUNS;
    if (n > dl || nt > 64 || n + (zero_runs ? 2 * nt : n * nt) > dl || (base && base->n_types != nt))
        return -EINVAL;
    match = malloc((n ? n : 1) * sizeof(*match));
    new_stacks = malloc((n ? n : 1) * sizeof(*new_stacks));
    new_nl = malloc((n ? n : 1) * sizeof(*new_nl));
    if (!match || !new_stacks || !new_nl) {
        rc = -ENOMEM;
        goto out;
    }
    int64_t prev = -1;
    size_t n_new = 0;
    for (size_t i = 0; i < n; i++) {
        if (store__get_uvarint(d, dl, &pos, &u))
            goto out;
        if (u == 0) {
            match[i] = -1;
            n_new++;
            continue;
        }
        u -= 1;
        int64_t delta = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        int64_t j = prev + 1 + delta;
        if (j < 0 || (base && (uint64_t)j >= base->n_samples))
            goto out;
        match[i] = j;
        prev = j;
    }
    int64_t ps = 0;
    for (size_t k = 0; k < n_new; k++) {
        if (store__get_svarint(d, dl, &pos, &v))
            goto out;
        ps = (int64_t)((uint64_t)ps + (uint64_t)v);
        new_stacks[k] = ps;
    }
    size_t values_pos = pos;
    for (uint64_t k = 0; !zero_runs && k < n * nt; k++)
        if (store__get_svarint(d, dl, &pos, &v))
            goto out;
    for (uint64_t t = 0; zero_runs && t < nt; t++)
        if (get_zero_run_column(d, dl, &pos, n, NULL, 0))
            goto out;
    size_t n_labels = 0, n_new_labels = 0;
    for (size_t k = 0; k < n_new; k++) {
        if (store__get_uvarint(d, dl, &pos, &u) || u > dl)
            goto out;
        new_nl[k] = u;
        n_new_labels += u;
    }
    if (n_new_labels > dl)
        goto out;
    n_labels = n_new_labels;
    for (size_t i = 0; base && i < n; i++)
        if (match[i] >= 0)
            n_labels += base->label_off[match[i] + 1] - base->label_off[match[i]];
    if ((rc = store__set_alloc(r, n, nt, n_labels)))
        goto out;
    rc = -EINVAL;
    size_t k = 0, off = 0;
    for (size_t i = 0; i < n; i++) {
        r->label_off[i] = off;
        if (match[i] < 0) {
            r->stack_ids[i] = new_stacks[k];
            off += new_nl[k++];
        } else if (base) {
            size_t j = (size_t)match[i];
            size_t nl = base->label_off[j + 1] - base->label_off[j];
            r->stack_ids[i] = base->stack_ids[j];
            memcpy(&r->labels[off * 4], &base->labels[base->label_off[j] * 4],
                   nl * 4 * sizeof(int64_t));
            off += nl;
        } else {
            r->stack_ids[i] = 0;
        }
    }
    r->label_off[n] = off;
    size_t vp = values_pos;
    for (size_t t = 0; t < nt; t++) {
        if (zero_runs && get_zero_run_column(d, dl, &vp, n, &r->values[t], nt))
            goto bad;
        for (size_t i = 0; i < n; i++) {
            if (zero_runs)
                v = r->values[i * nt + t];
            else if (store__get_svarint(d, dl, &vp, &v))
                goto bad;
            if (match[i] >= 0 && base)
                v = (int64_t)((uint64_t)v + (uint64_t)base->values[(size_t)match[i] * nt + t]);
            r->values[i * nt + t] = v;
        }
    }
    /* New rows' labels, in row order. */
    for (size_t i = 0; i < n; i++) {
        if (match[i] >= 0)
            continue;
        for (size_t j = r->label_off[i]; j < r->label_off[i + 1]; j++)
            if (get_label(d, dl, &pos, &r->labels[j * 4]))
                goto bad;
    }
    if (pos != dl)
        goto bad;
    rc = 0;
    goto out;
bad:
    store__set_free(r);
out:
    free(match);
    free(new_stacks);
    free(new_nl);
    return rc;
}

int store__set_parse(const void *blob, size_t len, bool is_delta, const store__set_reader *base,
                     store__set_reader *out)
{
    lw_buf raw;
    lw_buf_init(&raw, SET_MAX_BYTES);
    memset(out, 0, sizeof(*out));
    int rc = store__unpack(blob, len, &raw);
    if (!rc) {
        const unsigned char *d = (const unsigned char *)(raw.data ? raw.data : "");
        rc = is_delta ? parse_delta(d, raw.len, base, out) : parse_full(d, raw.len, out);
    }
    lw_buf_cleanup(&raw);
    return rc == -ENOMEM ? rc : rc ? -EIO : 0;
}

/* Fetch set id's blob (copied) and its base id. */
static int fetch_set(store__conn *c, int64_t id, unsigned char **blob, size_t *len, int64_t *base_id)
{
    sqlite3_stmt *st = store__stmt(c, SQL_SET_GET);
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    int rc = 0;
    *blob = NULL;
    if (src == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        *blob = malloc(n ? n : 1);
        if (!*blob) {
            rc = -ENOMEM;
        } else {
            if (n)
                memcpy(*blob, sqlite3_column_blob(st, 0), n);
            *len = n;
            *base_id = sqlite3_column_int64(st, 1);
        }
    } else {
        rc = src == SQLITE_DONE ? -ENOENT : store__errno(src);
    }
    sqlite3_reset(st);
    return rc;
}

int store__set_load(store__conn *c, int64_t id, store__set_reader *out)
{
    unsigned char *blob = NULL, *base_blob = NULL;
    size_t len = 0, base_len = 0;
    int64_t base_id = 0, base_base = 0;
    store__set_reader base;
    memset(&base, 0, sizeof(base));
    memset(out, 0, sizeof(*out));
    int rc = fetch_set(c, id, &blob, &len, &base_id);
    if (rc)
        goto out;
    if (!base_id) {
        rc = store__set_parse(blob, len, false, NULL, out);
        goto out;
    }
    rc = fetch_set(c, base_id, &base_blob, &base_len, &base_base);
    if (rc == -ENOENT || (!rc && base_base))
        rc = -EIO; /* a keyframe must exist and be full */
    if (!rc)
        rc = store__set_parse(base_blob, base_len, false, NULL, &base);
    if (!rc)
        rc = store__set_parse(blob, len, true, &base, out);
out:
    store__set_free(&base);
    free(blob);
    free(base_blob);
    return rc;
}

/* ---- keyframe cache (writer only) ---------------------------------------- */

#define STORE_KF_CACHE_BYTES ((size_t)8 << 20)

/* What a cached reader holds: its arrays as allocated. */
static size_t reader_bytes(const store__set_reader *r)
{
    size_t rows = r->cap_samples > r->n_samples ? r->cap_samples : r->n_samples;
    size_t values = r->cap_values > r->n_samples * r->n_types ? r->cap_values
                                                               : r->n_samples * r->n_types;
    size_t labels = r->cap_labels > r->label_off[r->n_samples] * 4 ? r->cap_labels
                                                                    : r->label_off[r->n_samples] * 4;
    return rows * (sizeof(int64_t) + sizeof(size_t)) + (values + labels) * sizeof(int64_t);
}

void store__kf_clear(store__kfcache *kf)
{
    for (size_t i = 0; i < kf->n; i++)
        store__set_free(&kf->entries[i]);
    kf->n = 0;
    kf->bytes = 0;
    store__idset_clear(&kf->index);
}

void store__kf_drop(store__kfcache *kf, int64_t id, store__set_reader *keep)
{
    int64_t slot;
    if (!store__idset_get(&kf->index, id, &slot))
        return;
    store__set_reader *e = &kf->entries[slot];
    kf->bytes -= reader_bytes(e);
    if (keep) {
        store__set_free(keep);
        *keep = *e;
    } else {
        store__set_free(e);
    }
    store__idset_del(&kf->index, id);
    size_t last = kf->n - 1;
    if ((size_t)slot != last) {
        /* The last entry fills the hole. Its key is present and one key
         * was just removed, so the put neither grows nor fails. */
        *e = kf->entries[last];
        kf->ids[slot] = kf->ids[last];
        if (store__idset_put(&kf->index, kf->ids[slot], slot) != 0)
            assert(!"replacing a present key failed");
    }
    memset(&kf->entries[last], 0, sizeof(kf->entries[last]));
    kf->n = last;
}

/* Take ownership of *r (zeroed afterwards) as set id; false (r left as it
 * is) when it does not fit. */
static bool kf_adopt(store__kfcache *kf, int64_t id, store__set_reader *r)
{
    size_t bytes = reader_bytes(r);
    /* Over budget: not cached (callers then decode it themselves); the
     * cached ones stay rather than everyone thrashing. */
    if (kf->bytes + bytes > STORE_KF_CACHE_BYTES)
        return false;
    if (kf->n == kf->cap) {
        size_t cap = kf->cap ? kf->cap * 2 : 16;
        store__set_reader *e = realloc(kf->entries, cap * sizeof(*e));
        if (e)
            kf->entries = e;
        int64_t *ids = e ? realloc(kf->ids, cap * sizeof(*ids)) : NULL;
        if (!ids)
            return false;
        kf->ids = ids;
        kf->cap = cap;
    }
    if (store__idset_put(&kf->index, id, (int64_t)kf->n))
        return false;
    kf->ids[kf->n] = id;
    kf->entries[kf->n++] = *r;
    kf->bytes += bytes;
    memset(r, 0, sizeof(*r));
    return true;
}

/* Shrink an array to n elements (in place: no copy); on failure it stays. */
static void shrink(void **arr, size_t *cap, size_t n, size_t elem)
{
    void *t = realloc(*arr, (n ? n : 1) * elem);
    if (t) {
        *arr = t;
        *cap = n ? n : 1;
    }
}

int store__set_copy(const store__set_reader *src, store__set_reader *dst)
{
    size_t n = src->n_samples, nt = src->n_types, nl = src->label_off[n];
    memset(dst, 0, sizeof(*dst));
    int rc = store__set_alloc(dst, n, nt, nl);
    if (rc)
        return rc;
    memcpy(dst->stack_ids, src->stack_ids, n * sizeof(int64_t));
    memcpy(dst->values, src->values, n * nt * sizeof(int64_t));
    memcpy(dst->label_off, src->label_off, (n + 1) * sizeof(size_t));
    memcpy(dst->labels, src->labels, nl * 4 * sizeof(int64_t));
    return 0;
}

bool store__kf_take(store *s, int64_t id, store__set_reader *r)
{
    if (store__idset_get(&s->kf.index, id, NULL))
        return false;
    /* An ingest's arrays have headroom (and may have grown for a bigger
     * profile once): the cache keeps only what this set needs (a shrinking
     * realloc splits the block in place, no copy). With 1000 targets the
     * cache held ~1.5x the memory for the same keyframes otherwise. */
    size_t n = r->n_samples, nv = n * r->n_types, nl = r->label_off[n] * 4;
    if (r->cap_samples > n + 1) {
        size_t c = r->cap_samples;
        shrink((void **)&r->stack_ids, &r->cap_samples, n + 1, sizeof(int64_t));
        /* They share cap_samples, which stays the smaller of the two. */
        shrink((void **)&r->label_off, &c, r->cap_samples, sizeof(size_t));
    }
    if (r->cap_values > nv)
        shrink((void **)&r->values, &r->cap_values, nv, sizeof(int64_t));
    if (r->cap_labels > nl)
        shrink((void **)&r->labels, &r->cap_labels, nl, sizeof(int64_t));
    return kf_adopt(&s->kf, id, r);
}

const store__set_reader *store__kf_get(store *s, int64_t id, int *rc)
{
    int64_t slot;
    if (store__idset_get(&s->kf.index, id, &slot))
        return &s->kf.entries[slot];
    store__set_reader r;
    memset(&r, 0, sizeof(r));
    *rc = store__set_load(&s->w, id, &r);
    if (*rc)
        return NULL;
    if (kf_adopt(&s->kf, id, &r) && store__idset_get(&s->kf.index, id, &slot))
        return &s->kf.entries[slot];
    store__set_free(&r);
    *rc = -ENOMEM; /* too big to cache: callers load it themselves */
    return NULL;
}

int store__set_load_w(store *s, int64_t id, store__set_reader *out)
{
    unsigned char *blob = NULL;
    size_t len = 0;
    int64_t base_id = 0;
    memset(out, 0, sizeof(*out));
    int rc = fetch_set(&s->w, id, &blob, &len, &base_id);
    if (!rc && !base_id) {
        rc = store__set_parse(blob, len, false, NULL, out);
    } else if (!rc) {
        const store__set_reader *base = store__kf_get(s, base_id, &rc);
        if (base)
            rc = store__set_parse(blob, len, true, base, out);
        else if (rc == -ENOMEM)
            rc = store__set_load(&s->w, id, out);
    }
    free(blob);
    return rc;
}
