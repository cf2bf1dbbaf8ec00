/* render.c — text views of a profile: go tool pprof's -top table, folded stacks, JSON.
 *
 * Values are formatted with the rules of pprof's measurement package
 * (ScaledLabel with output unit "minimum": memory in B/kB/MB/GB/TB/PB with
 * 1024 steps, time in ns/us/ms/s/hrs, other units as plain numbers, "%.2f"
 * with a trailing ".00" dropped), percentages with its Percentage(). The top
 * table aggregates by function name like `-top` at the default "functions"
 * granularity: flat goes to the leaf frame (inlined frames are frames),
 * cum to every function on the stack, once per sample even under
 * recursion. The total is pprof's: the sum of absolute sample values, or,
 * for a diff profile, of the base samples (label pprof::base="true").
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- values ------------------------------------------------------------------ */

typedef struct unit_def {
    const char *name;    /* canonical, as printed */
    const char *aliases; /* space-separated, lower case */
    double factor;       /* in base units (bytes, nanoseconds) */
} unit_def;

static const unit_def memory_units[] = {
    {"B", "b byte", 1},
    {"kB", "kb kbyte kilobyte", 1024.0},
    {"MB", "mb mbyte megabyte", 1048576.0},
    {"GB", "gb gbyte gigabyte", 1073741824.0},
    {"TB", "tb tbyte terabyte", 1099511627776.0},
    {"PB", "pb pbyte petabyte", 1125899906842624.0},
};

static const unit_def time_units[] = {
    {"ns", "ns nanosecond", 1},
    {"us", "\xce\xbcs us microsecond", 1e3},
    {"ms", "ms millisecond", 1e6},
    {"s", "s sec second", 1e9},
    {"hrs", "hour hr", 3600e9},
};

static bool has_alias(const char *aliases, const char *u)
{
    size_t n = strlen(u);
    for (const char *a = aliases; *a;) {
        const char *end = strchr(a, ' ');
        size_t len = end ? (size_t)(end - a) : strlen(a);
        if (len == n && memcmp(a, u, n) == 0)
            return true;
        if (!end)
            break;
        a = end + 1;
    }
    return false;
}

/* pprof's sniffUnit: lower case, a plural "s" dropped from units longer than 2. */
static const unit_def *sniff(const char *unit, const unit_def *units, size_t n)
{
    char u[32];
    size_t len = strlen(unit);
    if (len == 0 || len >= sizeof(u))
        return NULL;
    for (size_t i = 0; i <= len; i++)
        u[i] = (char)tolower((unsigned char)unit[i]);
    if (len > 2 && u[len - 1] == 's')
        u[len - 1] = '\0';
    for (size_t i = 0; i < n; i++)
        if (has_alias(units[i].aliases, u))
            return &units[i];
    return NULL;
}

/* pprof's measurement.Scale: value in `unit` converted to `to` (NULL means
 * "minimum": the largest unit giving a value >= 1); returns the unit name. */
static const char *scale(int64_t value, const char *unit, const char *to, double *out)
{
    if (value < 0 && value != INT64_MIN) {
        const char *u = scale(-value, unit, to, out);
        *out = -*out;
        return u;
    }
    struct {
        const unit_def *units;
        size_t n;
        const unit_def *def;
    } kinds[] = {{memory_units, 6, &memory_units[0]}, {time_units, 5, &time_units[3]}};
    for (size_t k = 0; k < 2; k++) {
        const unit_def *from = sniff(unit, kinds[k].units, kinds[k].n);
        if (!from)
            continue;
        double v = (double)value * from->factor;
        if (to) {
            const unit_def *t = sniff(to, kinds[k].units, kinds[k].n);
            if (!t)
                t = kinds[k].def;
            *out = v / t->factor;
            return t->name;
        }
        double f = 0;
        const char *name = NULL;
        for (size_t i = 0; i < kinds[k].n; i++) {
            if (kinds[k].units[i].factor >= f && v / kinds[k].units[i].factor >= 1.0) {
                f = kinds[k].units[i].factor;
                name = kinds[k].units[i].name;
            }
        }
        if (!name) {
            *out = v / kinds[k].def->factor;
            return kinds[k].def->name;
        }
        *out = v / f;
        return name;
    }
    *out = (double)value;
    if (!to || !strcmp(to, "count") || !strcmp(to, "sample") || !strcmp(to, "unit"))
        return "";
    return to;
}

