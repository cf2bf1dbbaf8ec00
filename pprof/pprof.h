/* pprof.h — leakwatch's pprof profile codec: decode, validate, build, encode,
 * normalize, merge, diff and render profiles exactly as `go tool pprof` means them.
 *
 * The in-memory profile mirrors profile.proto (see pprof/profile.proto): all
 * strings live in one string table and every name field is an index into it;
 * locations, functions and mappings carry non-zero ids that samples and lines
 * refer to. A profile owns all of its memory (an arena for strings and the
 * per-sample/per-location arrays, plus its top-level arrays), so
 * pprof_free() releases everything at once. Callers may read every field and
 * change values in place; entries are added with the builder functions
 * (pointers into the arrays are invalidated by additions). A decoded
 * profile's sample n_values always equals n_sample_types.
 * There is no global state: distinct profiles
 * may be used from distinct threads at the same time; one profile must not be
 * changed by two threads at once.
 *
 * Normalized stack identity: a stack is the list of its frames, leaf first,
 * where each frame is (function name, file name, line) and inlined frames are
 * frames of their own. Raw addresses, mapping ids and function ids play no
 * part, so the same code path matches across restarts, ASLR and rebuilds of
 * unchanged code. A location without line info (unsymbolized) is identified
 * by its mapping's file name/build id and its offset in that mapping.
 *
 * Errors: functions return 0 (or a non-negative result) on success and a
 * negative errno code on failure (-EINVAL bad input, -ENOMEM, -E2BIG over a
 * cap, -ENOENT not found). Functions that take `err`/`err_len` write a
 * one-line, human-readable reason there on failure ("sample 12: location id 7
 * does not exist"); err may be NULL.
 */
#ifndef LW_PPROF_H
#define LW_PPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"

#define PPROF_ERR_LEN 256

/* Default caps used when pprof_decode() gets limits == NULL. */
#define PPROF_DEFAULT_MAX_COMPRESSED_BYTES ((size_t)64 << 20)
#define PPROF_DEFAULT_MAX_DECOMPRESSED_BYTES ((size_t)256 << 20)

typedef struct pprof_value_type {
    int64_t type; /* string index, e.g. "inuse_space" */
    int64_t unit; /* string index, e.g. "bytes" */
} pprof_value_type;

typedef struct pprof_label {
    int64_t key;      /* string index */
    int64_t str;      /* string index, 0 for a numeric label */
    int64_t num;      /* numeric value when str == 0 */
    int64_t num_unit; /* string index, 0 for none */
} pprof_label;

typedef struct pprof_sample {
    uint64_t *location_ids; /* leaf first */
    size_t n_locations;
    int64_t *values; /* n_values of them */
    size_t n_values; /* == profile->n_sample_types in a valid profile */
    pprof_label *labels;
    size_t n_labels;
} pprof_sample;

typedef struct pprof_mapping {
    uint64_t id; /* non-zero, unique among mappings */
    uint64_t memory_start;
    uint64_t memory_limit;
    uint64_t file_offset;
    int64_t filename; /* string index */
    int64_t build_id; /* string index */
    bool has_functions;
    bool has_filenames;
    bool has_line_numbers;
    bool has_inline_frames;
} pprof_mapping;

typedef struct pprof_line {
    uint64_t function_id; /* non-zero, refers to a pprof_function */
    int64_t line;         /* source line, 0 if unknown */
    int64_t column;       /* source column, 0 if unknown */
} pprof_line;

typedef struct pprof_location {
    uint64_t id;         /* non-zero, unique among locations */
    uint64_t mapping_id; /* 0 for none */
    uint64_t address;
    pprof_line *lines; /* last entry is the caller; earlier ones are inlined into it */
    size_t n_lines;
    bool is_folded;
} pprof_location;

typedef struct pprof_function {
    uint64_t id;         /* non-zero, unique among functions */
    int64_t name;        /* string index */
    int64_t system_name; /* string index */
    int64_t filename;    /* string index */
    int64_t start_line;
} pprof_function;

