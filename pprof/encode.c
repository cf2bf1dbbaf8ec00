/* encode.c — profile -> protobuf wire format -> gzip.
 *
 * A direct writer: each element's size is computed, then the element is
 * written into a 64 KiB buffer that is deflated (or appended) into the
 * caller's capped buffer whenever the next element does not fit, so the raw
 * message never exists whole. Fields are written in
 * field-number order with proto3 rules (zero scalars omitted, repeated
 * scalars packed), which is byte for byte what protobuf-c's generated packer
 * produces for the same message; the unit tests check that against
 * protoc-c's code. It replaced packing with protobuf-c, which needed one
 * struct per message and was half of the time of a diff of large profiles.
 * Gzip uses level 1, as Go's runtime/pprof does: profiles compress well and
 * encoding runs inside the profiled process (agent).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"

/* Both under glibc's mmap threshold, so they come from (warm) heap memory. */
#define WRITE_CHUNK_BYTES ((size_t)64 << 10)
#define DEFLATE_CHUNK_BYTES ((size_t)64 << 10)

enum { WT_VARINT = 0, WT_LEN = 2 };

static inline size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Size of field `f` (< 16) holding scalar v, 0 when omitted (v == 0). */
static inline size_t scalar_size(uint64_t v)
{
    return v ? 1 + varint_size(v) : 0;
}

/* Size of a length-delimited field (< 16) with an n-byte body. */
static inline size_t len_size(size_t n)
{
    return 1 + varint_size(n) + n;
}

static inline uint8_t *put_varint(uint8_t *w, uint64_t v)
{
    while (v >= 0x80) {
        *w++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w++ = (uint8_t)v;
    return w;
}

static inline uint8_t *put_scalar(uint8_t *w, unsigned field, uint64_t v)
{
    if (!v)
        return w;
    *w++ = (uint8_t)(field << 3 | WT_VARINT);
    return put_varint(w, v);
}

static inline uint8_t *put_len(uint8_t *w, unsigned field, size_t n)
{
    *w++ = (uint8_t)(field << 3 | WT_LEN);
    return put_varint(w, n);
}

/* ---- sizes ---------------------------------------------------------------------- */

static size_t value_type_body(const pprof_value_type *v)
{
    return scalar_size((uint64_t)v->type) + scalar_size((uint64_t)v->unit);
}

static size_t label_body(const pprof_label *l)
{
    return scalar_size((uint64_t)l->key) + scalar_size((uint64_t)l->str) +
           scalar_size((uint64_t)l->num) + scalar_size((uint64_t)l->num_unit);
}

static size_t packed_u64(const uint64_t *v, size_t n)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += varint_size(v[i]);
    return s;
}

static size_t sample_body(const pprof_sample *s, size_t *ids_len, size_t *vals_len)
{
    size_t n = 0;
    *ids_len = packed_u64(s->location_ids, s->n_locations);
    *vals_len = packed_u64((const uint64_t *)s->values, s->n_values);
    if (s->n_locations)
        n += len_size(*ids_len);
    if (s->n_values)
        n += len_size(*vals_len);
    for (size_t j = 0; j < s->n_labels; j++)
        n += len_size(label_body(&s->labels[j]));
    return n;
}

static size_t mapping_body(const pprof_mapping *m)
{
    return scalar_size(m->id) + scalar_size(m->memory_start) + scalar_size(m->memory_limit) +
           scalar_size(m->file_offset) + scalar_size((uint64_t)m->filename) +
           scalar_size((uint64_t)m->build_id) + 2 * m->has_functions + 2 * m->has_filenames +
           2 * m->has_line_numbers + 2 * m->has_inline_frames;
}

static size_t line_body(const pprof_line *l)
{
    return scalar_size(l->function_id) + scalar_size((uint64_t)l->line) +
           scalar_size((uint64_t)l->column);
}

static size_t location_body(const pprof_location *l)
{
    size_t n = scalar_size(l->id) + scalar_size(l->mapping_id) + scalar_size(l->address) +
               2 * l->is_folded;
    for (size_t j = 0; j < l->n_lines; j++)
        n += len_size(line_body(&l->lines[j]));
    return n;
}

static size_t function_body(const pprof_function *f)
{
    return scalar_size(f->id) + scalar_size((uint64_t)f->name) +
           scalar_size((uint64_t)f->system_name) + scalar_size((uint64_t)f->filename) +
           scalar_size((uint64_t)f->start_line);
}

static bool has_period_type(const pprof_profile *p)
{
    return p->period_type.type || p->period_type.unit;
}

/* ---- writers ------------------------------------------------------------------------ */

static uint8_t *put_value_type(uint8_t *w, unsigned field, const pprof_value_type *v)
{
    w = put_len(w, field, value_type_body(v));
    w = put_scalar(w, 1, (uint64_t)v->type);
    return put_scalar(w, 2, (uint64_t)v->unit);
}

