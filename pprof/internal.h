/* internal.h — private helpers shared by the pprof/ sources (not part of the contract).
 *
 * Memory: every profile owns one arena (a list of blocks freed all at once by
 * pprof_free) for strings and for the small per-sample/per-location arrays;
 * the top-level arrays (samples, locations, ...) are realloc'd vectors owned
 * by the profile so that building can append in amortised O(1).
 *
 * Lookup tables (id -> index, interned strings, function/location dedup) are
 * kept in struct pprof_internal. Callers may append to the public arrays
 * directly, so every table remembers how many entries it has indexed and
 * catches up with the tail before use (pprof__sync_*). Const functions never
 * touch the tables unless they cover the whole array, so distinct threads may
 * read one profile at the same time.
 */
#ifndef LW_PPROF_INTERNAL_H
#define LW_PPROF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_util.h"
#include "pprof.h"

/* ---- arena ---------------------------------------------------------------- */

typedef struct pprof__block pprof__block;

typedef struct pprof__arena {
    pprof__block *head; /* newest block first */
    size_t total_bytes; /* bytes allocated for blocks */
} pprof__arena;

/* n bytes, 8-byte aligned, zeroed only if zero is true; NULL when out of memory. */
void *pprof__arena_alloc(pprof__arena *a, size_t n, bool zero);
void pprof__arena_free(pprof__arena *a);

/* ---- open-addressing hash maps --------------------------------------------- */

/* id -> index map. Keys are non-zero uint64 (0 marks an empty slot). */
typedef struct pprof__idmap {
    uint64_t *keys;
    uint32_t *vals;
    size_t cap; /* power of two, 0 when unallocated */
    size_t n;
} pprof__idmap;

/* 0 on insert, -EEXIST (with *existing set) when the key is present,
 * -ENOMEM. key must be non-zero. */
int pprof__idmap_put(pprof__idmap *m, uint64_t key, uint32_t val, uint32_t *existing);
/* true and *val set when present. */
bool pprof__idmap_get(const pprof__idmap *m, uint64_t key, uint32_t *val);
int pprof__idmap_reserve(pprof__idmap *m, size_t n);
void pprof__idmap_free(pprof__idmap *m);

/* Generic hash -> index map: stores (hash, index) pairs; equality is the
 * caller's business (pprof__hmap_next iterates candidates whose hash has the
 * same upper 32 bits). One 8-byte slot per entry, so a lookup usually costs
 * one cache miss. */
typedef struct pprof__hmap {
    uint64_t *slots; /* hash >> 32 in the upper half, index + 1 in the lower; 0 = empty */
    size_t cap;      /* power of two, 0 when unallocated */
    size_t n;
} pprof__hmap;

/* Iterate candidates: *pos must start at SIZE_MAX; returns true with *val set
 * for each stored entry with hash h, false when exhausted. */
bool pprof__hmap_next(const pprof__hmap *m, uint64_t h, size_t *pos, uint32_t *val);
int pprof__hmap_put(pprof__hmap *m, uint64_t h, uint32_t val);
int pprof__hmap_reserve(pprof__hmap *m, size_t n);
void pprof__hmap_free(pprof__hmap *m);

/* ---- hashing ------------------------------------------------------------------ */

uint64_t pprof__hash_bytes(uint64_t h, const void *data, size_t n);
#define PPROF__HASH_SEED 0xcbf29ce484222325ULL

/* One multiply-xorshift round per 64-bit word (byte-wise FNV was the hot
 * spot of merging); pprof__hash_final mixes the result. Inline: the stack
 * hash runs it once per frame. Changing it changes persisted stack hashes. */
static inline uint64_t pprof__hash_u64(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

/* splitmix64's finaliser. */
static inline uint64_t pprof__hash_final(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

/* ---- profile internals ---------------------------------------------------- */

struct pprof_internal {
    pprof__arena arena;
    /* Allocated capacity of each public vector. */
    size_t cap_sample_types, cap_samples, cap_mappings, cap_locations, cap_functions;
    size_t cap_strings, cap_comments;
    /* id -> array index, covering the first n_*_indexed entries. */
    pprof__idmap mapping_ids, location_ids, function_ids;
    size_t n_mappings_indexed, n_locations_indexed, n_functions_indexed;
    uint64_t max_mapping_id, max_location_id, max_function_id; /* over indexed entries */
    /* Interned strings: hash -> string index, covering n_strings_indexed. */
    pprof__hmap strings;
    size_t n_strings_indexed;
    /* Builder dedup: function fields / location content -> array index. */
    pprof__hmap fn_dedup, loc_dedup;
    size_t n_fn_dedup, n_loc_dedup;
};

/* Grow a vector (element size elem) to hold at least need elements. */
int pprof__grow(void **vec, size_t *cap, size_t need, size_t elem);

/* Copy s (len bytes) into the arena, NUL-terminated. NULL on ENOMEM. */
char *pprof__arena_strdup(pprof_profile *p, const char *s, size_t len);

/* Append a string without interning. Returns its index or -ENOMEM. */
int64_t pprof__append_string(pprof_profile *p, const char *s, size_t len);

/* Append a location / function / mapping with the given id (no dedup). The
 * lines array is copied. 0 or -ENOMEM. */
int pprof__append_location(pprof_profile *p, uint64_t id, uint64_t mapping_id, uint64_t address,
                           const pprof_line *lines, size_t n_lines, bool is_folded);
int pprof__append_function(pprof_profile *p, const pprof_function *f);
int pprof__append_mapping(pprof_profile *p, const pprof_mapping *m);

/* Append a sample, copying its arrays into the arena. 0 or -ENOMEM. */
int pprof__append_sample(pprof_profile *p, const uint64_t *location_ids, size_t n_locations,
                         const int64_t *values, size_t n_values, const pprof_label *labels,
                         size_t n_labels);

/* Bring the id tables up to date with the arrays. 0, -EEXIST (duplicate
 * id, which validation reports) or -ENOMEM. */
int pprof__sync_ids(pprof_profile *p);

/* Index of the entry with this id, or -1 (lock-free for const profiles). */
ptrdiff_t pprof__find_location(const pprof_profile *p, uint64_t id);
ptrdiff_t pprof__find_function(const pprof_profile *p, uint64_t id);
ptrdiff_t pprof__find_mapping(const pprof_profile *p, uint64_t id);

/* The string at index i, or "" when out of range. */
const char *pprof__str(const pprof_profile *p, int64_t i);


/* Wrapping int64 arithmetic (Go semantics, no UB on overflow). */
static inline int64_t pprof__add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

#endif
