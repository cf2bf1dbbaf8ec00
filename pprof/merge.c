/* merge.c — sample type selection, totals, scale, merge and diff, with go tool pprof's semantics.
 *
 * Merging re-keys everything by content, so profiles from different
 * processes combine: functions by (name, file), mappings by (file, build
 * id), locations by their normalized frames (function + line of every
 * inlined line; unsymbolized ones by mapping + offset), samples by their
 * merged location ids plus their labels. All keys go through hash maps, so
 * merging is linear in the total size of the inputs. As in pprof's Merge,
 * samples whose values are all zero are dropped, both on input and after
 * summing; headers combine as pprof's combineHeaders does (earliest time,
 * summed durations, largest period, deduplicated comments).
 *
 * Diff follows `go tool pprof -diff_base`: the base is scaled by -1, every
 * base sample gets the label pprof::base="true" and the result is
 * merge(cur, base). Base samples therefore stay separate samples (their
 * labels differ); totals and per-function views net out.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int pprof_sample_type_index(const pprof_profile *p, const char *name)
{
    if (p->n_sample_types == 0)
        return -ENOENT;
    if (!name) {
        if (p->default_sample_type > 0) {
            const char *def = pprof__str(p, p->default_sample_type);
            for (size_t i = 0; i < p->n_sample_types; i++)
                if (strcmp(pprof__str(p, p->sample_types[i].type), def) == 0)
                    return (int)i;
        }
        return (int)p->n_sample_types - 1;
    }
    for (size_t i = 0; i < p->n_sample_types; i++)
        if (strcmp(pprof__str(p, p->sample_types[i].type), name) == 0)
            return (int)i;
    return -ENOENT;
}

void pprof_totals(const pprof_profile *p, int64_t *totals)
{
    for (size_t t = 0; t < p->n_sample_types; t++)
        totals[t] = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        const pprof_sample *s = &p->samples[i];
        size_t n = s->n_values < p->n_sample_types ? s->n_values : p->n_sample_types;
        for (size_t t = 0; t < n; t++)
            totals[t] = pprof__add(totals[t], s->values[t]);
    }
}

/* math.Round, then a conversion that saturates instead of being undefined. */
static int64_t round_to_i64(double v)
{
    double r = round(v);
    if (isnan(r))
        return 0;
    if (r >= 9223372036854775807.0)
        return INT64_MAX;
    if (r <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)r;
}

static bool all_zero(const pprof_sample *s)
{
    for (size_t t = 0; t < s->n_values; t++)
        if (s->values[t])
            return false;
    return true;
}

/* Remove samples whose values are all zero, keeping the order. */
static void drop_zero_samples(pprof_profile *p)
{
    size_t k = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        if (!all_zero(&p->samples[i]))
            p->samples[k++] = p->samples[i];
    p->n_samples = k;
}

void pprof_scale(pprof_profile *p, double factor)
{
    if (factor == 1.0)
        return;
    for (size_t i = 0; i < p->n_samples; i++) {
        pprof_sample *s = &p->samples[i];
        for (size_t t = 0; t < s->n_values; t++)
            s->values[t] = round_to_i64((double)s->values[t] * factor);
    }
    drop_zero_samples(p);
}

/* ---- merge -------------------------------------------------------------------- */

typedef struct merger {
    pprof_profile *o;
    char *err;
    size_t err_len;
    pprof__hmap fn_map, mapping_map, loc_map, sample_map;
    /* Per input profile: input index -> output string index / id (0: not yet). */
    int64_t *smap;
    uint64_t *fmap, *mmap, *lmap;
    /* Scratch for one sample / location. */
    uint64_t *locs;
    size_t cap_locs;
    pprof_label *labels;
    size_t cap_labels;
    pprof_line *lines;
    size_t cap_lines;
    /* Diff base mode for the current input: negate values and label every
     * sample pprof::base="true" (output string indices below). */
    bool as_base;
    int64_t base_key, base_true;
    int64_t *neg; /* scratch: negated values */
} merger;

