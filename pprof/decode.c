/* decode.c — gunzip with hard caps, protobuf wire-format decoding and validation.
 *
 * Decoding reads the protobuf wire format directly into the profile's arena
 * instead of going through protobuf-c's unpack (which mallocs every message
 * and would need a second copy into our structs). Each message is read
 * twice: a cheap first pass counts repeated fields so every array is
 * allocated once at its exact size, the second pass fills them (measured on
 * a 65k-sample Go heap profile: protobuf-c's unpack alone took ~3x as long as
 * this whole decode including gunzip). The protoc-c generated code stays the
 * reference: the unit tests cross-check decoding and encoding against
 * protobuf-c's unpack and pack.
 *
 * Gzip input is inflated in chunks into a capped buffer, so a decompression
 * bomb stops at the cap instead of being inflated first. A gzip stream whose
 * content is gzip again (a server compressing an already compressed profile)
 * is unwrapped once more, under the same cap.
 *
 * Built with libdeflate (LW_HAVE_LIBDEFLATE, the daemon's and tools' copy),
 * the usual case — one gzip member whose trailer size is within the cap —
 * is inflated by libdeflate in one call straight into a buffer of exactly
 * that size: about twice zlib's speed, and no chunk copies. Anything else
 * (several members, a trailer size over the cap or not matching the data,
 * corrupt input) takes the zlib path, which gives the precise error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef LW_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "internal.h"

/* ---- gzip ----------------------------------------------------------------------- */

#define INFLATE_CHUNK_BYTES ((size_t)256 << 10)
#define MAX_GZIP_LAYERS 2

static bool is_gzip(const unsigned char *d, size_t len)
{
    return len >= 2 && d[0] == 0x1f && d[1] == 0x8b;
}

#ifdef LW_HAVE_LIBDEFLATE
/* The fast path (see the top of the file): 1 when in was one gzip member,
 * now inflated into the empty buffer out; 0 to take the zlib path;
 * -ENOMEM when an allocation failed. */
static int gunzip_whole(const unsigned char *in, size_t in_len, lw_buf *out)
{
    if (in_len < 18 || out->len != 0)
        return 0;
    const unsigned char *t = in + in_len - 4; /* ISIZE: the size mod 2^32 */
    size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
    if (isize == 0 || isize > out->max_bytes)
        return 0;
    int rc = lw_buf_reserve(out, isize);
    if (rc)
        return rc == -ENOMEM ? -ENOMEM : 0;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d)
        return -ENOMEM;
    size_t used = 0, produced = 0;
    enum libdeflate_result r =
        libdeflate_gzip_decompress_ex(d, in, in_len, out->data, isize, &used, &produced);
    libdeflate_free_decompressor(d);
    if (r != LIBDEFLATE_SUCCESS || used != in_len || produced != isize)
        return 0;
    out->len = produced;
    out->data[out->len] = '\0';
    return 1;
}
#endif

/* Inflate one gzip stream (possibly multi-member) into out (capped). */
static int gunzip(const unsigned char *in, size_t in_len, lw_buf *out, char *err, size_t err_len)
{
#ifdef LW_HAVE_LIBDEFLATE
    int fast = gunzip_whole(in, in_len, out);
    if (fast == 1)
        return 0;
    if (fast < 0) {
        lw_set_err(err, err_len, "out of memory");
        return fast;
    }
#endif
    z_stream z;
    memset(&z, 0, sizeof(z));
    int rc = 0;
    unsigned char *chunk = malloc(INFLATE_CHUNK_BYTES);
    if (!chunk) {
        lw_set_err(err, err_len, "out of memory");
        return -ENOMEM;
    }
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        free(chunk);
        lw_set_err(err, err_len, "gzip: cannot initialise zlib");
        return -ENOMEM;
    }
    size_t consumed = 0;
    for (;;) {
        size_t left = in_len - consumed;
        z.next_in = (unsigned char *)(uintptr_t)(in + consumed);
        z.avail_in = left > UINT32_MAX ? UINT32_MAX : (unsigned)left;
        size_t before_in = z.avail_in;
        z.next_out = chunk;
        z.avail_out = (unsigned)INFLATE_CHUNK_BYTES;
        int zr = inflate(&z, Z_NO_FLUSH);
        consumed += before_in - z.avail_in;
        size_t produced = INFLATE_CHUNK_BYTES - z.avail_out;
        if (produced) {
            rc = lw_buf_append(out, chunk, produced);
            if (rc == -E2BIG) {
                lw_set_err(err, err_len, "gzip: decompressed size exceeds %zu bytes",
                            out->max_bytes);
                goto out;
            }
            if (rc) {
                lw_set_err(err, err_len, "out of memory");
                goto out;
            }
        }
        if (zr == Z_STREAM_END) {
            if (consumed == in_len)
                break;
            if (!is_gzip(in + consumed, in_len - consumed)) {
                rc = -EINVAL;
                lw_set_err(err, err_len, "gzip: %zu bytes of trailing garbage after the stream",
                            in_len - consumed);
                goto out;
            }
            inflateReset(&z); /* next member of a multi-member stream */
            continue;
        }
        if (zr == Z_OK)
            continue;
        if (zr == Z_BUF_ERROR && consumed == in_len && produced == 0) {
            rc = -EINVAL;
            lw_set_err(err, err_len,
                        "gzip: unexpected end of stream (input truncated after %zu bytes)", in_len);
            goto out;
        }
        if (zr == Z_BUF_ERROR)
            continue;
        rc = zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
        lw_set_err(err, err_len, "gzip: %s", z.msg ? z.msg : "corrupt stream");
        goto out;
    }