/* pprof's ScaledLabel. */
static const char *scaled_label(int64_t value, const char *unit, const char *to, char *buf,
                                size_t buf_len)
{
    double v;
    const char *u = scale(value, unit ? unit : "", to, &v);
    char num[64];
    snprintf(num, sizeof(num), "%.2f", v);
    size_t n = strlen(num);
    if (n > 3 && strcmp(num + n - 3, ".00") == 0)
        num[n - 3] = '\0';
    if (strcmp(num, "0") == 0 || strcmp(num, "-0") == 0)
        snprintf(buf, buf_len, "0");
    else
        snprintf(buf, buf_len, "%s%s", num, u);
    return buf;
}

const char *pprof_format_value(int64_t value, const char *unit, char *buf, size_t buf_len)
{
    return scaled_label(value, unit, NULL, buf, buf_len);
}

/* pprof's measurement.Percentage. */
static const char *percentage(int64_t value, int64_t total, char *buf, size_t len)
{
    double ratio = 0;
    if (total != 0)
        ratio = fabs((double)value / (double)total) * 100;
    if (ratio >= 99.95 && ratio <= 100.05)
        snprintf(buf, len, "  100%%");
    else if (ratio >= 1.0)
        snprintf(buf, len, "%5.2f%%", ratio);
    else
        snprintf(buf, len, "%5.2g%%", ratio);
    return buf;
}

/* ---- frames ----------------------------------------------------------------- */

typedef struct frames {
    pprof_frame *f;
    bool *inlined; /* frame is inlined into its caller (not its location's last line) */
    size_t cap, cap_inlined;
    size_t n;
} frames;

static int load_frames(const pprof_profile *p, const pprof_sample *s, frames *fr)
{
    size_t depth = pprof_sample_depth(p, s);
    if (pprof__grow((void **)&fr->f, &fr->cap, depth ? depth : 1, sizeof(pprof_frame)) ||
        pprof__grow((void **)&fr->inlined, &fr->cap_inlined, depth ? depth : 1, sizeof(bool)))
        return -ENOMEM;
    fr->n = pprof_sample_frames(p, s, fr->f, fr->cap);
    size_t k = 0;
    for (size_t i = 0; i < s->n_locations && k < fr->n; i++) {
        ptrdiff_t li = pprof__find_location(p, s->location_ids[i]);
        size_t n = li < 0 || p->locations[li].n_lines == 0 ? 1 : p->locations[li].n_lines;
        for (size_t j = 0; j < n && k < fr->n; j++)
            fr->inlined[k++] = j + 1 < n;
    }
    return 0;
}

static void frames_free(frames *fr)
{
    free(fr->f);
    free(fr->inlined);
}

/* The printed name of a frame: the function, else the address. */
static const char *frame_name(const pprof_frame *f, char *hex, size_t len)
{
    if (f->function[0])
        return f->function;
    snprintf(hex, len, "0x%" PRIx64, f->address);
    return hex;
}

static bool is_base_sample(const pprof_profile *p, const pprof_sample *s)
{
    for (size_t j = 0; j < s->n_labels; j++)
        if (s->labels[j].str && strcmp(pprof__str(p, s->labels[j].key), "pprof::base") == 0 &&
            strcmp(pprof__str(p, s->labels[j].str), "true") == 0)
            return true;
    return false;
}

static int64_t abs64(int64_t v)
{
    return v < 0 ? (int64_t)(0 - (uint64_t)v) : v;
}

/* Go's int64(float64) conversion for in-range values (truncation). */
static int64_t round_to_zero(double v)
{
    if (!(v > -9223372036854775808.0 && v < 9223372036854775807.0))
        return 0;
    return (int64_t)v;
}

/* pprof's computeTotal without mean division. */
static int64_t report_total(const pprof_profile *p, int si)
{
    int64_t total = 0, diff_total = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        const pprof_sample *s = &p->samples[i];
        if ((size_t)si >= s->n_values)
            continue;
        int64_t v = abs64(s->values[si]);
        total = pprof__add(total, v);
        if (is_base_sample(p, s))
            diff_total = pprof__add(diff_total, v);
    }
    return diff_total > 0 ? diff_total : total;
}

/* ---- top -------------------------------------------------------------------- */

typedef struct node {
    const char *name; /* NULL: unsymbolized, see hex */
    char hex[24];
    int64_t flat, cum;
    size_t stamp;                /* last sample (+1) that added to cum */
    bool inline_in, noinline_in; /* seen called inlined / not inlined */
} node;