static int64_t map_str(merger *m, const pprof_profile *in, int64_t idx)
{
    if (idx <= 0 || (uint64_t)idx >= in->n_strings)
        return 0;
    if (m->smap[idx] < 0)
        m->smap[idx] = pprof_intern(m->o, pprof__str(in, idx));
    return m->smap[idx]; /* -ENOMEM stays negative and is checked by callers */
}

static uint64_t hash2(uint64_t tag, uint64_t a, uint64_t b)
{
    uint64_t h = pprof__hash_u64(PPROF__HASH_SEED, tag);
    h = pprof__hash_u64(h, a);
    return pprof__hash_final(pprof__hash_u64(h, b));
}

/* Output mapping id for input mapping index mi; 0 on ENOMEM. */
static uint64_t map_mapping(merger *m, const pprof_profile *in, size_t mi)
{
    if (m->mmap[mi])
        return m->mmap[mi];
    const pprof_mapping *src = &in->mappings[mi];
    pprof_profile *o = m->o;
    int64_t file = map_str(m, in, src->filename);
    int64_t build = map_str(m, in, src->build_id);
    if (file < 0 || build < 0)
        return 0;
    uint64_t h = hash2(1, (uint64_t)file, (uint64_t)build);
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&m->mapping_map, h, &pos, &v)) {
        if (o->mappings[v].filename == file && o->mappings[v].build_id == build)
            return m->mmap[mi] = o->mappings[v].id;
    }
    pprof_mapping nm = *src;
    nm.id = o->n_mappings + 1;
    nm.filename = file;
    nm.build_id = build;
    if (pprof__append_mapping(o, &nm) ||
        pprof__hmap_put(&m->mapping_map, h, (uint32_t)(o->n_mappings - 1)))
        return 0;
    return m->mmap[mi] = nm.id;
}

/* Output function id for input function index fi; 0 on ENOMEM. */
static uint64_t map_function(merger *m, const pprof_profile *in, size_t fi)
{
    if (m->fmap[fi])
        return m->fmap[fi];
    const pprof_function *src = &in->functions[fi];
    pprof_profile *o = m->o;
    int64_t name = map_str(m, in, src->name);
    int64_t file = map_str(m, in, src->filename);
    int64_t sys = map_str(m, in, src->system_name);
    if (name < 0 || file < 0 || sys < 0)
        return 0;
    uint64_t h = hash2(2, (uint64_t)name, (uint64_t)file);
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&m->fn_map, h, &pos, &v)) {
        if (o->functions[v].name == name && o->functions[v].filename == file)
            return m->fmap[fi] = o->functions[v].id;
    }
    pprof_function nf = {o->n_functions + 1, name, sys, file, src->start_line};
    if (pprof__append_function(o, &nf) ||
        pprof__hmap_put(&m->fn_map, h, (uint32_t)(o->n_functions - 1)))
        return 0;
    return m->fmap[fi] = nf.id;
}