out:
    inflateEnd(&z);
    free(chunk);
    return rc;
}

/* ---- wire format --------------------------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct rd {
    const unsigned char *p;
    const unsigned char *end;
} rd;

static inline int rd_varint(rd *r, uint64_t *v)
{
    const unsigned char *p = r->p;
    if (p < r->end && *p < 0x80) {
        *v = *p;
        r->p = p + 1;
        return 0;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= r->end)
            return -1;
        unsigned char b = *p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *v = x;
            r->p = p;
            return 0;
        }
    }
    return -1;
}

/* Read a tag; 0 at end, 1 with field/wt set, -1 on malformed input. */
static inline int rd_tag(rd *r, uint32_t *field, int *wt)
{
    if (r->p >= r->end)
        return 0;
    uint64_t t;
    if (rd_varint(r, &t) || (t >> 3) == 0 || (t >> 3) > UINT32_MAX)
        return -1;
    *field = (uint32_t)(t >> 3);
    *wt = (int)(t & 7);
    return 1;
}

static inline int rd_len(rd *r, rd *sub)
{
    uint64_t n;
    if (rd_varint(r, &n) || n > (uint64_t)(r->end - r->p))
        return -1;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

static int rd_skip(rd *r, int wt)
{
    uint64_t v;
    rd sub;
    switch (wt) {
    case WT_VARINT: return rd_varint(r, &v);
    case WT_I64:
        if (r->end - r->p < 8)
            return -1;
        r->p += 8;
        return 0;
    case WT_LEN: return rd_len(r, &sub);
    case WT_I32:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default: return -1;
    }
}

/* What validation needs to know of the samples, gathered while decoding
 * them: samples come before the locations and strings they refer to, so
 * they cannot be checked as they are read, and checking them afterwards
 * is one more pass over all of their arrays. With these bounds a profile
 * with dense location ids (as Go writes them) is checked in O(1); the
 * precise pass runs only to name the problem. */
typedef struct sample_bounds {
    uint64_t max_location_id_m1; /* max of id - 1, unsigned: an id 0 wraps to the top */
    bool any_location;
    size_t min_values, max_values;
    int64_t max_label_string; /* of key, str and num_unit */
    bool label_string_negative;
} sample_bounds;

typedef struct dec {
    pprof_profile *p;
    char *err;
    size_t err_len;
    /* One sample's arrays while it is read (one pass), then copied to the
     * arena in one piece, exactly sized. */
    uint64_t *loc, *val;
    size_t cap_loc, cap_val;
    pprof_label *lab;
    size_t cap_lab;
    sample_bounds bounds;
} dec;

static void dec_free_scratch(dec *d)
{
    free(d->loc);
    free(d->val);
    free(d->lab);
}

/* Room for `more` entries after n in a scratch array. 0 or -ENOMEM. */
static int scratch_room(void **arr, size_t *cap, size_t n, size_t more, size_t elem)
{
    if (n + more <= *cap)
        return 0;
    size_t want = *cap ? *cap : 32;
    while (want < n + more)
        want *= 2;
    void *q = realloc(*arr, want * elem);
    if (!q)
        return -ENOMEM;
    *arr = q;
    *cap = want;
    return 0;
}

/* Read a repeated varint field occurrence (packed or not) into a scratch
 * array after its *n entries, growing it: a packed field of k bytes holds
 * at most k varints. With max_m1, also keep there the largest value - 1
 * (unsigned: a 0 wraps to the top), for location ids. 0, -1 malformed,
 * -ENOMEM. */
static inline int read_repeated(rd *r, int wt, uint64_t **arr, size_t *cap, size_t *n,
                                uint64_t *max_m1)
{
    uint64_t mx = max_m1 ? *max_m1 : 0;
    size_t k = *n;
    if (wt == WT_VARINT) {
        if (scratch_room((void **)arr, cap, k, 1, sizeof(**arr)))
            return -ENOMEM;
        if (rd_varint(r, &(*arr)[k]))
            return -1;
        mx = (*arr)[k] - 1 > mx ? (*arr)[k] - 1 : mx;
        k++;
    } else {
        rd sub;
        if (wt != WT_LEN || rd_len(r, &sub))
            return -1;
        if (scratch_room((void **)arr, cap, k, (size_t)(sub.end - sub.p), sizeof(**arr)))
            return -ENOMEM;
        /* Packed: the hot loop of decoding (location ids and values). */
        uint64_t *a = *arr;
        while (sub.p < sub.end) {
            uint64_t v;
            if (*sub.p < 0x80) {
                v = *sub.p++;
            } else if (sub.end - sub.p >= 2 && sub.p[1] < 0x80) {
                /* Two bytes: location ids past 127, most values. */
                v = (uint64_t)(sub.p[0] & 0x7f) | (uint64_t)sub.p[1] << 7;
                sub.p += 2;
            } else if (rd_varint(&sub, &v)) {
                return -1;
            }
            a[k++] = v;
            mx = v - 1 > mx ? v - 1 : mx;
        }
    }
    *n = k;
    if (max_m1)
        *max_m1 = mx;
    return 0;
}

#define MALFORMED(what)                                                                         \
    do {                                                                                        \
        lw_set_err(d->err, d->err_len, "protobuf: malformed %s", what);                       \
        return -EINVAL;                                                                         \
    } while (0)

static int dec_value_type(dec *d, rd r, pprof_value_type *vt)
{
    uint32_t f;
    int wt, t;
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        uint64_t v;
        if ((f == 1 || f == 2) && wt == WT_VARINT) {
            if (rd_varint(&r, &v))
                MALFORMED("value type");
            if (f == 1)
                vt->type = (int64_t)v;
            else
                vt->unit = (int64_t)v;
        } else if (rd_skip(&r, wt)) {
            MALFORMED("value type");
        }
    }
    if (t < 0)
        MALFORMED("value type");
    return 0;
}

