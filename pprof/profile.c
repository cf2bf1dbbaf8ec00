/* profile.c — profile lifecycle, arena, hash tables, interning and the builder API.
 *
 * See internal.h for the memory layout. Hash maps use open addressing with
 * linear probing at a load factor of at most 1/2; they grow by doubling, so
 * every insert and lookup is amortised O(1) and nothing in pprof/ is
 * quadratic in the size of a profile.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- arena ------------------------------------------------------------------ */

struct pprof__block {
    pprof__block *next;
    size_t used; /* bytes handed out from data */
    size_t size; /* bytes in data */
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK_BYTES ((size_t)64 << 10)

void *pprof__arena_alloc(pprof__arena *a, size_t n, bool zero)
{
    n = (n + 7) & ~(size_t)7;
    if (n == 0)
        n = 8;
    pprof__block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = ARENA_BLOCK_BYTES;
        /* Grow block size with the arena so big profiles use few blocks. */
        if (a->total_bytes / 4 > size)
            size = a->total_bytes / 4;
        if (n > size / 4) {
            /* A big request gets a block of its own, behind the current one,
             * so the current block's free space is not wasted. */
            if (n > SIZE_MAX - sizeof(pprof__block))
                return NULL;
            pprof__block *big = malloc(sizeof(pprof__block) + n);
            if (!big)
                return NULL;
            big->size = n;
            big->used = n;
            a->total_bytes += n;
            if (b) {
                big->next = b->next;
                b->next = big;
            } else {
                big->next = NULL;
                a->head = big;
            }
            if (zero)
                memset(big->data, 0, n);
            return big->data;
        }
        b = malloc(sizeof(pprof__block) + size);
        if (!b)
            return NULL;
        b->size = size;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->total_bytes += size;
    }
    void *r = b->data + b->used;
    b->used += n;
    if (zero)
        memset(r, 0, n);
    return r;
}

void pprof__arena_free(pprof__arena *a)
{
    pprof__block *b = a->head;
    while (b) {
        pprof__block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total_bytes = 0;
}

/* ---- hashing ------------------------------------------------------------------ */

/* FNV-1a over bytes, a multiply-xorshift step per 64-bit word, finished
 * with a splitmix64 mix; stable across processes and platforms (stack hashes
 * are persisted by storage: changing any of these changes them). */
uint64_t pprof__hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *s = data;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t h)
{
    return pprof__hash_final(h + 0x9e3779b97f4a7c15ULL);
}

/* ---- id map ----------------------------------------------------------------- */

