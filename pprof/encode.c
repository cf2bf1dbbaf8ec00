/* encode.c — profile -> protobuf (packed by protobuf-c's generated code) -> gzip.
 *
 * The protobuf-c message structs are filled from the profile (strings and
 * the location/value arrays are referenced, not copied; the small message
 * structs come from a few malloc'd blocks), packed into one buffer of the
 * exact size and, if asked, deflated in chunks into the caller's capped
 * buffer. Gzip uses level 1, as Go's runtime/pprof does: profiles compress
 * well and encoding runs inside the profiled process (agent).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"
#include "profile.pb-c.h"

#define DEFLATE_CHUNK_BYTES ((size_t)256 << 10)

typedef Perftools__Profiles__Profile PbProfile;
typedef Perftools__Profiles__ValueType PbValueType;
typedef Perftools__Profiles__Sample PbSample;
typedef Perftools__Profiles__Label PbLabel;
typedef Perftools__Profiles__Mapping PbMapping;
typedef Perftools__Profiles__Location PbLocation;
typedef Perftools__Profiles__Line PbLine;
typedef Perftools__Profiles__Function PbFunction;

/* All temporary memory of one encode, freed together. */
typedef struct pb_mem {
    PbValueType *vts;
    PbValueType **vt_ptrs;
    PbSample *samples;
    PbSample **sample_ptrs;
    PbLabel *labels;
    PbLabel **label_ptrs;
    PbMapping *mappings;
    PbMapping **mapping_ptrs;
    PbLocation *locations;
    PbLocation **location_ptrs;
    PbLine *lines;
    PbLine **line_ptrs;
    PbFunction *functions;
    PbFunction **function_ptrs;
    uint8_t *packed;
} pb_mem;

static void pb_mem_free(pb_mem *m)
{
    free(m->vts);
    free(m->vt_ptrs);
    free(m->samples);
    free(m->sample_ptrs);
    free(m->labels);
    free(m->label_ptrs);
    free(m->mappings);
    free(m->mapping_ptrs);
    free(m->locations);
    free(m->location_ptrs);
    free(m->lines);
    free(m->line_ptrs);
    free(m->functions);
    free(m->function_ptrs);
    free(m->packed);
}

/* calloc that treats n == 0 as success (returns NULL, *ok untouched). */
static void *alloc_n(size_t n, size_t elem, bool *ok)
{
    if (n == 0)
        return NULL;
    void *r = calloc(n, elem);
    if (!r)
        *ok = false;
    return r;
}