static int dec_label(dec *d, rd r, pprof_label *l)
{
    uint32_t f;
    int wt, t;
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        uint64_t v;
        if (f >= 1 && f <= 4 && wt == WT_VARINT) {
            if (rd_varint(&r, &v))
                MALFORMED("label");
            switch (f) {
            case 1: l->key = (int64_t)v; break;
            case 2: l->str = (int64_t)v; break;
            case 3: l->num = (int64_t)v; break;
            default: l->num_unit = (int64_t)v; break;
            }
        } else if (rd_skip(&r, wt)) {
            MALFORMED("label");
        }
    }
    if (t < 0)
        MALFORMED("label");
    return 0;
}

static int dec_sample(dec *d, rd r, pprof_sample *s)
{
    size_t n_loc = 0, n_val = 0, n_lab = 0;
    uint32_t f;
    int wt, t;
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        int bad;
        rd sub;
        if (f == 1) {
            bad = read_repeated(&r, wt, &d->loc, &d->cap_loc, &n_loc, &d->bounds.max_location_id_m1);
        } else if (f == 2) {
            bad = read_repeated(&r, wt, &d->val, &d->cap_val, &n_val, NULL);
        } else if (f == 3 && wt == WT_LEN) {
            if (scratch_room((void **)&d->lab, &d->cap_lab, n_lab, 1, sizeof(*d->lab)))
                goto nomem;
            bad = rd_len(&r, &sub);
            if (!bad) {
                pprof_label *l = &d->lab[n_lab++];
                l->key = l->str = l->num = l->num_unit = 0; /* not memset: a call per label */
                int rc = dec_label(d, sub, l);
                if (rc)
                    return rc;
            }
        } else {
            bad = rd_skip(&r, wt);
        }
        if (bad == -ENOMEM)
            goto nomem;
        if (bad)
            MALFORMED("sample");
    }
    if (t < 0)
        MALFORMED("sample");
    memset(s, 0, sizeof(*s));
    size_t bytes = (n_loc + n_val) * sizeof(uint64_t) + n_lab * sizeof(pprof_label);
    unsigned char *m = bytes ? pprof__arena_alloc(&d->p->internal->arena, bytes, false) : NULL;
    if (bytes && !m)
        goto nomem;
    sample_bounds *b = &d->bounds;
    if (n_loc) {
        s->location_ids = memcpy(m, d->loc, n_loc * sizeof(uint64_t));
        s->n_locations = n_loc;
        m += n_loc * sizeof(uint64_t);
        b->any_location = true;
    }
    if (n_val) {
        s->values = memcpy(m, d->val, n_val * sizeof(uint64_t));
        s->n_values = n_val;
        m += n_val * sizeof(uint64_t);
    }
    if (n_val < b->min_values)
        b->min_values = n_val;
    if (n_val > b->max_values)
        b->max_values = n_val;
    if (n_lab) {
        s->labels = memcpy(m, d->lab, n_lab * sizeof(pprof_label));
        s->n_labels = n_lab;
        for (size_t i = 0; i < n_lab; i++) {
            const pprof_label *l = &d->lab[i];
            int64_t mx = l->key > l->str ? l->key : l->str;
            mx = l->num_unit > mx ? l->num_unit : mx;
            if (mx > b->max_label_string)
                b->max_label_string = mx;
            b->label_string_negative |= (l->key | l->str | l->num_unit) < 0;
        }
    }
    return 0;