struct pprof_internal; /* arena and lookup tables; private to pprof/ */

typedef struct pprof_profile {
    pprof_value_type *sample_types;
    size_t n_sample_types;
    pprof_sample *samples;
    size_t n_samples;
    pprof_mapping *mappings;
    size_t n_mappings;
    pprof_location *locations;
    size_t n_locations;
    pprof_function *functions;
    size_t n_functions;
    char **strings; /* strings[0] is always "" */
    size_t n_strings;
    int64_t drop_frames;    /* string index */
    int64_t keep_frames;    /* string index */
    int64_t time_nanos;     /* collection time, ns since the epoch */
    int64_t duration_nanos; /* collection duration, ns */
    pprof_value_type period_type;
    int64_t period;
    int64_t *comments; /* string indices */
    size_t n_comments;
    int64_t default_sample_type; /* string index, 0 for none */
    struct pprof_internal *internal;
} pprof_profile;

/* One frame of a normalized stack. Pointers refer into the profile's string
 * table and stay valid until the profile is freed. */
typedef struct pprof_frame {
    const char *function; /* function name, "" if unknown */
    const char *file;     /* source file, "" if unknown */
    int64_t line;         /* 0 if unknown */
    uint64_t address;     /* informative only; not part of the identity */
} pprof_frame;

/* Caps for pprof_decode(). A decoded profile takes about 5-10x its raw
 * (decompressed) protobuf size in memory, at worst ~30x for hostile input
 * (every 1-byte varint becomes an 8-byte value), so max_decompressed_bytes
 * also bounds the memory a decode can use. */
typedef struct pprof_limits {
    size_t max_compressed_bytes;   /* input larger than this is refused */
    size_t max_decompressed_bytes; /* gunzipped data larger than this is refused */
} pprof_limits;

/* ---- lifecycle and building ------------------------------------------- */

/* A new empty profile (strings[0] == ""), or NULL when out of memory. */
pprof_profile *pprof_new(void);

/* Free a profile and everything it owns. pprof_free(NULL) is safe. */
void pprof_free(pprof_profile *p);

/* Deep copy, or NULL when out of memory. */
pprof_profile *pprof_copy(const pprof_profile *p);

/* Index of s in the string table, adding it if absent (strings are interned,
 * so equal strings get equal indices). NULL is treated as "". Returns the
 * index (>= 0) or -ENOMEM. */
int64_t pprof_intern(pprof_profile *p, const char *s) LW_WUR;

/* Append a sample type (e.g. "inuse_space", "bytes"). Must be called before
 * any sample is added. 0, -EINVAL (samples exist) or -ENOMEM. */
int pprof_add_sample_type(pprof_profile *p, const char *type, const char *unit) LW_WUR;

/* Set period_type and period. 0 or -ENOMEM. */
int pprof_set_period(pprof_profile *p, const char *type, const char *unit, int64_t period) LW_WUR;

/* Set default_sample_type by name. 0 or -ENOMEM. */
int pprof_set_default_sample_type(pprof_profile *p, const char *type) LW_WUR;

/* Add a comment line. 0 or -ENOMEM. */
int pprof_add_comment(pprof_profile *p, const char *comment) LW_WUR;

/* Add a mapping; m->id is ignored and a fresh id assigned. String fields of
 * m are indices into p (use pprof_intern). Returns the id (> 0) or 0 when
 * out of memory. */
uint64_t pprof_add_mapping(pprof_profile *p, const pprof_mapping *m);

/* The id of the function with exactly these fields, adding it if absent.
 * NULL strings count as "". Returns the id (> 0) or 0 when out of memory. */
uint64_t pprof_add_function(pprof_profile *p, const char *name, const char *system_name,
                            const char *filename, int64_t start_line);

/* The id of the location with this mapping, address and lines (leaf-most
 * inlined line first), adding it if absent. Function ids in lines must exist.
 * Returns the id (> 0) or 0 on error (out of memory, unknown function). */