/* Output location id for input location index li; 0 on ENOMEM. */
static uint64_t map_location(merger *m, const pprof_profile *in, size_t li)
{
    if (m->lmap[li])
        return m->lmap[li];
    const pprof_location *src = &in->locations[li];
    pprof_profile *o = m->o;
    uint64_t mapping = 0, address = src->address;
    ptrdiff_t mi = src->mapping_id ? pprof__find_mapping(in, src->mapping_id) : -1;
    if (mi >= 0 && !(mapping = map_mapping(m, in, (size_t)mi)))
        return 0;
    if (pprof__grow((void **)&m->lines, &m->cap_lines, src->n_lines, sizeof(pprof_line)))
        return 0;
    uint64_t h = pprof__hash_u64(PPROF__HASH_SEED, src->n_lines ? 3 : 4);
    if (src->n_lines) {
        for (size_t j = 0; j < src->n_lines; j++) {
            ptrdiff_t fi = pprof__find_function(in, src->lines[j].function_id);
            uint64_t fid = fi < 0 ? 0 : map_function(m, in, (size_t)fi);
            if (fi >= 0 && !fid)
                return 0;
            m->lines[j] = src->lines[j];
            m->lines[j].function_id = fid;
            h = pprof__hash_u64(h, fid);
            h = pprof__hash_u64(h, (uint64_t)src->lines[j].line);
        }
    } else if (mi >= 0) {
        /* Unsymbolized: the offset in the mapping identifies it. */
        const pprof_mapping *sm = &in->mappings[mi];
        const pprof_mapping *om = &o->mappings[mapping - 1];
        address = src->address - sm->memory_start + sm->file_offset - om->file_offset +
                  om->memory_start;
    }
    if (!src->n_lines) {
        h = pprof__hash_u64(h, mapping);
        h = pprof__hash_u64(h, address);
    }
    h = pprof__hash_final(h);
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&m->loc_map, h, &pos, &v)) {
        const pprof_location *ol = &o->locations[v];
        if (ol->n_lines != src->n_lines)
            continue;
        bool eq = true;
        if (src->n_lines) {
            for (size_t j = 0; eq && j < src->n_lines; j++)
                eq = ol->lines[j].function_id == m->lines[j].function_id &&
                     ol->lines[j].line == m->lines[j].line;
        } else {
            eq = ol->mapping_id == mapping && ol->address == address;
        }
        if (eq)
            return m->lmap[li] = ol->id;
    }
    uint64_t id = o->n_locations + 1;
    if (pprof__append_location(o, id, mapping, address, m->lines, src->n_lines, src->is_folded) ||
        pprof__hmap_put(&m->loc_map, h, (uint32_t)(o->n_locations - 1)))
        return 0;
    return m->lmap[li] = id;
}

static int label_cmp(const void *a, const void *b)
{
    const pprof_label *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->str != y->str)
        return x->str < y->str ? -1 : 1;
    if (x->num != y->num)
        return x->num < y->num ? -1 : 1;
    if (x->num_unit != y->num_unit)
        return x->num_unit < y->num_unit ? -1 : 1;
    return 0;
}

static int merge_sample(merger *m, const pprof_profile *in, const pprof_sample *s)
{
    pprof_profile *o = m->o;
    if (pprof__grow((void **)&m->locs, &m->cap_locs, s->n_locations, sizeof(uint64_t)) ||
        pprof__grow((void **)&m->labels, &m->cap_labels, s->n_labels + 1, sizeof(pprof_label)))
        return -ENOMEM;
    uint64_t h = PPROF__HASH_SEED;
    for (size_t j = 0; j < s->n_locations; j++) {
        ptrdiff_t li = pprof__find_location(in, s->location_ids[j]);
        if (li < 0) {
            lw_set_err(m->err, m->err_len, "sample: location id %llu does not exist",
                        (unsigned long long)s->location_ids[j]);
            return -EINVAL;
        }
        m->locs[j] = map_location(m, in, (size_t)li);
        if (!m->locs[j])
            return -ENOMEM;
        h = pprof__hash_u64(h, m->locs[j]);
    }
    size_t n_labels = 0;
    for (size_t j = 0; j < s->n_labels; j++) {
        const pprof_label *l = &s->labels[j];
        pprof_label ol = {map_str(m, in, l->key), map_str(m, in, l->str), l->num,
                          map_str(m, in, l->num_unit)};
        if (ol.key < 0 || ol.str < 0 || ol.num_unit < 0)
            return -ENOMEM;
        /* pprof's SetLabel replaces the string labels of that key. */
        if (m->as_base && ol.key == m->base_key && ol.str != 0)
            continue;
        m->labels[n_labels++] = ol;
    }
    const int64_t *values = s->values;
    if (m->as_base) {
        m->labels[n_labels++] = (pprof_label){m->base_key, m->base_true, 0, 0};
        /* Scale(-1): exact negation (wrapping, like Go, for INT64_MIN). */
        for (size_t t = 0; t < o->n_sample_types; t++)
            m->neg[t] = (int64_t)(0 - (uint64_t)s->values[t]);
        values = m->neg;
    }
    if (n_labels > 1)
        qsort(m->labels, n_labels, sizeof(pprof_label), label_cmp);
    h = pprof__hash_u64(h, 0xffffffffffffffffULL);
    for (size_t j = 0; j < n_labels; j++) {
        h = pprof__hash_u64(h, (uint64_t)m->labels[j].key);
        h = pprof__hash_u64(h, (uint64_t)m->labels[j].str);
        h = pprof__hash_u64(h, (uint64_t)m->labels[j].num);
        h = pprof__hash_u64(h, (uint64_t)m->labels[j].num_unit);
    }
    h = pprof__hash_final(h);
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&m->sample_map, h, &pos, &v)) {
        pprof_sample *os = &o->samples[v];
        if (os->n_locations != s->n_locations || os->n_labels != n_labels)
            continue;
        if (s->n_locations && memcmp(os->location_ids, m->locs, s->n_locations * sizeof(uint64_t)) != 0)
            continue;
        bool eq = true;
        for (size_t j = 0; eq && j < n_labels; j++)
            eq = label_cmp(&os->labels[j], &m->labels[j]) == 0;
        if (!eq)
            continue;
        for (size_t t = 0; t < o->n_sample_types; t++)
            os->values[t] = pprof__add(os->values[t], values[t]);
        return 0;
    }
    if (pprof__append_sample(o, m->locs, s->n_locations, values, o->n_sample_types, m->labels,
                             n_labels) ||
        pprof__hmap_put(&m->sample_map, h, (uint32_t)(o->n_samples - 1)))
        return -ENOMEM;
    return 0;
}

