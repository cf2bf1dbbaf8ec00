/* stack.c — normalized stacks: frames of a sample and their stable hash.
 *
 * A sample's stack is walked leaf first: for each location, its lines in
 * order (lines[0] is the innermost inlined function, the last line is the
 * function the code physically belongs to), each line one frame. A location
 * without lines (unsymbolized) is one frame identified by its mapping's file
 * name (or build id) and its offset in the mapping: that survives ASLR.
 *
 * The hash folds per-frame hashes (see below); its definition is fixed
 * (storage persists hashes), so change it only with a migration.
 * pprof_stack_hashes() computes every sample's hash with per-function and
 * per-location caches, for normalizing whole profiles fast.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t pprof_sample_depth(const pprof_profile *p, const pprof_sample *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_locations; i++) {
        ptrdiff_t li = pprof__find_location(p, s->location_ids[i]);
        if (li < 0 || p->locations[li].n_lines == 0)
            n++;
        else
            n += p->locations[li].n_lines;
    }
    return n;
}

/* The mapping-relative offset of an unsymbolized location and the mapping's
 * name (file name, else build id, else ""). */
static const char *unsymbolized(const pprof_profile *p, const pprof_location *l, uint64_t *offset)
{
    ptrdiff_t mi = pprof__find_mapping(p, l->mapping_id);
    if (mi < 0) {
        *offset = l->address;
        return "";
    }
    const pprof_mapping *m = &p->mappings[mi];
    *offset = l->address - m->memory_start + m->file_offset;
    const char *name = pprof__str(p, m->filename);
    return name[0] ? name : pprof__str(p, m->build_id);
}

size_t pprof_sample_frames(const pprof_profile *p, const pprof_sample *s, pprof_frame *frames,
                           size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_locations; i++) {
        ptrdiff_t li = pprof__find_location(p, s->location_ids[i]);
        if (li < 0) {
            if (n < cap)
                frames[n] = (pprof_frame){"", "", 0, 0};
            n++;
            continue;
        }
        const pprof_location *l = &p->locations[li];
        if (l->n_lines == 0) {
            if (n < cap) {
                uint64_t off;
                frames[n] = (pprof_frame){"", unsymbolized(p, l, &off), 0, l->address};
            }
            n++;
            continue;
        }
        for (size_t j = 0; j < l->n_lines; j++, n++) {
            if (n >= cap)
                continue;
            ptrdiff_t fi = pprof__find_function(p, l->lines[j].function_id);
            const pprof_function *f = fi < 0 ? NULL : &p->functions[fi];
            frames[n].function = f ? pprof__str(p, f->name) : "";
            frames[n].file = f ? pprof__str(p, f->filename) : "";
            frames[n].line = l->lines[j].line;
            frames[n].address = l->address;
        }
    }
    return n;
}

/* Frame hashes. A symbolized frame: FNV-1a of "\x02" name "\0" file "\0",
 * then its line folded in and mixed; an unsymbolized one: FNV-1a of "\x01"
 * mapping-name "\0", then the offset. The stack hash folds the frame hashes
 * leaf first into PPROF__HASH_SEED and mixes the result. */
static uint64_t function_part(const char *name, const char *file)
{
    uint64_t h = pprof__hash_bytes(PPROF__HASH_SEED, "\x02", 1);
    h = pprof__hash_bytes(h, name, strlen(name) + 1);
    return pprof__hash_bytes(h, file, strlen(file) + 1);
}

static uint64_t line_frame(uint64_t function_part_hash, int64_t line)
{
    return pprof__hash_final(pprof__hash_u64(function_part_hash, (uint64_t)line));
}

static uint64_t unsymbolized_frame(const pprof_profile *p, const pprof_location *l)
{
    uint64_t off = 0;
    const char *name = l ? unsymbolized(p, l, &off) : "";
    uint64_t h = pprof__hash_bytes(PPROF__HASH_SEED, "\x01", 1);
    h = pprof__hash_bytes(h, name, strlen(name) + 1);
    return pprof__hash_final(pprof__hash_u64(h, off));
}

static uint64_t function_part_of(const pprof_profile *p, uint64_t function_id)
{
    ptrdiff_t fi = pprof__find_function(p, function_id);
    const pprof_function *f = fi < 0 ? NULL : &p->functions[fi];
    return function_part(f ? pprof__str(p, f->name) : "", f ? pprof__str(p, f->filename) : "");
}

uint64_t pprof_stack_hash(const pprof_profile *p, const pprof_sample *s)
{
    uint64_t h = PPROF__HASH_SEED;
    for (size_t i = 0; i < s->n_locations; i++) {
        ptrdiff_t li = pprof__find_location(p, s->location_ids[i]);
        const pprof_location *l = li < 0 ? NULL : &p->locations[li];
        if (!l || l->n_lines == 0) {
            h = pprof__hash_u64(h, unsymbolized_frame(p, l));
            continue;
        }
        for (size_t j = 0; j < l->n_lines; j++)
            h = pprof__hash_u64(h, line_frame(function_part_of(p, l->lines[j].function_id),
                                              l->lines[j].line));
    }
    return pprof__hash_final(h);
}

int pprof_stack_hashes(const pprof_profile *p, uint64_t *hashes)
{
    /* Each function's and each location's frame hashes are computed once;
     * a sample then costs one multiply-xorshift per frame. */
    size_t n_frames = 0;
    for (size_t i = 0; i < p->n_locations; i++)
        n_frames += p->locations[i].n_lines ? p->locations[i].n_lines : 1;
    uint64_t *fn = malloc((p->n_functions ? p->n_functions : 1) * sizeof(uint64_t));
    uint64_t *frames = malloc((n_frames ? n_frames : 1) * sizeof(uint64_t));
    size_t *first = malloc((p->n_locations + 1) * sizeof(size_t));
    if (!fn || !frames || !first) {
        free(fn);
        free(frames);
        free(first);
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->n_functions; i++)
        fn[i] = function_part(pprof__str(p, p->functions[i].name),
                              pprof__str(p, p->functions[i].filename));
    size_t k = 0;
    for (size_t i = 0; i < p->n_locations; i++) {
        const pprof_location *l = &p->locations[i];
        first[i] = k;
        if (l->n_lines == 0) {
            frames[k++] = unsymbolized_frame(p, l);
            continue;
        }
        for (size_t j = 0; j < l->n_lines; j++) {
            ptrdiff_t fi = pprof__find_function(p, l->lines[j].function_id);
            frames[k++] = line_frame(fi < 0 ? function_part("", "") : fn[fi], l->lines[j].line);
        }
    }
    first[p->n_locations] = k;
    uint64_t missing = unsymbolized_frame(p, NULL);
    for (size_t i = 0; i < p->n_samples; i++) {
        const pprof_sample *s = &p->samples[i];
        uint64_t h = PPROF__HASH_SEED;
        for (size_t j = 0; j < s->n_locations; j++) {
            uint64_t id = s->location_ids[j];
            ptrdiff_t li = id - 1 < p->n_locations && p->locations[id - 1].id == id
                               ? (ptrdiff_t)(id - 1)
                               : pprof__find_location(p, id);
            if (li < 0) {
                h = pprof__hash_u64(h, missing);
                continue;
            }
            for (size_t f = first[li]; f < first[li + 1]; f++)
                h = pprof__hash_u64(h, frames[f]);
        }
        hashes[i] = pprof__hash_final(h);
    }
    free(fn);
    free(frames);
    free(first);
    return 0;
}
