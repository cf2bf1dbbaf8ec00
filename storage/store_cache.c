/* store_cache.c — bounded content→id caches and int64 hash sets for the store.
 *
 * Both are open-addressing tables with linear probing and power-of-two
 * sizes, kept at most half full. The content cache copies each key into one
 * arena so an exact comparison (not just the hash) decides a hit; when it
 * outgrows its entry or byte budget it is cleared rather than evicted
 * piecemeal — a miss only costs one indexed SQLite lookup.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void store__cache_init(store__cache *c, size_t max_entries, size_t max_arena_bytes)
{
    memset(c, 0, sizeof(*c));
    c->max_entries = max_entries;
    c->max_arena_bytes = max_arena_bytes;
}

void store__cache_clear(store__cache *c)
{
    free(c->slots);
    free(c->arena);
    c->slots = NULL;
    c->arena = NULL;
    c->n_slots = c->n_used = 0;
    c->arena_len = c->arena_cap = 0;
}

void store__cache_free(store__cache *c)
{
    store__cache_clear(c);
}

void store__caches_clear(store *s)
{
    store__memos_clear(s);
    store__kf_clear(&s->kf);
    store__cache_clear(&s->strings);
    store__cache_clear(&s->functions);
    store__cache_clear(&s->stacks);
    store__stackmap_free(&s->stack_map);
    s->stack_map_loaded = false;
    s->stacks_indexed = false;
    s->last_stack_id = 0;
    store__cache_clear(&s->locations);
    store__cache_clear(&s->functions_by_text);
}

int64_t store__cache_get(const store__cache *c, uint64_t hash, const void *key, size_t len)
{
    if (!c->n_slots)
        return 0;
    size_t mask = c->n_slots - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        const store__cache_entry *e = &c->slots[i];
        if (!e->id)
            return 0;
        if (e->hash == hash && e->len == len &&
            (len == 0 || memcmp(c->arena + e->off, key, len) == 0))
            return e->id;
    }
}

void store__cache_prefetch(const store__cache *c, uint64_t hash)
{
    if (c->n_slots)
        __builtin_prefetch(&c->slots[(size_t)hash & (c->n_slots - 1)]);
}

static int cache_grow(store__cache *c)
{
    size_t n = c->n_slots ? c->n_slots * 2 : 1024;
    store__cache_entry *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t j = 0; j < c->n_slots; j++) {
        store__cache_entry *e = &c->slots[j];
        if (!e->id)
            continue;
        size_t i = (size_t)e->hash & (n - 1);
        while (slots[i].id)
            i = (i + 1) & (n - 1);
        slots[i] = *e;
    }
    free(c->slots);
    c->slots = slots;
    c->n_slots = n;
    return 0;
}

void store__cache_put(store__cache *c, uint64_t hash, const void *key, size_t len, int64_t id)
{
    if (id <= 0 || len > UINT32_MAX)
        return;
    if (c->n_used + 1 > c->max_entries || c->arena_len + len > c->max_arena_bytes)
        store__cache_clear(c);
    if ((c->n_used + 1) * 2 > c->n_slots && cache_grow(c) != 0)
        return;
    if (c->arena_len + len > c->arena_cap) {
        size_t cap = c->arena_cap ? c->arena_cap : 4096;
        while (cap < c->arena_len + len)
            cap *= 2;
        char *a = realloc(c->arena, cap);
        if (!a)
            return;
        c->arena = a;
        c->arena_cap = cap;
    }
    if (len) /* an empty key (e.g. an unnamed function) may meet an unallocated arena */
        memcpy(c->arena + c->arena_len, key, len);
    size_t mask = c->n_slots - 1;
    size_t i = (size_t)hash & mask;
    while (c->slots[i].id)
        i = (i + 1) & mask;
    c->slots[i] = (store__cache_entry){.hash = hash, .id = id, .len = (uint32_t)len,
                                       .off = c->arena_len};
    c->arena_len += len;
    c->n_used++;
}

/* ---- stack map ------------------------------------------------------------- */

void store__stackmap_free(store__stackmap *m)
{
    free(m->hashes);
    free(m->ids);
    memset(m, 0, sizeof(*m));
}

static void stackmap_insert(uint64_t *hashes, int64_t *ids, size_t mask, uint64_t hash, int64_t id)
{
    size_t i = (size_t)hash & mask; /* hashes are well mixed already */
    while (ids[i])
        i = (i + 1) & mask;
    hashes[i] = hash;
    ids[i] = id;
}

/* Rehash into the smallest power of two of slots (at least 1024) that
 * keeps `want` entries at most half full. */