/* A caller -> callee edge between nodes; pprof labels a node "(inline)"
 * from its incoming edges that survive its edge trimming. */
typedef struct edge {
    uint32_t src, dst;
    int64_t weight;
    size_t stamp; /* last sample (+1) that added to weight */
    bool inlined; /* every occurrence was an inlined call */
} edge;

typedef struct nodes {
    node *v;
    size_t n, cap;
    pprof__hmap map;
    edge *e;
    size_t n_edges, cap_edges;
    pprof__hmap edge_map;
} nodes;

/* Add v to the edge src -> dst once per sample (pprof's AddToEdgeDiv). */
static int add_edge(nodes *ns, uint32_t src, uint32_t dst, int64_t v, bool inlined, size_t stamp)
{
    uint64_t h = pprof__hash_final(((uint64_t)src << 32 | dst) + 0x51ed27);
    size_t pos = SIZE_MAX;
    uint32_t k;
    while (pprof__hmap_next(&ns->edge_map, h, &pos, &k)) {
        edge *e = &ns->e[k];
        if (e->src == src && e->dst == dst) {
            if (e->stamp != stamp) {
                e->stamp = stamp;
                e->weight = pprof__add(e->weight, v);
            }
            e->inlined = e->inlined && inlined;
            return 0;
        }
    }
    if (pprof__grow((void **)&ns->e, &ns->cap_edges, ns->n_edges + 1, sizeof(edge)) ||
        pprof__hmap_put(&ns->edge_map, h, (uint32_t)ns->n_edges))
        return -ENOMEM;
    ns->e[ns->n_edges++] = (edge){src, dst, v, stamp, inlined};
    return 0;
}

static const char *node_name(const node *n)
{
    return n->name ? n->name : n->hex;
}

static ptrdiff_t node_for(nodes *ns, const pprof_frame *f)
{
    char hex[24];
    const char *name = frame_name(f, hex, sizeof(hex));
    uint64_t h = pprof__hash_final(pprof__hash_bytes(PPROF__HASH_SEED, name, strlen(name)));
    size_t pos = SIZE_MAX;
    uint32_t v;
    while (pprof__hmap_next(&ns->map, h, &pos, &v))
        if (strcmp(node_name(&ns->v[v]), name) == 0)
            return v;
    if (pprof__grow((void **)&ns->v, &ns->cap, ns->n + 1, sizeof(node)) ||
        pprof__hmap_put(&ns->map, h, (uint32_t)ns->n))
        return -ENOMEM;
    node *nd = &ns->v[ns->n];
    memset(nd, 0, sizeof(*nd));
    if (f->function[0])
        nd->name = f->function; /* points into the profile's string table */
    else
        memcpy(nd->hex, hex, sizeof(hex));
    return (ptrdiff_t)ns->n++;
}

static int node_cmp(const void *a, const void *b)
{
    const node *x = a, *y = b;
    int64_t fx = abs64(x->flat), fy = abs64(y->flat);
    if (fx != fy)
        return fx > fy ? -1 : 1;
    int c = strcmp(node_name(x), node_name(y));
    if (c)
        return c;
    int64_t cx = abs64(x->cum), cy = abs64(y->cum);
    return cx > cy ? -1 : cx < cy;
}

/* pprof's selectOutputUnit: one unit for the whole table, chosen from the
 * smallest non-zero node value (scaled by 100 when the largest value needs
 * a bigger unit). NULL keeps "minimum"; the sample unit itself when the
 * values have no unit. */
static const char *output_unit(const node *v, size_t n, const char *unit, int64_t total)
{
    int64_t min_value = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t m = abs64(v[i].flat);
        if (m == 0)
            m = abs64(v[i].cum);
        if (m > 0 && (min_value == 0 || m < min_value))
            min_value = m;
    }
    if (min_value == 0)
        min_value = total;
    double ignored;
    const char *min_unit = scale(min_value, unit, NULL, &ignored);
    const char *max_unit = scale(total, unit, NULL, &ignored);
    const char *u = min_unit;
    if (strcmp(min_unit, max_unit) != 0 && min_value < total / 100 + (total % 100 != 0))
        u = scale(pprof__add(min_value, 0) * 100, unit, NULL, &ignored);
    return u[0] ? u : unit;
}