static uint8_t *put_packed(uint8_t *w, unsigned field, const uint64_t *v, size_t n, size_t len)
{
    if (!n)
        return w;
    w = put_len(w, field, len);
    for (size_t i = 0; i < n; i++)
        w = put_varint(w, v[i]);
    return w;
}

static uint8_t *put_sample(uint8_t *w, const pprof_sample *s, size_t body, size_t ids_len,
                          size_t vals_len)
{
    w = put_len(w, 2, body);
    w = put_packed(w, 1, s->location_ids, s->n_locations, ids_len);
    w = put_packed(w, 2, (const uint64_t *)s->values, s->n_values, vals_len);
    for (size_t j = 0; j < s->n_labels; j++) {
        const pprof_label *l = &s->labels[j];
        w = put_len(w, 3, label_body(l));
        w = put_scalar(w, 1, (uint64_t)l->key);
        w = put_scalar(w, 2, (uint64_t)l->str);
        w = put_scalar(w, 3, (uint64_t)l->num);
        w = put_scalar(w, 4, (uint64_t)l->num_unit);
    }
    return w;
}

static uint8_t *put_mapping(uint8_t *w, const pprof_mapping *m)
{
    w = put_len(w, 3, mapping_body(m));
    w = put_scalar(w, 1, m->id);
    w = put_scalar(w, 2, m->memory_start);
    w = put_scalar(w, 3, m->memory_limit);
    w = put_scalar(w, 4, m->file_offset);
    w = put_scalar(w, 5, (uint64_t)m->filename);
    w = put_scalar(w, 6, (uint64_t)m->build_id);
    w = put_scalar(w, 7, m->has_functions);
    w = put_scalar(w, 8, m->has_filenames);
    w = put_scalar(w, 9, m->has_line_numbers);
    return put_scalar(w, 10, m->has_inline_frames);
}

static uint8_t *put_location(uint8_t *w, const pprof_location *l)
{
    w = put_len(w, 4, location_body(l));
    w = put_scalar(w, 1, l->id);
    w = put_scalar(w, 2, l->mapping_id);
    w = put_scalar(w, 3, l->address);
    for (size_t j = 0; j < l->n_lines; j++) {
        const pprof_line *ln = &l->lines[j];
        w = put_len(w, 4, line_body(ln));
        w = put_scalar(w, 1, ln->function_id);
        w = put_scalar(w, 2, (uint64_t)ln->line);
        w = put_scalar(w, 3, (uint64_t)ln->column);
    }
    return put_scalar(w, 5, l->is_folded);
}