nomem:
    lw_set_err(d->err, d->err_len, "out of memory");
    return -ENOMEM;
}

static int dec_mapping(dec *d, rd r, pprof_mapping *m)
{
    uint32_t f;
    int wt, t;
    memset(m, 0, sizeof(*m));
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        uint64_t v;
        if (f >= 1 && f <= 10 && wt == WT_VARINT) {
            if (rd_varint(&r, &v))
                MALFORMED("mapping");
            switch (f) {
            case 1: m->id = v; break;
            case 2: m->memory_start = v; break;
            case 3: m->memory_limit = v; break;
            case 4: m->file_offset = v; break;
            case 5: m->filename = (int64_t)v; break;
            case 6: m->build_id = (int64_t)v; break;
            case 7: m->has_functions = v != 0; break;
            case 8: m->has_filenames = v != 0; break;
            case 9: m->has_line_numbers = v != 0; break;
            default: m->has_inline_frames = v != 0; break;
            }
        } else if (rd_skip(&r, wt)) {
            MALFORMED("mapping");
        }
    }
    if (t < 0)
        MALFORMED("mapping");
    return 0;
}

static int dec_line(dec *d, rd r, pprof_line *l)
{
    uint32_t f;
    int wt, t;
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        uint64_t v;
        if (f >= 1 && f <= 3 && wt == WT_VARINT) {
            if (rd_varint(&r, &v))
                MALFORMED("line");
            if (f == 1)
                l->function_id = v;
            else if (f == 2)
                l->line = (int64_t)v;
            else
                l->column = (int64_t)v;
        } else if (rd_skip(&r, wt)) {
            MALFORMED("line");
        }
    }
    if (t < 0)
        MALFORMED("line");
    return 0;
}