static int same_types(const pprof_profile *a, const pprof_profile *b)
{
    if (a->n_sample_types != b->n_sample_types)
        return 0;
    for (size_t t = 0; t < a->n_sample_types; t++)
        if (strcmp(pprof__str(a, a->sample_types[t].type), pprof__str(b, b->sample_types[t].type)) ||
            strcmp(pprof__str(a, a->sample_types[t].unit), pprof__str(b, b->sample_types[t].unit)))
            return 0;
    return 1;
}

static void describe_types(const pprof_profile *p, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t t = 0; t < p->n_sample_types && used + 1 < len; t++) {
        int n = snprintf(buf + used, len - used, "%s%s/%s", t ? " " : "",
                         pprof__str(p, p->sample_types[t].type), pprof__str(p, p->sample_types[t].unit));
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static int combine_headers(merger *m, const pprof_profile *const *ps, size_t n)
{
    pprof_profile *o = m->o;
    const pprof_profile *first = ps[0];
    for (size_t i = 1; i < n; i++) {
        if (!same_types(first, ps[i])) {
            char a[96], b[96];
            describe_types(first, a, sizeof(a));
            describe_types(ps[i], b, sizeof(b));
            lw_set_err(m->err, m->err_len, "sample types differ: profile 0 has [%s], profile %zu has [%s]",
                        a, i, b);
            return -EINVAL;
        }
    }
    for (size_t t = 0; t < first->n_sample_types; t++)
        if (pprof_add_sample_type(o, pprof__str(first, first->sample_types[t].type),
                                  pprof__str(first, first->sample_types[t].unit)))
            return -ENOMEM;
    int64_t time_nanos = 0, duration = 0, period = 0;
    const char *def = "";
    for (size_t i = 0; i < n; i++) {
        const pprof_profile *s = ps[i];
        if (time_nanos == 0 || s->time_nanos < time_nanos)
            time_nanos = s->time_nanos;
        duration = pprof__add(duration, s->duration_nanos);
        if (period == 0 || period < s->period)
            period = s->period;
        for (size_t c = 0; c < s->n_comments; c++) {
            const char *text = pprof__str(s, s->comments[c]);
            bool seen = false;
            for (size_t k = 0; !seen && k < o->n_comments; k++)
                seen = strcmp(pprof__str(o, o->comments[k]), text) == 0;
            if (!seen && pprof_add_comment(o, text))
                return -ENOMEM;
        }
        if (!def[0])
            def = pprof__str(s, s->default_sample_type);
    }
    o->time_nanos = time_nanos;
    o->duration_nanos = duration;
    if (pprof_set_period(o, pprof__str(first, first->period_type.type),
                         pprof__str(first, first->period_type.unit), period))
        return -ENOMEM;
    if (def[0] && pprof_set_default_sample_type(o, def))
        return -ENOMEM;
    int64_t drop = pprof_intern(o, pprof__str(first, first->drop_frames));
    int64_t keep = pprof_intern(o, pprof__str(first, first->keep_frames));
    if (drop < 0 || keep < 0)
        return -ENOMEM;
    o->drop_frames = drop;
    o->keep_frames = keep;
    return 0;
}

static void merger_free_scratch(merger *m)
{
    free(m->smap);
    free(m->fmap);
    free(m->mmap);
    free(m->lmap);
    m->smap = NULL;
    m->fmap = m->mmap = m->lmap = NULL;
}

static int merge_one(merger *m, const pprof_profile *in, bool as_base)
{
    m->as_base = as_base;
    m->smap = malloc((in->n_strings ? in->n_strings : 1) * sizeof(int64_t));
    m->fmap = calloc(in->n_functions ? in->n_functions : 1, sizeof(uint64_t));
    m->mmap = calloc(in->n_mappings ? in->n_mappings : 1, sizeof(uint64_t));
    m->lmap = calloc(in->n_locations ? in->n_locations : 1, sizeof(uint64_t));
    int rc = 0;
    if (!m->smap || !m->fmap || !m->mmap || !m->lmap) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < in->n_strings; i++)
        m->smap[i] = -1;
    /* pprof keeps the first source's first mapping (the main binary) first. */
    if (m->o->n_mappings == 0 && in->n_mappings > 0 && !map_mapping(m, in, 0)) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < in->n_samples && rc == 0; i++) {
        const pprof_sample *s = &in->samples[i];
        if (s->n_values != m->o->n_sample_types) {
            lw_set_err(m->err, m->err_len, "sample %zu: has %zu values, but the profile has %zu sample types",
                        i, s->n_values, m->o->n_sample_types);
            rc = -EINVAL;
        } else if (!all_zero(s)) {
            rc = merge_sample(m, in, s);
        }
    }