int pprof_render_top(const pprof_profile *p, int sample_index, size_t max_rows, lw_buf *out)
{
    if (sample_index < 0 || (size_t)sample_index >= p->n_sample_types)
        return -EINVAL;
    nodes ns;
    frames fr;
    memset(&ns, 0, sizeof(ns));
    memset(&fr, 0, sizeof(fr));
    size_t start = out->len;
    int rc = 0;
    for (size_t i = 0; i < p->n_samples && rc == 0; i++) {
        const pprof_sample *s = &p->samples[i];
        if ((size_t)sample_index >= s->n_values || s->values[sample_index] == 0)
            continue;
        int64_t v = s->values[sample_index];
        if ((rc = load_frames(p, s, &fr)))
            break;
        ptrdiff_t callee = -1;
        for (size_t j = 0; j < fr.n && rc == 0; j++) {
            ptrdiff_t k = node_for(&ns, &fr.f[j]);
            if (k < 0) {
                rc = (int)k;
                break;
            }
            if (j == 0)
                ns.v[k].flat = pprof__add(ns.v[k].flat, v);
            if (ns.v[k].stamp != i + 1) {
                ns.v[k].stamp = i + 1;
                ns.v[k].cum = pprof__add(ns.v[k].cum, v);
            }
            if (callee >= 0 && callee != k)
                rc = add_edge(&ns, (uint32_t)k, (uint32_t)callee, v, fr.inlined[j - 1], i + 1);
            callee = k;
        }
    }
    if (rc)
        goto out;
    /* pprof drops edges lighter than 0.1% of the summed flat values before
     * it derives the inline labels. */
    int64_t flat_sum = 0;
    for (size_t k = 0; k < ns.n; k++)
        flat_sum = pprof__add(flat_sum, ns.v[k].flat);
    int64_t edge_cutoff = abs64(round_to_zero((double)flat_sum * 0.001));
    for (size_t k = 0; k < ns.n_edges; k++) {
        const edge *e = &ns.e[k];
        if (abs64(e->weight) < edge_cutoff)
            continue;
        if (e->inlined)
            ns.v[e->dst].inline_in = true;
        else
            ns.v[e->dst].noinline_in = true;
    }
    /* pprof's selectNodesForGraph drops nodes that net out to nothing
     * (flat and cum both 0, as in diffs). Edges keep their node indices, so
     * this happens after the inline labels are derived. */
    size_t kept = 0;
    for (size_t k = 0; k < ns.n; k++)
        if (ns.v[k].flat != 0 || ns.v[k].cum != 0)
            ns.v[kept++] = ns.v[k];
    ns.n = kept;
    if (ns.n > 1)
        qsort(ns.v, ns.n, sizeof(node), node_cmp);
    size_t rows = max_rows && max_rows < ns.n ? max_rows : ns.n;
    const char *unit = pprof__str(p, p->sample_types[sample_index].unit);
    int64_t total = report_total(p, sample_index);
    const char *to = rows ? output_unit(ns.v, rows, unit, total) : NULL;
    int64_t shown = 0;
    for (size_t i = 0; i < rows; i++)
        shown = pprof__add(shown, ns.v[i].flat);
    char a[64], b[64], d[32], e[32], f[32];
    rc = lw_buf_printf(out, "Type: %s\n", pprof__str(p, p->sample_types[sample_index].type));
    if (rc == 0) {
        const char *pct = percentage(shown, total, d, sizeof(d));
        while (*pct == ' ')
            pct++;
        rc = lw_buf_printf(out, "Showing nodes accounting for %s, %s of %s total\n",
                           scaled_label(shown, unit, to, a, sizeof(a)), pct,
                           scaled_label(total, unit, to, b, sizeof(b)));
    }
    if (rc == 0 && rows < ns.n)
        rc = lw_buf_printf(out, "Showing top %zu nodes out of %zu\n", rows, ns.n);
    if (rc == 0)
        rc = lw_buf_printf(out, "%10s %5s%% %5s%% %10s %5s%%\n", "flat", "flat", "sum", "cum", "cum");
    int64_t sum = 0;
    for (size_t i = 0; i < rows && rc == 0; i++) {
        const node *nd = &ns.v[i];
        sum = pprof__add(sum, nd->flat);
        rc = lw_buf_printf(out, "%10s %s %s %10s %s  %s%s\n", scaled_label(nd->flat, unit, to, a, sizeof(a)),
                           percentage(nd->flat, total, d, sizeof(d)),
                           percentage(sum, total, e, sizeof(e)),
                           scaled_label(nd->cum, unit, to, b, sizeof(b)),
                           percentage(nd->cum, total, f, sizeof(f)), node_name(nd),
                           !nd->inline_in ? "" : nd->noinline_in ? " (partial-inline)" : " (inline)");
    }
out:
    if (rc && out->len > start) {
        out->len = start;
        out->data[start] = '\0';
    }
    free(ns.v);
    free(ns.e);
    pprof__hmap_free(&ns.map);
    pprof__hmap_free(&ns.edge_map);
    frames_free(&fr);
    return rc;
}