static int dec_location(dec *d, rd r, pprof_location *l)
{
    uint32_t f;
    int wt, t;
    size_t n_lines = 0;
    rd r2 = r;
    while ((t = rd_tag(&r2, &f, &wt)) > 0) {
        if (f == 4 && wt == WT_LEN)
            n_lines++;
        if (rd_skip(&r2, wt))
            MALFORMED("location");
    }
    if (t < 0)
        MALFORMED("location");
    memset(l, 0, sizeof(*l));
    if (n_lines &&
        !(l->lines = pprof__arena_alloc(&d->p->internal->arena, n_lines * sizeof(pprof_line), true))) {
        lw_set_err(d->err, d->err_len, "out of memory");
        return -ENOMEM;
    }
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        uint64_t v;
        rd sub;
        if (f == 4 && wt == WT_LEN) {
            if (rd_len(&r, &sub))
                MALFORMED("location");
            int rc = dec_line(d, sub, &l->lines[l->n_lines++]);
            if (rc)
                return rc;
        } else if (f >= 1 && f <= 5 && f != 4 && wt == WT_VARINT) {
            if (rd_varint(&r, &v))
                MALFORMED("location");
            if (f == 1)
                l->id = v;
            else if (f == 2)
                l->mapping_id = v;
            else if (f == 3)
                l->address = v;
            else
                l->is_folded = v != 0;
        } else if (rd_skip(&r, wt)) {
            MALFORMED("location");
        }
    }
    return 0;
}

static int dec_function(dec *d, rd r, pprof_function *fn)
{
    uint32_t f;
    int wt, t;
    memset(fn, 0, sizeof(*fn));
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        uint64_t v;
        if (f >= 1 && f <= 5 && wt == WT_VARINT) {
            if (rd_varint(&r, &v))
                MALFORMED("function");
            switch (f) {
            case 1: fn->id = v; break;
            case 2: fn->name = (int64_t)v; break;
            case 3: fn->system_name = (int64_t)v; break;
            case 4: fn->filename = (int64_t)v; break;
            default: fn->start_line = (int64_t)v; break;
            }
        } else if (rd_skip(&r, wt)) {
            MALFORMED("function");
        }
    }
    if (t < 0)
        MALFORMED("function");
    return 0;
}

#define N_TOP_FIELDS 16

static int dec_profile(dec *d, const unsigned char *data, size_t len)
{
    pprof_profile *p = d->p;
    struct pprof_internal *in = p->internal;
    size_t count[N_TOP_FIELDS] = {0};
    rd r = {data, data + len};
    uint32_t f;
    int wt, t;

    /* Pass 1: count repeated messages so every vector is allocated once
     * (comments, packed varints, grow as they are read). */
    const unsigned char *field_start = r.p;
    int bad = 0;
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        if (f < N_TOP_FIELDS && f != 13 && wt == WT_LEN) {
            rd sub;
            bad = rd_len(&r, &sub);
            count[f]++;
        } else {
            bad = rd_skip(&r, wt);
        }
        if (bad)
            break;
        field_start = r.p;
    }
    if (t < 0 || bad) {
        lw_set_err(d->err, d->err_len, "protobuf: malformed profile (field at byte %zu of %zu)",
                    (size_t)(field_start - data), len);
        return -EINVAL;
    }
    if (pprof__grow((void **)&p->sample_types, &in->cap_sample_types, count[1], sizeof(pprof_value_type)) ||
        pprof__grow((void **)&p->samples, &in->cap_samples, count[2], sizeof(pprof_sample)) ||
        pprof__grow((void **)&p->mappings, &in->cap_mappings, count[3], sizeof(pprof_mapping)) ||
        pprof__grow((void **)&p->locations, &in->cap_locations, count[4], sizeof(pprof_location)) ||
        pprof__grow((void **)&p->functions, &in->cap_functions, count[5], sizeof(pprof_function)) ||
        pprof__grow((void **)&p->strings, &in->cap_strings, count[6], sizeof(char *))) {
        lw_set_err(d->err, d->err_len, "out of memory");
        return -ENOMEM;
    }
    p->n_strings = 0; /* the decoded table replaces pprof_new()'s "" */

    /* Pass 2: decode. */
    r.p = data;
    while ((t = rd_tag(&r, &f, &wt)) > 0) {
        int rc = 0;
        rd sub;
        uint64_t v;
        if (f == 13) {
            int rr = read_repeated(&r, wt, (uint64_t **)&p->comments, &in->cap_comments,
                                   &p->n_comments, NULL);
            if (rr == -ENOMEM) {
                lw_set_err(d->err, d->err_len, "out of memory");
                return -ENOMEM;
            }
            if (rr)
                MALFORMED("comment");
            continue;
        }
        if (f < N_TOP_FIELDS && wt == WT_LEN) {
            if (rd_len(&r, &sub))
                MALFORMED("profile");
            switch (f) {
            case 1:
                memset(&p->sample_types[p->n_sample_types], 0, sizeof(pprof_value_type));
                rc = dec_value_type(d, sub, &p->sample_types[p->n_sample_types++]);
                break;
            case 2: rc = dec_sample(d, sub, &p->samples[p->n_samples++]); break;
            case 3: rc = dec_mapping(d, sub, &p->mappings[p->n_mappings++]); break;
            case 4: rc = dec_location(d, sub, &p->locations[p->n_locations++]); break;
            case 5: rc = dec_function(d, sub, &p->functions[p->n_functions++]); break;
            case 6:
                if (pprof__append_string(p, (const char *)sub.p, (size_t)(sub.end - sub.p)) < 0) {
                    lw_set_err(d->err, d->err_len, "out of memory");
                    rc = -ENOMEM;
                }
                break;
            case 11: rc = dec_value_type(d, sub, &p->period_type); break;
            default: break; /* doc_url and unknown fields */
            }
            if (rc)
                return rc;
            continue;
        }
        if (wt == WT_VARINT && f >= 7 && f <= 14) {
            if (rd_varint(&r, &v))
                MALFORMED("profile");
            switch (f) {
            case 7: p->drop_frames = (int64_t)v; break;
            case 8: p->keep_frames = (int64_t)v; break;
            case 9: p->time_nanos = (int64_t)v; break;
            case 10: p->duration_nanos = (int64_t)v; break;
            case 12: p->period = (int64_t)v; break;
            case 14: p->default_sample_type = (int64_t)v; break;
            default: break;
            }
            continue;
        }
        if (rd_skip(&r, wt))
            MALFORMED("profile");
    }
    return 0;
}