static uint8_t *put_bytes(uint8_t *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

static uint8_t *put_function(uint8_t *w, const pprof_function *f)
{
    w = put_len(w, 5, function_body(f));
    w = put_scalar(w, 1, f->id);
    w = put_scalar(w, 2, (uint64_t)f->name);
    w = put_scalar(w, 3, (uint64_t)f->system_name);
    w = put_scalar(w, 4, (uint64_t)f->filename);
    return put_scalar(w, 5, (uint64_t)f->start_line);
}

/* The scalar fields after the string table, in field order. */
static uint8_t *put_tail(uint8_t *w, const pprof_profile *p, size_t comments_len)
{
    w = put_scalar(w, 7, (uint64_t)p->drop_frames);
    w = put_scalar(w, 8, (uint64_t)p->keep_frames);
    w = put_scalar(w, 9, (uint64_t)p->time_nanos);
    w = put_scalar(w, 10, (uint64_t)p->duration_nanos);
    if (has_period_type(p))
        w = put_value_type(w, 11, &p->period_type);
    w = put_scalar(w, 12, (uint64_t)p->period);
    w = put_packed(w, 13, (const uint64_t *)p->comments, p->n_comments, comments_len);
    return put_scalar(w, 14, (uint64_t)p->default_sample_type);
}

/* ---- streaming output ---------------------------------------------------------- */

/* The message is written element by element into a small buffer that is
 * handed to deflate (or appended as is) whenever the next element does not
 * fit: no buffer of the whole raw message (8 MB for a diff of large heap
 * profiles, all of it fresh pages that deflate then read back). Top-level
 * fields carry no length prefix, so nothing needs the total size first. */
typedef struct writer {
    uint8_t *buf;
    size_t cap, len;
    bool gzip;
    z_stream z;
    unsigned char *zout;
    lw_buf *out;
} writer;

/* Hand buf[0..len) on; with finish, end the gzip stream. 0, -E2BIG, -ENOMEM
 * or -EINVAL (zlib refused the stream). */
static int w_flush(writer *w, bool finish)
{
    if (!w->gzip) {
        int rc = w->len ? lw_buf_append(w->out, w->buf, w->len) : 0;
        w->len = 0;
        return rc;
    }
    w->z.next_in = w->buf;
    w->z.avail_in = (unsigned)w->len;
    int flush = finish ? Z_FINISH : Z_NO_FLUSH;
    for (;;) {
        w->z.next_out = w->zout;
        w->z.avail_out = (unsigned)DEFLATE_CHUNK_BYTES;
        int zr = deflate(&w->z, flush);
        if (zr == Z_STREAM_ERROR)
            return -EINVAL;
        size_t got = DEFLATE_CHUNK_BYTES - w->z.avail_out;
        if (got) {
            int rc = lw_buf_append(w->out, w->zout, got);
            if (rc)
                return rc;
        }
        if (finish ? zr == Z_STREAM_END : (w->z.avail_in == 0 && w->z.avail_out != 0))
            break;
    }
    w->len = 0;
    return 0;
}

/* Where to write the next n bytes (flushing first if they do not fit), or
 * NULL with *rc set. */
static uint8_t *w_room(writer *w, size_t n, int *rc)
{
    if (w->cap - w->len >= n)
        return w->buf + w->len;
    if ((*rc = w_flush(w, false)))
        return NULL;
    if (n > w->cap) {
        /* One element bigger than the buffer (a long string, a sample
         * with many labels): grow for it. */
        if (n > UINT32_MAX) {
            *rc = -E2BIG;
            return NULL;
        }
        uint8_t *b = realloc(w->buf, n);
        if (!b) {
            *rc = -ENOMEM;
            return NULL;
        }
        w->buf = b;
        w->cap = n;
    }
    return w->buf;
}

/* Write one element of exactly n bytes with the writer expression `put`
 * (which sees `o`, the output pointer, and must yield the end pointer). */
#define EMIT(w, n, rc, put)                                                                      \
    do {                                                                                         \
        size_t n_ = (n);                                                                         \
        uint8_t *o = w_room((w), n_, &(rc));                                                     \
        if (!o)                                                                                  \
            goto out;                                                                            \
        uint8_t *e_ = (put);                                                                     \
        if ((size_t)(e_ - o) != n_) {                                                            \
            (rc) = -EINVAL; /* size pass and write pass disagree: a bug */                       \
            goto out;                                                                            \
        }                                                                                        \
        (w)->len += n_;                                                                          \
    } while (0)

/* Serialize p through w (the caller flushes with finish). */
static int serialize(const pprof_profile *p, writer *w)
{
    int rc = 0;
    for (size_t i = 0; i < p->n_sample_types; i++)
        EMIT(w, len_size(value_type_body(&p->sample_types[i])), rc,
             put_value_type(o, 1, &p->sample_types[i]));
    for (size_t i = 0; i < p->n_samples; i++) {
        size_t ids_len, vals_len;
        size_t body = sample_body(&p->samples[i], &ids_len, &vals_len);
        EMIT(w, len_size(body), rc, put_sample(o, &p->samples[i], body, ids_len, vals_len));
    }
    for (size_t i = 0; i < p->n_mappings; i++)
        EMIT(w, len_size(mapping_body(&p->mappings[i])), rc, put_mapping(o, &p->mappings[i]));
    for (size_t i = 0; i < p->n_locations; i++)
        EMIT(w, len_size(location_body(&p->locations[i])), rc, put_location(o, &p->locations[i]));
    for (size_t i = 0; i < p->n_functions; i++)
        EMIT(w, len_size(function_body(&p->functions[i])), rc, put_function(o, &p->functions[i]));
    for (size_t i = 0; i < p->n_strings; i++) {
        const char *str = pprof__str(p, (int64_t)i);
        size_t sl = strlen(str);
        EMIT(w, len_size(sl), rc, put_bytes(put_len(o, 6, sl), str, sl));
    }
    size_t tail = scalar_size((uint64_t)p->drop_frames) + scalar_size((uint64_t)p->keep_frames) +
                  scalar_size((uint64_t)p->time_nanos) + scalar_size((uint64_t)p->duration_nanos) +
                  (has_period_type(p) ? len_size(value_type_body(&p->period_type)) : 0) +
                  scalar_size((uint64_t)p->period) + scalar_size((uint64_t)p->default_sample_type);
    size_t comments_len = packed_u64((const uint64_t *)p->comments, p->n_comments);
    if (p->n_comments)
        tail += len_size(comments_len);
    EMIT(w, tail, rc, put_tail(o, p, comments_len));
out:
    return rc;
}

int pprof_encode(const pprof_profile *p, bool gzip, lw_buf *out)
{
    size_t start = out->len;
    writer w;
    memset(&w, 0, sizeof(w));
    w.gzip = gzip;
    w.out = out;
    w.cap = WRITE_CHUNK_BYTES;
    w.buf = malloc(w.cap);
    int rc = w.buf ? 0 : -ENOMEM;
    bool z_started = false;
    if (rc == 0 && gzip) {
        w.zout = malloc(DEFLATE_CHUNK_BYTES);
        if (!w.zout || deflateInit2(&w.z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            rc = -ENOMEM;
        else
            z_started = true;
    }
    if (rc == 0)
        rc = serialize(p, &w);
    if (rc == 0)
        rc = w_flush(&w, true);
    if (z_started)
        deflateEnd(&w.z);
    if (rc && out->len > start) {
        out->len = start;
        out->data[start] = '\0';
    }
    free(w.buf);
    free(w.zout);
    return rc;
}