out:
    merger_free_scratch(m);
    return rc;
}

/* Merge profiles[0..n); with base_last, the last one is a diff base. */
static int merge_impl(const pprof_profile *const *profiles, size_t n, bool base_last,
                      pprof_profile **out, char *err, size_t err_len)
{
    merger m;
    memset(&m, 0, sizeof(m));
    m.err = err;
    m.err_len = err_len;
    *out = NULL;
    int rc = 0;
    if (n == 0) {
        lw_set_err(err, err_len, "no profiles to merge");
        return -EINVAL;
    }
    m.o = pprof_new();
    if (!m.o) {
        rc = -ENOMEM;
        goto out;
    }
    rc = combine_headers(&m, profiles, n);
    if (rc == 0 && base_last) {
        m.base_key = pprof_intern(m.o, "pprof::base");
        m.base_true = m.base_key < 0 ? m.base_key : pprof_intern(m.o, "true");
        m.neg = calloc(m.o->n_sample_types + 1, sizeof(int64_t));
        if (m.base_true < 0 || !m.neg)
            rc = -ENOMEM;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = merge_one(&m, profiles[i], base_last && i == n - 1);
    if (rc == 0)
        drop_zero_samples(m.o);
out:
    if (rc == -ENOMEM)
        lw_set_err(err, err_len, "out of memory");
    pprof__hmap_free(&m.fn_map);
    pprof__hmap_free(&m.mapping_map);
    pprof__hmap_free(&m.loc_map);
    pprof__hmap_free(&m.sample_map);
    free(m.locs);
    free(m.labels);
    free(m.lines);
    free(m.neg);
    if (rc)
        pprof_free(m.o);
    else
        *out = m.o;
    return rc;
}

int pprof_merge(const pprof_profile *const *profiles, size_t n, pprof_profile **out, char *err,
                size_t err_len)
{
    return merge_impl(profiles, n, false, out, err, err_len);
}

int pprof_diff(const pprof_profile *base, const pprof_profile *cur, pprof_profile **out,
               char *err, size_t err_len)
{
    /* Equivalent to SetLabel(pprof::base=true) + Scale(-1) on a copy of the
     * base and Merge(cur, base), without the copy. */
    const pprof_profile *both[2] = {cur, base};
    return merge_impl(both, 2, true, out, err, err_len);
}