/* ---- validation ------------------------------------------------------------------ */

typedef struct vctx {
    const pprof_profile *p;
    char *err;
    size_t err_len;
} vctx;

static int check_str(vctx *v, int64_t idx, const char *what, size_t i, const char *field)
{
    if (idx >= 0 && (uint64_t)idx < v->p->n_strings)
        return 0;
    if (i == SIZE_MAX)
        lw_set_err(v->err, v->err_len, "%s: string index %" PRId64
                    " out of range (string_table has %zu entries)", what, idx, v->p->n_strings);
    else
        lw_set_err(v->err, v->err_len, "%s[%zu].%s: string index %" PRId64
                    " out of range (string_table has %zu entries)", what, i, field, idx,
                    v->p->n_strings);
    return -EINVAL;
}

/* Check ids are non-zero and unique. Ids 1..n in order (what Go and most
 * writers produce) need no table: *dense is set and m stays empty; otherwise
 * m maps every id to its index. */
static int check_ids(vctx *v, const void *arr, size_t n, size_t elem, const char *what,
                     pprof__idmap *m, bool *dense)
{
    *dense = true;
    for (size_t i = 0; i < n && *dense; i++) {
        uint64_t id;
        memcpy(&id, (const char *)arr + i * elem, sizeof(id));
        *dense = id == i + 1;
    }
    if (*dense)
        return 0;
    if (pprof__idmap_reserve(m, n)) {
        lw_set_err(v->err, v->err_len, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        uint32_t prev;
        memcpy(&id, (const char *)arr + i * elem, sizeof(id));
        if (id == 0) {
            lw_set_err(v->err, v->err_len, "%s[%zu]: id is 0 (ids must be non-zero)", what, i);
            return -EINVAL;
        }
        int rc = pprof__idmap_put(m, id, (uint32_t)i, &prev);
        if (rc == -EEXIST) {
            lw_set_err(v->err, v->err_len, "duplicate %s id %" PRIu64 " (%s[%u] and %s[%zu])",
                        what, id, what, prev, what, i);
            return -EINVAL;
        }
        if (rc) {
            lw_set_err(v->err, v->err_len, "out of memory");
            return rc;
        }
    }
    return 0;
}

static inline bool id_exists(const pprof__idmap *m, bool dense, size_t n, uint64_t id)
{
    uint32_t idx;
    if (dense)
        return id >= 1 && id <= n;
    return pprof__idmap_get(m, id, &idx);
}

/* Whether bounds gathered while decoding prove every sample valid: dense
 * location ids in range, n_sample_types values each, label strings in
 * range. */
static bool samples_within(const pprof_profile *p, const sample_bounds *b, bool dense_locations)
{
    if (p->n_samples == 0)
        return true;
    return dense_locations && (!b->any_location || b->max_location_id_m1 < p->n_locations) &&
           b->min_values == p->n_sample_types && b->max_values == p->n_sample_types &&
           !b->label_string_negative && (uint64_t)b->max_label_string < p->n_strings;
}

/* maps: mapping, function, location id tables to fill (empty on entry).
 * bounds: the decoder's, or NULL to check every sample. */
static int validate(const pprof_profile *p, const sample_bounds *bounds, pprof__idmap maps[3],
                    bool dense[3], char *err, size_t err_len)
{
    vctx v = {p, err, err_len};
    vctx *vp = &v;
    int rc;
    if (p->n_strings == 0) {
        lw_set_err(err, err_len, "string_table is empty (string_table[0] must be \"\")");
        return -EINVAL;
    }
    if (p->strings[0] && p->strings[0][0] != '\0') {
        lw_set_err(err, err_len, "string_table[0] must be empty, got \"%.40s\"", p->strings[0]);
        return -EINVAL;
    }
    for (size_t i = 0; i < p->n_sample_types; i++)
        if ((rc = check_str(vp, p->sample_types[i].type, "sample_type", i, "type")) ||
            (rc = check_str(vp, p->sample_types[i].unit, "sample_type", i, "unit")))
            return rc;
    if ((rc = check_str(vp, p->period_type.type, "period_type.type", SIZE_MAX, NULL)) ||
        (rc = check_str(vp, p->period_type.unit, "period_type.unit", SIZE_MAX, NULL)) ||
        (rc = check_str(vp, p->drop_frames, "drop_frames", SIZE_MAX, NULL)) ||
        (rc = check_str(vp, p->keep_frames, "keep_frames", SIZE_MAX, NULL)) ||
        (rc = check_str(vp, p->default_sample_type, "default_sample_type", SIZE_MAX, NULL)))
        return rc;
    for (size_t i = 0; i < p->n_comments; i++)
        if ((rc = check_str(vp, p->comments[i], "comment", i, "index")))
            return rc;
    for (size_t i = 0; i < p->n_mappings; i++)
        if ((rc = check_str(vp, p->mappings[i].filename, "mapping", i, "filename")) ||
            (rc = check_str(vp, p->mappings[i].build_id, "mapping", i, "build_id")))
            return rc;
    for (size_t i = 0; i < p->n_functions; i++)
        if ((rc = check_str(vp, p->functions[i].name, "function", i, "name")) ||
            (rc = check_str(vp, p->functions[i].system_name, "function", i, "system_name")) ||
            (rc = check_str(vp, p->functions[i].filename, "function", i, "filename")))
            return rc;
    if ((rc = check_ids(vp, p->mappings, p->n_mappings, sizeof(*p->mappings), "mapping", &maps[0],
                        &dense[0])) ||
        (rc = check_ids(vp, p->functions, p->n_functions, sizeof(*p->functions), "function",
                        &maps[1], &dense[1])) ||
        (rc = check_ids(vp, p->locations, p->n_locations, sizeof(*p->locations), "location",
                        &maps[2], &dense[2])))
        return rc;
    for (size_t i = 0; i < p->n_locations; i++) {
        const pprof_location *l = &p->locations[i];
        if (l->mapping_id && !id_exists(&maps[0], dense[0], p->n_mappings, l->mapping_id)) {
            lw_set_err(err, err_len, "location id %" PRIu64 ": mapping id %" PRIu64
                        " does not exist", l->id, l->mapping_id);
            return -EINVAL;
        }
        for (size_t j = 0; j < l->n_lines; j++) {
            if (!id_exists(&maps[1], dense[1], p->n_functions, l->lines[j].function_id)) {
                lw_set_err(err, err_len, "location id %" PRIu64 ": line %zu: function id %" PRIu64
                            " does not exist", l->id, j, l->lines[j].function_id);
                return -EINVAL;
            }
        }
    }
    if (bounds && samples_within(p, bounds, dense[2]))
        return 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        const pprof_sample *s = &p->samples[i];
        if (s->n_values != p->n_sample_types) {
            lw_set_err(err, err_len, "sample %zu: has %zu values, but the profile has %zu sample types",
                        i, s->n_values, p->n_sample_types);
            return -EINVAL;
        }
        for (size_t j = 0; j < s->n_locations; j++) {
            if (!id_exists(&maps[2], dense[2], p->n_locations, s->location_ids[j])) {
                lw_set_err(err, err_len, "sample %zu: location id %" PRIu64 " does not exist", i,
                            s->location_ids[j]);
                return -EINVAL;
            }
        }
        for (size_t j = 0; j < s->n_labels; j++)
            if ((rc = check_str(vp, s->labels[j].key, "sample label", i, "key")) ||
                (rc = check_str(vp, s->labels[j].str, "sample label", i, "str")) ||
                (rc = check_str(vp, s->labels[j].num_unit, "sample label", i, "num_unit")))
                return rc;
    }
    return 0;
}