int pprof__idmap_reserve(pprof__idmap *m, size_t n)
{
    if (n * 2 <= m->cap)
        return 0;
    size_t cap = m->cap ? m->cap : 16;
    while (cap < n * 2)
        cap *= 2;
    if (cap > UINT32_MAX)
        return -ENOMEM;
    uint64_t *keys = calloc(cap, sizeof(*keys));
    uint32_t *vals = malloc(cap * sizeof(*vals));
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = mix64(m->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

int pprof__idmap_put(pprof__idmap *m, uint64_t key, uint32_t val, uint32_t *existing)
{
    int rc = pprof__idmap_reserve(m, m->n + 1);
    if (rc)
        return rc;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == key) {
            if (existing)
                *existing = m->vals[j];
            return -EEXIST;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->vals[j] = val;
    m->n++;
    return 0;
}

bool pprof__idmap_get(const pprof__idmap *m, uint64_t key, uint32_t *val)
{
    if (!m->cap || !key)
        return false;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == key) {
            *val = m->vals[j];
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

void pprof__idmap_free(pprof__idmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ---- hash map ------------------------------------------------------------- */

int pprof__hmap_reserve(pprof__hmap *m, size_t n)
{
    if (n * 2 <= m->cap)
        return 0;
    size_t cap = m->cap ? m->cap : 16;
    while (cap < n * 2)
        cap *= 2;
    if (cap > UINT32_MAX)
        return -ENOMEM;
    uint64_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        uint64_t e = m->slots[i];
        if (!e)
            continue;
        /* The slot keeps the hash's upper half; probing starts from the
         * lower bits of that half, so rehashing needs only the slot. */
        size_t j = (size_t)(e >> 32) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = e;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int pprof__hmap_put(pprof__hmap *m, uint64_t h, uint32_t val)
{
    if (val == UINT32_MAX)
        return -ENOMEM;
    int rc = pprof__hmap_reserve(m, m->n + 1);
    if (rc)
        return rc;
    uint64_t hi = h >> 32;
    size_t j = (size_t)hi & (m->cap - 1);
    while (m->slots[j])
        j = (j + 1) & (m->cap - 1);
    m->slots[j] = hi << 32 | ((uint64_t)val + 1);
    m->n++;
    return 0;
}

bool pprof__hmap_next(const pprof__hmap *m, uint64_t h, size_t *pos, uint32_t *val)
{
    if (!m->cap)
        return false;
    uint64_t hi = h >> 32;
    size_t j = *pos == SIZE_MAX ? ((size_t)hi & (m->cap - 1)) : ((*pos + 1) & (m->cap - 1));
    uint64_t e;
    while ((e = m->slots[j]) != 0) {
        if (e >> 32 == hi) {
            *pos = j;
            *val = (uint32_t)(e & 0xffffffffu) - 1;
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

void pprof__hmap_free(pprof__hmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* ---- small helpers ---------------------------------------------------------- */

int pprof__grow(void **vec, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return -ENOMEM;
        n *= 2;
    }
    void *v = realloc(*vec, n * elem);
    if (!v)
        return -ENOMEM;
    *vec = v;
    *cap = n;
    return 0;
}

#define GROW(p, field, need)                                                                    \
    pprof__grow((void **)&(p)->field, &(p)->internal->cap_##field, (need), sizeof(*(p)->field))

char *pprof__arena_strdup(pprof_profile *p, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *d = pprof__arena_alloc(&p->internal->arena, len + 1, false);
    if (!d)
        return NULL;
    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

const char *pprof__str(const pprof_profile *p, int64_t i)
{
    if (i < 0 || (uint64_t)i >= p->n_strings || !p->strings[i])
        return "";
    return p->strings[i];
}

int64_t pprof__append_string(pprof_profile *p, const char *s, size_t len)
{
    if (GROW(p, strings, p->n_strings + 1))
        return -ENOMEM;
    char *d = pprof__arena_strdup(p, s, len);
    if (!d)
        return -ENOMEM;
    p->strings[p->n_strings] = d;
    return (int64_t)p->n_strings++;
}

/* ---- lifecycle ------------------------------------------------------------- */

pprof_profile *pprof_new(void)
{
    pprof_profile *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->internal = calloc(1, sizeof(*p->internal));
    if (!p->internal || pprof__append_string(p, "", 0) < 0) {
        pprof_free(p);
        return NULL;
    }
    return p;
}

void pprof_free(pprof_profile *p)
{
    if (!p)
        return;
    struct pprof_internal *in = p->internal;
    if (in) {
        pprof__arena_free(&in->arena);
        pprof__idmap_free(&in->mapping_ids);
        pprof__idmap_free(&in->location_ids);
        pprof__idmap_free(&in->function_ids);
        pprof__hmap_free(&in->strings);
        pprof__hmap_free(&in->fn_dedup);
        pprof__hmap_free(&in->loc_dedup);
        free(in);
    }
    free(p->sample_types);
    free(p->samples);
    free(p->mappings);
    free(p->locations);
    free(p->functions);
    free(p->strings);
    free(p->comments);
    free(p);
}

/* ---- id tables ---------------------------------------------------------------- */

static int sync_table(pprof__idmap *m, size_t *n_indexed, uint64_t *max_id, const void *arr,
                      size_t n, size_t elem)
{
    int rc = pprof__idmap_reserve(m, n);
    if (rc)
        return rc;
    for (size_t i = *n_indexed; i < n; i++) {
        /* Every id struct starts with its uint64_t id. */
        uint64_t id;
        memcpy(&id, (const char *)arr + i * elem, sizeof(id));
        if (id == 0)
            return -EINVAL;
        rc = pprof__idmap_put(m, id, (uint32_t)i, NULL);
        if (rc)
            return rc;
        if (id > *max_id)
            *max_id = id;
        *n_indexed = i + 1;
    }
    return 0;
}

int pprof__sync_ids(pprof_profile *p)
{
    struct pprof_internal *in = p->internal;
    int rc = sync_table(&in->mapping_ids, &in->n_mappings_indexed, &in->max_mapping_id,
                        p->mappings, p->n_mappings, sizeof(*p->mappings));
    if (rc == 0)
        rc = sync_table(&in->function_ids, &in->n_functions_indexed, &in->max_function_id,
                        p->functions, p->n_functions, sizeof(*p->functions));
    if (rc == 0)
        rc = sync_table(&in->location_ids, &in->n_locations_indexed, &in->max_location_id,
                        p->locations, p->n_locations, sizeof(*p->locations));
    return rc;
}

static ptrdiff_t find_id(const pprof__idmap *m, size_t n_indexed, const void *arr, size_t n,
                         size_t elem, uint64_t id)
{
    if (id == 0)
        return -1;
    uint64_t got;
    /* Ids are usually 1..n in order: try that first. */
    if (id <= n) {
        memcpy(&got, (const char *)arr + (id - 1) * elem, sizeof(got));
        if (got == id)
            return (ptrdiff_t)(id - 1);
    }
    uint32_t v;
    if (n_indexed == n && m->cap)
        return pprof__idmap_get(m, id, &v) ? (ptrdiff_t)v : -1;
    for (size_t i = 0; i < n; i++) {
        memcpy(&got, (const char *)arr + i * elem, sizeof(got));
        if (got == id)
            return (ptrdiff_t)i;
    }
    return -1;
}

ptrdiff_t pprof__find_location(const pprof_profile *p, uint64_t id)
{
    return find_id(&p->internal->location_ids, p->internal->n_locations_indexed, p->locations,
                   p->n_locations, sizeof(*p->locations), id);
}

ptrdiff_t pprof__find_function(const pprof_profile *p, uint64_t id)
{
    return find_id(&p->internal->function_ids, p->internal->n_functions_indexed, p->functions,
                   p->n_functions, sizeof(*p->functions), id);
}

ptrdiff_t pprof__find_mapping(const pprof_profile *p, uint64_t id)
{
    return find_id(&p->internal->mapping_ids, p->internal->n_mappings_indexed, p->mappings,
                   p->n_mappings, sizeof(*p->mappings), id);
}

/* ---- appends (no dedup) -------------------------------------------------------- */

int pprof__append_location(pprof_profile *p, uint64_t id, uint64_t mapping_id, uint64_t address,
                           const pprof_line *lines, size_t n_lines, bool is_folded)
{
    if (GROW(p, locations, p->n_locations + 1))
        return -ENOMEM;
    pprof_location *l = &p->locations[p->n_locations];
    memset(l, 0, sizeof(*l));
    if (n_lines) {
        if (n_lines > SIZE_MAX / sizeof(*lines))
            return -ENOMEM;
        l->lines = pprof__arena_alloc(&p->internal->arena, n_lines * sizeof(*lines), false);
        if (!l->lines)
            return -ENOMEM;
        memcpy(l->lines, lines, n_lines * sizeof(*lines));
    }
    l->id = id;
    l->mapping_id = mapping_id;
    l->address = address;
    l->n_lines = n_lines;
    l->is_folded = is_folded;
    p->n_locations++;
    return 0;
}

int pprof__append_function(pprof_profile *p, const pprof_function *f)
{
    if (GROW(p, functions, p->n_functions + 1))
        return -ENOMEM;
    p->functions[p->n_functions++] = *f;
    return 0;
}

int pprof__append_mapping(pprof_profile *p, const pprof_mapping *m)
{
    if (GROW(p, mappings, p->n_mappings + 1))
        return -ENOMEM;
    p->mappings[p->n_mappings++] = *m;
    return 0;
}

int pprof__append_sample(pprof_profile *p, const uint64_t *location_ids, size_t n_locations,
                         const int64_t *values, size_t n_values, const pprof_label *labels,
                         size_t n_labels)
{
    pprof__arena *a = &p->internal->arena;
    if (GROW(p, samples, p->n_samples + 1))
        return -ENOMEM;
    if (n_locations > SIZE_MAX / 8 || n_labels > SIZE_MAX / sizeof(*labels))
        return -ENOMEM;
    pprof_sample *s = &p->samples[p->n_samples];
    memset(s, 0, sizeof(*s));
    if (n_locations) {
        s->location_ids = pprof__arena_alloc(a, n_locations * sizeof(uint64_t), false);
        if (!s->location_ids)
            return -ENOMEM;
        memcpy(s->location_ids, location_ids, n_locations * sizeof(uint64_t));
    }
    if (n_values) {
        if (n_values > SIZE_MAX / 8)
            return -ENOMEM;
        s->values = pprof__arena_alloc(a, n_values * sizeof(int64_t), false);
        if (!s->values)
            return -ENOMEM;
        memcpy(s->values, values, n_values * sizeof(int64_t));
    }
    if (n_labels) {
        s->labels = pprof__arena_alloc(a, n_labels * sizeof(*labels), false);
        if (!s->labels)
            return -ENOMEM;
        memcpy(s->labels, labels, n_labels * sizeof(*labels));
    }
    s->n_locations = n_locations;
    s->n_values = n_values;
    s->n_labels = n_labels;
    p->n_samples++;
    return 0;
}

/* ---- interning ---------------------------------------------------------------- */

static uint64_t str_hash(const char *s, size_t len)
{
    return pprof__hash_final(pprof__hash_bytes(PPROF__HASH_SEED, s, len));
}

int64_t pprof_intern(pprof_profile *p, const char *s)
{
    struct pprof_internal *in = p->internal;
    if (!s)
        s = "";
    if (pprof__hmap_reserve(&in->strings, p->n_strings + 1))
        return -ENOMEM;
    /* Index strings appended since the last call (decoded ones included);
     * the first of equal strings wins. */
    for (; in->n_strings_indexed < p->n_strings; in->n_strings_indexed++) {
        size_t i = in->n_strings_indexed;
        const char *t = p->strings[i] ? p->strings[i] : "";
        uint64_t h = str_hash(t, strlen(t));
        size_t pos = SIZE_MAX;
        uint32_t v;
        bool dup = false;
        while (!dup && pprof__hmap_next(&in->strings, h, &pos, &v))
            dup = strcmp(pprof__str(p, v), t) == 0;
        if (!dup && pprof__hmap_put(&in->strings, h, (uint32_t)i))
            return -ENOMEM;
    }
    size_t len = strlen(s);
    uint64_t h = str_hash(s, len);
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&in->strings, h, &pos, &v))
        if (strcmp(pprof__str(p, v), s) == 0)
            return v;
    int64_t idx = pprof__append_string(p, s, len);
    if (idx < 0)
        return idx;
    if (pprof__hmap_put(&in->strings, h, (uint32_t)idx)) {
        /* Keep the table consistent: forget the unindexed string. */
        p->n_strings--;
        return -ENOMEM;
    }
    in->n_strings_indexed = p->n_strings;
    return idx;
}

/* ---- builder -------------------------------------------------------------------- */

int pprof_add_sample_type(pprof_profile *p, const char *type, const char *unit)
{
    if (p->n_samples)
        return -EINVAL;
    int64_t t = pprof_intern(p, type);
    int64_t u = t < 0 ? t : pprof_intern(p, unit);
    if (u < 0)
        return -ENOMEM;
    if (GROW(p, sample_types, p->n_sample_types + 1))
        return -ENOMEM;
    p->sample_types[p->n_sample_types].type = t;
    p->sample_types[p->n_sample_types].unit = u;
    p->n_sample_types++;
    return 0;
}

int pprof_set_period(pprof_profile *p, const char *type, const char *unit, int64_t period)
{
    int64_t t = pprof_intern(p, type);
    int64_t u = t < 0 ? t : pprof_intern(p, unit);
    if (u < 0)
        return -ENOMEM;
    p->period_type.type = t;
    p->period_type.unit = u;
    p->period = period;
    return 0;
}

int pprof_set_default_sample_type(pprof_profile *p, const char *type)
{
    int64_t t = pprof_intern(p, type);
    if (t < 0)
        return -ENOMEM;
    p->default_sample_type = t;
    return 0;
}

int pprof_add_comment(pprof_profile *p, const char *comment)
{
    int64_t c = pprof_intern(p, comment);
    if (c < 0)
        return -ENOMEM;
    if (GROW(p, comments, p->n_comments + 1))
        return -ENOMEM;
    p->comments[p->n_comments++] = c;
    return 0;
}

uint64_t pprof_add_mapping(pprof_profile *p, const pprof_mapping *m)
{
    if (pprof__sync_ids(p))
        return 0;
    struct pprof_internal *in = p->internal;
    pprof_mapping copy = *m;
    copy.id = in->max_mapping_id + 1;
    if (pprof__append_mapping(p, &copy) || pprof__sync_ids(p))
        return 0;
    return copy.id;
}

static uint64_t function_hash(const pprof_function *f)
{
    uint64_t h = PPROF__HASH_SEED;
    h = pprof__hash_u64(h, (uint64_t)f->name);
    h = pprof__hash_u64(h, (uint64_t)f->system_name);
    h = pprof__hash_u64(h, (uint64_t)f->filename);
    h = pprof__hash_u64(h, (uint64_t)f->start_line);
    return pprof__hash_final(h);
}

uint64_t pprof_add_function(pprof_profile *p, const char *name, const char *system_name,
                            const char *filename, int64_t start_line)
{
    struct pprof_internal *in = p->internal;
    pprof_function f = {0};
    f.name = pprof_intern(p, name);
    f.system_name = f.name < 0 ? f.name : pprof_intern(p, system_name);
    f.filename = f.system_name < 0 ? f.system_name : pprof_intern(p, filename);
    f.start_line = start_line;
    if (f.filename < 0 || pprof__sync_ids(p))
        return 0;
    if (pprof__hmap_reserve(&in->fn_dedup, p->n_functions + 1))
        return 0;
    for (; in->n_fn_dedup < p->n_functions; in->n_fn_dedup++)
        if (pprof__hmap_put(&in->fn_dedup, function_hash(&p->functions[in->n_fn_dedup]),
                            (uint32_t)in->n_fn_dedup))
            return 0;
    uint64_t h = function_hash(&f);
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&in->fn_dedup, h, &pos, &v)) {
        const pprof_function *g = &p->functions[v];
        if (g->name == f.name && g->system_name == f.system_name && g->filename == f.filename &&
            g->start_line == f.start_line)
            return g->id;
    }
    f.id = in->max_function_id + 1;
    if (pprof__append_function(p, &f) || pprof__sync_ids(p))
        return 0;
    if (pprof__hmap_put(&in->fn_dedup, h, (uint32_t)(p->n_functions - 1))) {
        /* The id table already knows it; leave the dedup table behind so it
         * re-indexes the tail next time. */
        return f.id;
    }
    in->n_fn_dedup = p->n_functions;
    return f.id;
}

static uint64_t location_hash(uint64_t mapping_id, uint64_t address, const pprof_line *lines,
                              size_t n_lines)
{
    uint64_t h = PPROF__HASH_SEED;
    h = pprof__hash_u64(h, mapping_id);
    h = pprof__hash_u64(h, address);
    for (size_t i = 0; i < n_lines; i++) {
        h = pprof__hash_u64(h, lines[i].function_id);
        h = pprof__hash_u64(h, (uint64_t)lines[i].line);
        h = pprof__hash_u64(h, (uint64_t)lines[i].column);
    }
    return pprof__hash_final(h);
}

static bool location_equal(const pprof_location *l, uint64_t mapping_id, uint64_t address,
                           const pprof_line *lines, size_t n_lines)
{
    if (l->mapping_id != mapping_id || l->address != address || l->n_lines != n_lines)
        return false;
    for (size_t i = 0; i < n_lines; i++)
        if (l->lines[i].function_id != lines[i].function_id || l->lines[i].line != lines[i].line ||
            l->lines[i].column != lines[i].column)
            return false;
    return true;
}

uint64_t pprof_add_location(pprof_profile *p, uint64_t mapping_id, uint64_t address,
                            const pprof_line *lines, size_t n_lines)
{
    struct pprof_internal *in = p->internal;
    if (pprof__sync_ids(p))
        return 0;
    if (mapping_id && pprof__find_mapping(p, mapping_id) < 0)
        return 0;
    for (size_t i = 0; i < n_lines; i++)
        if (pprof__find_function(p, lines[i].function_id) < 0)
            return 0;
    if (pprof__hmap_reserve(&in->loc_dedup, p->n_locations + 1))
        return 0;
    for (; in->n_loc_dedup < p->n_locations; in->n_loc_dedup++) {
        const pprof_location *l = &p->locations[in->n_loc_dedup];
        if (pprof__hmap_put(&in->loc_dedup,
                            location_hash(l->mapping_id, l->address, l->lines, l->n_lines),
                            (uint32_t)in->n_loc_dedup))
            return 0;
    }
    uint64_t h = location_hash(mapping_id, address, lines, n_lines);
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&in->loc_dedup, h, &pos, &v))
        if (location_equal(&p->locations[v], mapping_id, address, lines, n_lines))
            return p->locations[v].id;
    uint64_t id = in->max_location_id + 1;
    if (pprof__append_location(p, id, mapping_id, address, lines, n_lines, false) ||
        pprof__sync_ids(p))
        return 0;
    if (pprof__hmap_put(&in->loc_dedup, h, (uint32_t)(p->n_locations - 1)) == 0)
        in->n_loc_dedup = p->n_locations;
    return id;
}

int pprof_add_sample(pprof_profile *p, const uint64_t *location_ids, size_t n_locations,
                     const int64_t *values, const pprof_label *labels, size_t n_labels)
{
    int rc = pprof__sync_ids(p);
    if (rc)
        return rc == -ENOMEM ? rc : -EINVAL;
    for (size_t i = 0; i < n_locations; i++)
        if (pprof__find_location(p, location_ids[i]) < 0)
            return -EINVAL;
    return pprof__append_sample(p, location_ids, n_locations, values, p->n_sample_types, labels,
                                n_labels);
}

/* ---- copy ------------------------------------------------------------------------ */

pprof_profile *pprof_copy(const pprof_profile *src)
{
    pprof_profile *p = pprof_new();
    if (!p)
        return NULL;
    p->n_strings = 0;
    for (size_t i = 0; i < src->n_strings; i++) {
        const char *s = pprof__str(src, (int64_t)i);
        if (pprof__append_string(p, s, strlen(s)) < 0)
            goto fail;
    }
    if (src->n_sample_types) {
        if (GROW(p, sample_types, src->n_sample_types))
            goto fail;
        memcpy(p->sample_types, src->sample_types, src->n_sample_types * sizeof(*p->sample_types));
        p->n_sample_types = src->n_sample_types;
    }
    if (src->n_comments) {
        if (GROW(p, comments, src->n_comments))
            goto fail;
        memcpy(p->comments, src->comments, src->n_comments * sizeof(*p->comments));
        p->n_comments = src->n_comments;
    }
    for (size_t i = 0; i < src->n_mappings; i++)
        if (pprof__append_mapping(p, &src->mappings[i]))
            goto fail;
    for (size_t i = 0; i < src->n_functions; i++)
        if (pprof__append_function(p, &src->functions[i]))
            goto fail;
    if (src->n_locations && GROW(p, locations, src->n_locations))
        goto fail;
    for (size_t i = 0; i < src->n_locations; i++) {
        const pprof_location *l = &src->locations[i];
        if (pprof__append_location(p, l->id, l->mapping_id, l->address, l->lines, l->n_lines,
                                   l->is_folded))
            goto fail;
    }
    if (src->n_samples && GROW(p, samples, src->n_samples))
        goto fail;
    for (size_t i = 0; i < src->n_samples; i++) {
        const pprof_sample *s = &src->samples[i];
        if (pprof__append_sample(p, s->location_ids, s->n_locations, s->values, s->n_values,
                                 s->labels, s->n_labels))
            goto fail;
    }
    p->drop_frames = src->drop_frames;
    p->keep_frames = src->keep_frames;
    p->time_nanos = src->time_nanos;
    p->duration_nanos = src->duration_nanos;
    p->period_type = src->period_type;
    p->period = src->period;
    p->default_sample_type = src->default_sample_type;
    /* Index ids when they are valid; an invalid source stays copyable. */
    (void)pprof__sync_ids(p);
    return p;
fail:
    pprof_free(p);
    return NULL;
}