static int stackmap_resize(store__stackmap *m, size_t want)
{
    size_t n = m->n_slots ? m->n_slots : 1024;
    while (want * 2 > n)
        n *= 2;
    if (n == m->n_slots)
        return 0;
    uint64_t *hashes = malloc(n * sizeof(*hashes));
    int64_t *ids = calloc(n, sizeof(*ids));
    if (!hashes || !ids) {
        free(hashes);
        free(ids);
        return -ENOMEM;
    }
    for (size_t j = 0; j < m->n_slots; j++)
        if (m->ids[j])
            stackmap_insert(hashes, ids, n - 1, m->hashes[j], m->ids[j]);
    free(m->hashes);
    free(m->ids);
    m->hashes = hashes;
    m->ids = ids;
    m->n_slots = n;
    return 0;
}

int store__stackmap_reserve(store__stackmap *m, size_t n)
{
    return n * 2 > m->n_slots ? stackmap_resize(m, n) : 0;
}

int store__stackmap_add(store__stackmap *m, uint64_t hash, int64_t id)
{
    if (id <= 0)
        return -EINVAL;
    if ((m->n_used + 1) * 2 > m->n_slots) {
        int rc = stackmap_resize(m, m->n_used + 1);
        if (rc)
            return rc;
    }
    stackmap_insert(m->hashes, m->ids, m->n_slots - 1, hash, id);
    m->n_used++;
    return 0;
}

void store__stackmap_prefetch(const store__stackmap *m, uint64_t hash)
{
    if (m->n_slots) {
        size_t i = (size_t)hash & (m->n_slots - 1);
        __builtin_prefetch(&m->hashes[i]);
        __builtin_prefetch(&m->ids[i]);
    }
}

int64_t store__stackmap_next(const store__stackmap *m, uint64_t hash, size_t *pos)
{
    if (!m->n_slots)
        return 0;
    size_t mask = m->n_slots - 1;
    /* *pos counts the probes made so far from the hash's home slot. */
    for (size_t i = ((size_t)hash + *pos) & mask; m->ids[i]; i = (i + 1) & mask) {
        (*pos)++;
        if (m->hashes[i] == hash)
            return m->ids[i];
    }
    return 0;
}

/* ---- int64 sets ------------------------------------------------------------ */

static size_t idhash(int64_t key, size_t mask)
{
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 17) & mask;
}

void store__idset_init(store__idset *set)
{
    memset(set, 0, sizeof(*set));
}

void store__idset_free(store__idset *set)
{
    free(set->keys);
    free(set->values);
    memset(set, 0, sizeof(*set));
}

void store__idset_clear(store__idset *set)
{
    if (set->n_used)
        memset(set->keys, 0, set->n_slots * sizeof(*set->keys));
    set->n_used = 0;
}

static int idset_grow(store__idset *set)
{
    size_t n = set->n_slots ? set->n_slots * 2 : 256;
    int64_t *keys = calloc(n, sizeof(*keys));
    int64_t *values = calloc(n, sizeof(*values));
    if (!keys || !values) {
        free(keys);
        free(values);
        return -ENOMEM;
    }
    for (size_t j = 0; j < set->n_slots; j++) {
        if (!set->keys[j])
            continue;
        size_t i = idhash(set->keys[j], n - 1);
        while (keys[i])
            i = (i + 1) & (n - 1);
        keys[i] = set->keys[j];
        values[i] = set->values[j];
    }
    free(set->keys);
    free(set->values);
    set->keys = keys;
    set->values = values;
    set->n_slots = n;
    return 0;
}

int store__idset_put(store__idset *set, int64_t key, int64_t value)
{
    if (key == 0)
        return -EINVAL;
    if ((set->n_used + 1) * 2 > set->n_slots) {
        int rc = idset_grow(set);
        if (rc)
            return rc;
    }
    size_t mask = set->n_slots - 1;
    size_t i = idhash(key, mask);
    while (set->keys[i] && set->keys[i] != key)
        i = (i + 1) & mask;
    if (!set->keys[i]) {
        set->keys[i] = key;
        set->n_used++;
    }
    set->values[i] = value;
    return 0;
}

void store__idset_del(store__idset *set, int64_t key)
{
    if (!set->n_slots || key == 0)
        return;
    size_t mask = set->n_slots - 1, i = idhash(key, mask);
    while (set->keys[i] != key) {
        if (!set->keys[i])
            return;
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion: move up every later entry of the probe run
     * whose home slot is not between the hole and itself, so that lookups
     * (which stop at an empty slot) still find it. */
    for (size_t j = (i + 1) & mask; set->keys[j]; j = (j + 1) & mask) {
        size_t home = idhash(set->keys[j], mask);
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        set->keys[i] = set->keys[j];
        set->values[i] = set->values[j];
        i = j;
    }
    set->keys[i] = 0;
    set->n_used--;
}

bool store__idset_get(const store__idset *set, int64_t key, int64_t *value)
{
    if (!set->n_slots || key == 0)
        return false;
    size_t mask = set->n_slots - 1;
    for (size_t i = idhash(key, mask); set->keys[i]; i = (i + 1) & mask) {
        if (set->keys[i] == key) {
            if (value)
                *value = set->values[i];
            return true;
        }
    }
    return false;
}
