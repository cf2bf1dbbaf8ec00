/* stack.c — normalized stacks: frames of a sample and their stable hash.
 *
 * A sample's stack is walked leaf first: for each location, its lines in
 * order (lines[0] is the innermost inlined function, the last line is the
 * function the code physically belongs to), each line one frame. A location
 * without lines (unsymbolized) is one frame identified by its mapping's file
 * name (or build id) and its offset in the mapping: that survives ASLR.
 *
 * The hash is FNV-1a over a byte encoding of the frames, then mixed; the
 * encoding is fixed (storage persists hashes), so change it only with a
 * migration.
 */
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

static uint64_t hash_str0(uint64_t h, const char *s)
{
    return pprof__hash_bytes(h, s, strlen(s) + 1); /* with the NUL as separator */
}

uint64_t pprof_stack_hash(const pprof_profile *p, const pprof_sample *s)
{
    uint64_t h = PPROF__HASH_SEED;
    for (size_t i = 0; i < s->n_locations; i++) {
        ptrdiff_t li = pprof__find_location(p, s->location_ids[i]);
        const pprof_location *l = li < 0 ? NULL : &p->locations[li];
        if (!l || l->n_lines == 0) {
            uint64_t off = 0;
            const char *name = l ? unsymbolized(p, l, &off) : "";
            h = pprof__hash_bytes(h, "\x01", 1);
            h = hash_str0(h, name);
            h = pprof__hash_u64(h, off);
            continue;
        }
        for (size_t j = 0; j < l->n_lines; j++) {
            ptrdiff_t fi = pprof__find_function(p, l->lines[j].function_id);
            const pprof_function *f = fi < 0 ? NULL : &p->functions[fi];
            h = pprof__hash_bytes(h, "\x02", 1);
            h = hash_str0(h, f ? pprof__str(p, f->name) : "");
            h = hash_str0(h, f ? pprof__str(p, f->filename) : "");
            h = pprof__hash_u64(h, (uint64_t)l->lines[j].line);
        }
    }
    return pprof__hash_final(h);
}