uint64_t pprof_add_location(pprof_profile *p, uint64_t mapping_id, uint64_t address,
                            const pprof_line *lines, size_t n_lines);

/* Append a sample. `values` holds n_sample_types values; location ids must
 * exist; labels' string fields are indices into p. The data is copied.
 * 0, -EINVAL (unknown location) or -ENOMEM. */
int pprof_add_sample(pprof_profile *p, const uint64_t *location_ids, size_t n_locations,
                     const int64_t *values, const pprof_label *labels, size_t n_labels) LW_WUR;

/* ---- decode / validate / encode ---------------------------------------- */

/* Decode a profile from gzip-compressed or raw protobuf bytes (gzip is
 * detected by its magic; a gzip stream whose content is gzip again, as when
 * a server compresses an already gzipped profile, is unwrapped once more,
 * each layer under the same cap). limits == NULL uses the PPROF_DEFAULT_*
 * caps; input over max_compressed_bytes and a decompression bomb (inflated
 * in chunks, stopped at max_decompressed_bytes) are refused with -E2BIG.
 * The result is validated as by pprof_validate(). On success *out owns a new
 * profile; on failure *out is NULL and err says why ("gzip: unexpected end
 * of stream (input truncated after 142 bytes)", "gzip: decompressed size
 * exceeds 268435456 bytes", "protobuf: malformed profile (field at byte 0 of
 * 38)", "string_table[0] must be empty, got \"x\"", ...): -EINVAL, -E2BIG
 * or -ENOMEM. */
int pprof_decode(const void *data, size_t len, const pprof_limits *limits, pprof_profile **out,
                 char *err, size_t err_len) LW_WUR;

/* Check every invariant of the format: string_table[0] == "", every string
 * index in range, every id non-zero and unique, every referenced mapping,
 * location and function exists, each sample has exactly n_sample_types
 * values (n_values). 0, -EINVAL with the first problem in err ("sample 3:
 * location id 7 does not exist", "duplicate function id 2 (function[0] and
 * function[1])", "location[1]: id is 0 (ids must be non-zero)", "sample 0:
 * has 1 values, but the profile has 2 sample types", "function[0].name:
 * string index 999 out of range (string_table has 12 entries)"), or -ENOMEM. */
int pprof_validate(const pprof_profile *p, char *err, size_t err_len) LW_WUR;

/* Encode as protobuf (packed by protobuf-c's generated code), gzip-compressed
 * (level 1, like Go's runtime/pprof) when `gzip` is true, appending to out
 * (whose cap bounds the size); on failure out is unchanged. 0, -E2BIG (over
 * out's cap) or -ENOMEM. */
int pprof_encode(const pprof_profile *p, bool gzip, lw_buf *out) LW_WUR;

/* ---- normalized stacks -------------------------------------------------- */

/* Number of normalized frames of sample s (inlined lines count; cannot fail). */
size_t pprof_sample_depth(const pprof_profile *p, const pprof_sample *s);

/* Write up to cap frames of sample s, leaf first, into frames; returns the
 * total number of frames (which may exceed cap). Cannot fail. */
size_t pprof_sample_frames(const pprof_profile *p, const pprof_sample *s, pprof_frame *frames,
                           size_t cap);

/* 64-bit hash of the normalized stack of s (not of its labels or values).
 * Equal stacks in different profiles, processes and machines hash equally;
 * the hash function is fixed (see stack.c) because storage persists it.
 * Cannot fail. */
uint64_t pprof_stack_hash(const pprof_profile *p, const pprof_sample *s);

/* pprof_stack_hash() of every sample, into hashes[0..n_samples), computed
 * with per-function and per-location caches (use it for whole profiles).
 * 0 or -ENOMEM. */
int pprof_stack_hashes(const pprof_profile *p, uint64_t *hashes) LW_WUR;

/* ---- arithmetic ------------------------------------------------------------ */