int pprof_validate(const pprof_profile *p, char *err, size_t err_len)
{
    pprof__idmap maps[3];
    bool dense[3];
    memset(maps, 0, sizeof(maps));
    int rc = validate(p, NULL, maps, dense, err, err_len);
    for (int i = 0; i < 3; i++)
        pprof__idmap_free(&maps[i]);
    return rc;
}

/* ---- decode ------------------------------------------------------------------------ */

static uint64_t max_key(const pprof__idmap *m)
{
    uint64_t mx = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] > mx)
            mx = m->keys[i];
    return mx;
}

int pprof_decode(const void *data, size_t len, const pprof_limits *limits, pprof_profile **out,
                 char *err, size_t err_len)
{
    size_t max_in = limits ? limits->max_compressed_bytes : PPROF_DEFAULT_MAX_COMPRESSED_BYTES;
    size_t max_out = limits ? limits->max_decompressed_bytes : PPROF_DEFAULT_MAX_DECOMPRESSED_BYTES;
    const unsigned char *d = data;
    lw_buf bufs[MAX_GZIP_LAYERS];
    pprof_profile *p = NULL;
    int rc = 0;
    for (int i = 0; i < MAX_GZIP_LAYERS; i++)
        lw_buf_init(&bufs[i], max_out);
    *out = NULL;
    if (len > max_in) {
        lw_set_err(err, err_len, "profile is %zu bytes, over the cap of %zu bytes", len, max_in);
        rc = -E2BIG;
        goto out;
    }
    if (len == 0 || !d) {
        lw_set_err(err, err_len, "empty input");
        rc = -EINVAL;
        goto out;
    }
    for (int layer = 0; layer < MAX_GZIP_LAYERS && is_gzip(d, len); layer++) {
        rc = gunzip(d, len, &bufs[layer], err, err_len);
        if (rc)
            goto out;
        if (layer > 0)
            lw_buf_cleanup(&bufs[layer - 1]);
        d = (const unsigned char *)bufs[layer].data;
        len = bufs[layer].len;
        if (len == 0) {
            lw_set_err(err, err_len, "gzip: stream decompresses to nothing");
            rc = -EINVAL;
            goto out;
        }
    }
    if (is_gzip(d, len)) {
        lw_set_err(err, err_len, "gzip: more than %d nested gzip layers", MAX_GZIP_LAYERS);
        rc = -EINVAL;
        goto out;
    }
    p = pprof_new();
    if (!p) {
        lw_set_err(err, err_len, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    dec dc = {.p = p, .err = err, .err_len = err_len, .bounds = {.min_values = SIZE_MAX}};
    rc = dec_profile(&dc, d, len);
    dec_free_scratch(&dc);
    if (rc)
        goto out;
    struct pprof_internal *in = p->internal;
    pprof__idmap maps[3] = {in->mapping_ids, in->function_ids, in->location_ids};
    bool dense[3];
    rc = validate(p, &dc.bounds, maps, dense, err, err_len);
    in->mapping_ids = maps[0];
    in->function_ids = maps[1];
    in->location_ids = maps[2];
    if (rc)
        goto out;
    /* Adopt the tables validation built; dense ids need none until the
     * builder API is used (lookups try index id-1 first). */
    if (!dense[0]) {
        in->n_mappings_indexed = p->n_mappings;
        in->max_mapping_id = max_key(&in->mapping_ids);
    }
    if (!dense[1]) {
        in->n_functions_indexed = p->n_functions;
        in->max_function_id = max_key(&in->function_ids);
    }
    if (!dense[2]) {
        in->n_locations_indexed = p->n_locations;
        in->max_location_id = max_key(&in->location_ids);
    }
    *out = p;
    p = NULL;
out:
    pprof_free(p);
    for (int i = 0; i < MAX_GZIP_LAYERS; i++)
        lw_buf_cleanup(&bufs[i]);
    return rc;
}