static int build(const pprof_profile *p, PbProfile *pb, PbValueType *period_type, pb_mem *m)
{
    bool ok = true;
    size_t n_labels = 0, n_lines = 0;
    for (size_t i = 0; i < p->n_samples; i++)
        n_labels += p->samples[i].n_labels;
    for (size_t i = 0; i < p->n_locations; i++)
        n_lines += p->locations[i].n_lines;
    m->vts = alloc_n(p->n_sample_types, sizeof(PbValueType), &ok);
    m->vt_ptrs = alloc_n(p->n_sample_types, sizeof(PbValueType *), &ok);
    m->samples = alloc_n(p->n_samples, sizeof(PbSample), &ok);
    m->sample_ptrs = alloc_n(p->n_samples, sizeof(PbSample *), &ok);
    m->labels = alloc_n(n_labels, sizeof(PbLabel), &ok);
    m->label_ptrs = alloc_n(n_labels, sizeof(PbLabel *), &ok);
    m->mappings = alloc_n(p->n_mappings, sizeof(PbMapping), &ok);
    m->mapping_ptrs = alloc_n(p->n_mappings, sizeof(PbMapping *), &ok);
    m->locations = alloc_n(p->n_locations, sizeof(PbLocation), &ok);
    m->location_ptrs = alloc_n(p->n_locations, sizeof(PbLocation *), &ok);
    m->lines = alloc_n(n_lines, sizeof(PbLine), &ok);
    m->line_ptrs = alloc_n(n_lines, sizeof(PbLine *), &ok);
    m->functions = alloc_n(p->n_functions, sizeof(PbFunction), &ok);
    m->function_ptrs = alloc_n(p->n_functions, sizeof(PbFunction *), &ok);
    if (!ok)
        return -ENOMEM;

    for (size_t i = 0; i < p->n_sample_types; i++) {
        PbValueType *v = &m->vts[i];
        perftools__profiles__value_type__init(v);
        v->type = p->sample_types[i].type;
        v->unit = p->sample_types[i].unit;
        m->vt_ptrs[i] = v;
    }
    pb->n_sample_type = p->n_sample_types;
    pb->sample_type = m->vt_ptrs;

    size_t li = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        const pprof_sample *s = &p->samples[i];
        PbSample *o = &m->samples[i];
        perftools__profiles__sample__init(o);
        o->n_location_id = s->n_locations;
        o->location_id = s->location_ids;
        o->n_value = s->n_values;
        o->value = s->values;
        o->n_label = s->n_labels;
        o->label = s->n_labels ? &m->label_ptrs[li] : NULL;
        for (size_t j = 0; j < s->n_labels; j++, li++) {
            PbLabel *l = &m->labels[li];
            perftools__profiles__label__init(l);
            l->key = s->labels[j].key;
            l->str = s->labels[j].str;
            l->num = s->labels[j].num;
            l->num_unit = s->labels[j].num_unit;
            m->label_ptrs[li] = l;
        }
        m->sample_ptrs[i] = o;
    }
    pb->n_sample = p->n_samples;
    pb->sample = m->sample_ptrs;

    for (size_t i = 0; i < p->n_mappings; i++) {
        const pprof_mapping *s = &p->mappings[i];
        PbMapping *o = &m->mappings[i];
        perftools__profiles__mapping__init(o);
        o->id = s->id;
        o->memory_start = s->memory_start;
        o->memory_limit = s->memory_limit;
        o->file_offset = s->file_offset;
        o->filename = s->filename;
        o->build_id = s->build_id;
        o->has_functions = s->has_functions;
        o->has_filenames = s->has_filenames;
        o->has_line_numbers = s->has_line_numbers;
        o->has_inline_frames = s->has_inline_frames;
        m->mapping_ptrs[i] = o;
    }
    pb->n_mapping = p->n_mappings;
    pb->mapping = m->mapping_ptrs;

    size_t ni = 0;
    for (size_t i = 0; i < p->n_locations; i++) {
        const pprof_location *s = &p->locations[i];
        PbLocation *o = &m->locations[i];
        perftools__profiles__location__init(o);
        o->id = s->id;
        o->mapping_id = s->mapping_id;
        o->address = s->address;
        o->is_folded = s->is_folded;
        o->n_line = s->n_lines;
        o->line = s->n_lines ? &m->line_ptrs[ni] : NULL;
        for (size_t j = 0; j < s->n_lines; j++, ni++) {
            PbLine *l = &m->lines[ni];
            perftools__profiles__line__init(l);
            l->function_id = s->lines[j].function_id;
            l->line = s->lines[j].line;
            l->column = s->lines[j].column;
            m->line_ptrs[ni] = l;
        }
        m->location_ptrs[i] = o;
    }
    pb->n_location = p->n_locations;
    pb->location = m->location_ptrs;

    for (size_t i = 0; i < p->n_functions; i++) {
        const pprof_function *s = &p->functions[i];
        PbFunction *o = &m->functions[i];
        perftools__profiles__function__init(o);
        o->id = s->id;
        o->name = s->name;
        o->system_name = s->system_name;
        o->filename = s->filename;
        o->start_line = s->start_line;
        m->function_ptrs[i] = o;
    }
    pb->n_function = p->n_functions;
    pb->function = m->function_ptrs;

    pb->n_string_table = p->n_strings;
    pb->string_table = p->strings;
    pb->drop_frames = p->drop_frames;
    pb->keep_frames = p->keep_frames;
    pb->time_nanos = p->time_nanos;
    pb->duration_nanos = p->duration_nanos;
    perftools__profiles__value_type__init(period_type);
    period_type->type = p->period_type.type;
    period_type->unit = p->period_type.unit;
    if (period_type->type || period_type->unit)
        pb->period_type = period_type;
    pb->period = p->period;
    pb->n_comment = p->n_comments;
    pb->comment = p->comments;
    pb->default_sample_type = p->default_sample_type;
    return 0;
}

static int deflate_into(const uint8_t *data, size_t len, lw_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    unsigned char *chunk = malloc(DEFLATE_CHUNK_BYTES);
    int rc = chunk ? 0 : -ENOMEM;
    size_t done = 0;
    int zr = Z_OK;
    while (rc == 0 && zr != Z_STREAM_END) {
        size_t left = len - done;
        z.next_in = (unsigned char *)(uintptr_t)(data + done);
        z.avail_in = left > UINT32_MAX ? UINT32_MAX : (unsigned)left;
        size_t before = z.avail_in;
        z.next_out = chunk;
        z.avail_out = (unsigned)DEFLATE_CHUNK_BYTES;
        zr = deflate(&z, before == left ? Z_FINISH : Z_NO_FLUSH);
        done += before - z.avail_in;
        if (zr == Z_STREAM_ERROR) {
            rc = -EINVAL;
            break;
        }
        rc = lw_buf_append(out, chunk, DEFLATE_CHUNK_BYTES - z.avail_out);
    }
    deflateEnd(&z);
    free(chunk);
    return rc;
}

int pprof_encode(const pprof_profile *p, bool gzip, lw_buf *out)
{
    PbProfile pb;
    PbValueType period_type;
    pb_mem m;
    size_t start = out->len;
    memset(&m, 0, sizeof(m));
    perftools__profiles__profile__init(&pb);
    int rc = build(p, &pb, &period_type, &m);
    if (rc)
        goto out;
    size_t size = perftools__profiles__profile__get_packed_size(&pb);
    if (!gzip && size > out->max_bytes - out->len) {
        rc = -E2BIG;
        goto out;
    }
    m.packed = malloc(size ? size : 1);
    if (!m.packed) {
        rc = -ENOMEM;
        goto out;
    }
    size_t packed = perftools__profiles__profile__pack(&pb, m.packed);
    if (packed != size) {
        rc = -EINVAL;
        goto out;
    }
    rc = gzip ? deflate_into(m.packed, size, out) : lw_buf_append(out, m.packed, size);
out:
    if (rc && out->len > start) {
        out->len = start;
        out->data[start] = '\0';
    }
    pb_mem_free(&m);
    return rc;
}