/* Index of the sample type named `name`; name == NULL picks the default
 * (default_sample_type if set, else the last type, as go tool pprof does).
 * Returns the index or -ENOENT. */
int pprof_sample_type_index(const pprof_profile *p, const char *name);

/* Sum of every sample's values, one per sample type, into totals
 * (n_sample_types entries). Cannot fail. */
void pprof_totals(const pprof_profile *p, int64_t *totals);

/* Multiply every value by factor, rounded as Go's math.Round (halves away
 * from zero) and saturated to the int64 range; as pprof's Scale does,
 * samples whose values all become 0 are removed. Cannot fail. */
void pprof_scale(pprof_profile *p, double factor);

/* Merge n profiles with identical sample types (same type and unit, in the
 * same order) into a new profile. Samples with the same normalized stack and
 * the same labels are combined by adding their values; as in pprof's Merge,
 * samples whose values are all 0 are dropped. Headers combine like pprof's:
 * time_nanos is the earliest, duration_nanos the sum, period the largest,
 * comments deduplicated, default_sample_type the first set. Functions,
 * mappings and locations are re-keyed by content, so profiles of different
 * processes combine. 0 with *out set; -EINVAL with err ("sample types differ:
 * ...", "no profiles to merge") or -ENOMEM. */
int pprof_merge(const pprof_profile *const *profiles, size_t n, pprof_profile **out, char *err,
                size_t err_len) LW_WUR;

/* The difference `cur - base` as go tool pprof -diff_base computes it: base
 * is scaled by -1, its samples get the label pprof::base="true" (replacing
 * string labels with that key), and merge(cur, base) is returned; base
 * samples stay separate samples. Totals of the result are totals(cur) -
 * totals(base). Neither input is changed. Same results as pprof_merge(). */
int pprof_diff(const pprof_profile *base, const pprof_profile *cur, pprof_profile **out,
               char *err, size_t err_len) LW_WUR;

/* ---- rendering ------------------------------------------------------------- */

/* A `go tool pprof -top` style table for sample type index `sample_index`:
 * "Type: <type>", "Showing nodes accounting for X, P% of T total" (and
 * "Showing top N nodes out of M" when rows are cut), the column header, then
 * rows of flat, flat%, sum%, cum, cum%, name [(inline)|(partial-inline)]
 * aggregated by function name, sorted by |flat| (descending), then name; at
 * most max_rows rows (0 = all). Rows, units, totals (for a diff: the base's
 * total) and percentages are those of `go tool pprof -top -nodefraction=0`.
 * Appends to out; on failure out is unchanged: 0, -EINVAL (bad index),
 * -E2BIG or -ENOMEM. */
int pprof_render_top(const pprof_profile *p, int sample_index, size_t max_rows, lw_buf *out) LW_WUR;

/* Folded stacks for flame-graph tools: one line per distinct stack of
 * function names, "root;caller;leaf value\n", sorted by stack, stacks with
 * value 0 omitted; frames without a function print as their address
 * ("0x4567"). Appends to out; on failure out is unchanged: 0, -EINVAL,
 * -E2BIG or -ENOMEM. */
int pprof_render_folded(const pprof_profile *p, int sample_index, lw_buf *out) LW_WUR;

/* JSON: {"sample_types":[{"type":..,"unit":..}],"period_type":{"type":..,
 * "unit":..},"period":..,"time_nanos":..,"duration_nanos":..,"totals":[..],
 * "samples":[{"values":[..],"labels":{"key":"str" or num,..},"stack":[
 * {"function":..,"file":..,"line":..}, ...]}]} (stack leaf first), newline
 * terminated. Appends to out; on failure out is unchanged: 0, -E2BIG or
 * -ENOMEM. */
int pprof_render_json(const pprof_profile *p, lw_buf *out) LW_WUR;

/* Format a value with its unit the way go tool pprof does ("1.50MB", "10ms",
 * "1234"), into buf. Returns buf. Cannot fail. */
const char *pprof_format_value(int64_t value, const char *unit, char *buf, size_t buf_len);

#endif