/* ---- folded ------------------------------------------------------------------ */

typedef struct fold {
    size_t off, len;  /* of the stack text in the pool */
    const char *text; /* pool.data + off, set once the pool stops growing */
    int64_t value;
} fold;

typedef struct folds {
    fold *v;
    size_t n, cap;
    lw_buf pool;
} folds;

/* Text at off in the pool; the pool has no memory yet while every stack so
 * far was empty (Go goroutine profiles have empty-stack samples). */
static const char *pool_at(const lw_buf *pool, size_t off)
{
    return pool->data ? pool->data + off : "";
}

static int fold_cmp(const void *a, const void *b)
{
    const fold *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

int pprof_render_folded(const pprof_profile *p, int sample_index, lw_buf *out)
{
    if (sample_index < 0 || (size_t)sample_index >= p->n_sample_types)
        return -EINVAL;
    folds fs;
    frames fr;
    pprof__hmap map;
    memset(&fs, 0, sizeof(fs));
    memset(&fr, 0, sizeof(fr));
    memset(&map, 0, sizeof(map));
    lw_buf_init(&fs.pool, out->max_bytes);
    size_t start = out->len;
    int rc = 0;
    for (size_t i = 0; i < p->n_samples && rc == 0; i++) {
        const pprof_sample *s = &p->samples[i];
        if ((size_t)sample_index >= s->n_values || s->values[sample_index] == 0)
            continue;
        if ((rc = load_frames(p, s, &fr)))
            break;
        size_t off = fs.pool.len;
        for (size_t j = fr.n; j-- > 0 && rc == 0;) {
            char hex[24];
            if (j + 1 < fr.n)
                rc = lw_buf_append(&fs.pool, ";", 1);
            if (rc == 0)
                rc = lw_buf_puts(&fs.pool, frame_name(&fr.f[j], hex, sizeof(hex)));
        }
        if (rc)
            break;
        size_t len = fs.pool.len - off;
        uint64_t h = pprof__hash_final(pprof__hash_bytes(PPROF__HASH_SEED, pool_at(&fs.pool, off), len));
        size_t pos = SIZE_MAX;
        uint32_t v;
        bool found = false;
        while (!found && pprof__hmap_next(&map, h, &pos, &v)) {
            fold *f = &fs.v[v];
            if (f->len == len && memcmp(pool_at(&fs.pool, f->off), pool_at(&fs.pool, off), len) == 0) {
                f->value = pprof__add(f->value, s->values[sample_index]);
                fs.pool.len = off; /* forget the duplicate text */
                found = true;
            }
        }
        if (found)
            continue;
        if (pprof__grow((void **)&fs.v, &fs.cap, fs.n + 1, sizeof(fold)) ||
            pprof__hmap_put(&map, h, (uint32_t)fs.n)) {
            rc = -ENOMEM;
            break;
        }
        fs.v[fs.n++] = (fold){off, len, NULL, s->values[sample_index]};
    }
    for (size_t i = 0; i < fs.n && rc == 0; i++)
        fs.v[i].text = pool_at(&fs.pool, fs.v[i].off);
    if (rc == 0 && fs.n > 1)
        qsort(fs.v, fs.n, sizeof(fold), fold_cmp);
    for (size_t i = 0; i < fs.n && rc == 0; i++) {
        if (fs.v[i].value == 0)
            continue;
        rc = lw_buf_append(out, pool_at(&fs.pool, fs.v[i].off), fs.v[i].len);
        if (rc == 0)
            rc = lw_buf_printf(out, " %" PRId64 "\n", fs.v[i].value);
    }
    if (rc && out->len > start) {
        out->len = start;
        out->data[start] = '\0';
    }
    free(fs.v);
    lw_buf_cleanup(&fs.pool);
    pprof__hmap_free(&map);
    frames_free(&fr);
    return rc;
}

/* ---- JSON ---------------------------------------------------------------------- */

int pprof_render_json(const pprof_profile *p, lw_buf *out)
{
    size_t start = out->len;
    frames fr;
    memset(&fr, 0, sizeof(fr));
    int64_t *totals = calloc(p->n_sample_types ? p->n_sample_types : 1, sizeof(int64_t));
    int rc = totals ? 0 : -ENOMEM;
    if (rc == 0)
        rc = lw_buf_puts(out, "{\"sample_types\":[");
    for (size_t t = 0; t < p->n_sample_types && rc == 0; t++) {
        rc = lw_buf_puts(out, t ? ",{\"type\":" : "{\"type\":");
        if (rc == 0)
            rc = lw_buf_json_str(out, pprof__str(p, p->sample_types[t].type));
        if (rc == 0)
            rc = lw_buf_puts(out, ",\"unit\":");
        if (rc == 0)
            rc = lw_buf_json_str(out, pprof__str(p, p->sample_types[t].unit));
        if (rc == 0)
            rc = lw_buf_puts(out, "}");
    }
    if (rc == 0)
        rc = lw_buf_puts(out, "],\"period_type\":{\"type\":");
    if (rc == 0)
        rc = lw_buf_json_str(out, pprof__str(p, p->period_type.type));
    if (rc == 0)
        rc = lw_buf_puts(out, ",\"unit\":");
    if (rc == 0)
        rc = lw_buf_json_str(out, pprof__str(p, p->period_type.unit));
    if (rc == 0)
        rc = lw_buf_printf(out, "},\"period\":%" PRId64 ",\"time_nanos\":%" PRId64
                           ",\"duration_nanos\":%" PRId64 ",\"totals\":[",
                           p->period, p->time_nanos, p->duration_nanos);
    if (rc == 0)
        pprof_totals(p, totals);
    for (size_t t = 0; t < p->n_sample_types && rc == 0; t++)
        rc = lw_buf_printf(out, "%s%" PRId64, t ? "," : "", totals[t]);
    if (rc == 0)
        rc = lw_buf_puts(out, "],\"samples\":[");
    for (size_t i = 0; i < p->n_samples && rc == 0; i++) {
        const pprof_sample *s = &p->samples[i];
        rc = lw_buf_puts(out, i ? ",{\"values\":[" : "{\"values\":[");
        for (size_t t = 0; t < s->n_values && rc == 0; t++)
            rc = lw_buf_printf(out, "%s%" PRId64, t ? "," : "", s->values[t]);
        if (rc == 0)
            rc = lw_buf_puts(out, "],\"labels\":{");
        for (size_t j = 0; j < s->n_labels && rc == 0; j++) {
            const pprof_label *l = &s->labels[j];
            if (j)
                rc = lw_buf_puts(out, ",");
            if (rc == 0)
                rc = lw_buf_json_str(out, pprof__str(p, l->key));
            if (rc == 0)
                rc = lw_buf_puts(out, ":");
            if (rc == 0)
                rc = l->str ? lw_buf_json_str(out, pprof__str(p, l->str))
                            : lw_buf_printf(out, "%" PRId64, l->num);
        }
        if (rc == 0)
            rc = lw_buf_puts(out, "},\"stack\":[");
        if (rc == 0)
            rc = load_frames(p, s, &fr);
        for (size_t j = 0; j < fr.n && rc == 0; j++) {
            char hex[24];
            rc = lw_buf_puts(out, j ? ",{\"function\":" : "{\"function\":");
            if (rc == 0)
                rc = lw_buf_json_str(out, frame_name(&fr.f[j], hex, sizeof(hex)));
            if (rc == 0)
                rc = lw_buf_puts(out, ",\"file\":");
            if (rc == 0)
                rc = lw_buf_json_str(out, fr.f[j].file);
            if (rc == 0)
                rc = lw_buf_printf(out, ",\"line\":%" PRId64 "}", fr.f[j].line);
        }
        if (rc == 0)
            rc = lw_buf_puts(out, "]}");
    }
    if (rc == 0)
        rc = lw_buf_puts(out, "]}\n");
    if (rc && out->len > start) {
        out->len = start;
        out->data[start] = '\0';
    }
    free(totals);
    frames_free(&fr);
    return rc;
}
