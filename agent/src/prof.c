/* prof.c — builds the agent's profiles as pprof protos and as Go's text
 * formats (heap debug=1, goroutine debug=1/2, threadcreate debug=1).
 *
 * lw_pb wraps a pprof_profile under construction: it holds the symbolizer
 * lock for its whole life, maps each (pc, leaf-ness) to a location once and
 * each module to one mapping whose has_* flags come from the symbolizer.
 * Heap values are unsampled like Go's scaleHeapSample; the text formats print
 * raw sample counts, as Go's do (pprof scales legacy text itself).
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "agent_internal.h"

typedef struct pc_ent {
    uintptr_t key; /* pc << 1 | exact, 0 = empty */
    uint64_t id;
} pc_ent;

typedef struct map_ent {
    const void *mod;
    uint64_t id;
} map_ent;

struct lw_pb {
    pprof_profile *p;
    pc_ent *pcs;
    size_t pcs_cap, pcs_n;
    map_ent *maps;
    size_t maps_n, maps_cap;
};

static int first_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type == PT_LOAD && (info->dlpi_phdr[i].p_flags & PF_X)) {
            *(uintptr_t *)arg = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            return 1;
        }
    }
    return 1;
}

static uint64_t mapping_for(lw_pb *b, const lw_sym *s);

/* go tool pprof takes the first mapping as the main binary: add it first. */
static void add_main_mapping(lw_pb *b)
{
    uintptr_t text = 0;
    lw__dl_iterate_phdr(first_object, &text);
    if (!text)
        return;
    lw_sym s;
    lw__sym_lookup(text, false, &s);
    (void)mapping_for(b, &s);
}

lw_pb *lw__pb_new(void)
{
    lw_pb *b = lw__real_calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    lw__sym_lock();
    b->p = pprof_new();
    if (!b->p) {
        lw__sym_unlock();
        lw__real_free(b);
        return NULL;
    }
    add_main_mapping(b);
    return b;
}

pprof_profile *lw__pb_profile(lw_pb *b)
{
    return b->p;
}

static void pb_release(lw_pb *b)
{
    lw__real_free(b->pcs);
    lw__real_free(b->maps);
    lw__sym_unlock();
    lw__real_free(b);
}

pprof_profile *lw__pb_finish(lw_pb *b)
{
    pprof_profile *p = b->p;
    pb_release(b);
    return p;
}

void lw__pb_free(lw_pb *b)
{
    if (!b)
        return;
    pprof_free(b->p);
    pb_release(b);
}

static uint64_t mapping_for(lw_pb *b, const lw_sym *s)
{
    if (!s->module)
        return 0;
    for (size_t i = 0; i < b->maps_n; i++)
        if (b->maps[i].mod == s->module)
            return b->maps[i].id;
    if (b->maps_n == b->maps_cap) {
        size_t nc = b->maps_cap ? b->maps_cap * 2 : 16;
        map_ent *nv = lw__real_realloc(b->maps, nc * sizeof(*nv));
        if (!nv)
            return 0;
        b->maps = nv;
        b->maps_cap = nc;
    }
    pprof_mapping m;
    memset(&m, 0, sizeof m);
    m.memory_start = s->mod_start;
    m.memory_limit = s->mod_end;
    m.file_offset = 0;
    int64_t fn = pprof_intern(b->p, s->mod_file ? s->mod_file : "");
    int64_t bid = pprof_intern(b->p, s->build_id ? s->build_id : "");
    if (fn < 0 || bid < 0)
        return 0;
    m.filename = fn;
    m.build_id = bid;
    m.has_functions = s->mod_has_functions;
    m.has_filenames = s->mod_has_lines;
    m.has_line_numbers = s->mod_has_lines;
    m.has_inline_frames = false;
    uint64_t id = pprof_add_mapping(b->p, &m);
    if (id == 0)
        return 0;
    b->maps[b->maps_n].mod = s->module;
    b->maps[b->maps_n].id = id;
    b->maps_n++;
    return id;
}

static uint64_t location_for(lw_pb *b, uintptr_t pc, bool exact)
{
    if ((b->pcs_n + 1) * 2 > b->pcs_cap) {
        size_t nc = b->pcs_cap ? b->pcs_cap * 2 : 1024;
        pc_ent *nv = lw__real_calloc(nc, sizeof(*nv));
        if (!nv)
            return 0;
        for (size_t i = 0; i < b->pcs_cap; i++) {
            if (!b->pcs[i].key)
                continue;
            size_t j = (b->pcs[i].key * 0x9e3779b97f4a7c15ull >> 20) & (nc - 1);
            while (nv[j].key)
                j = (j + 1) & (nc - 1);
            nv[j] = b->pcs[i];
        }
        lw__real_free(b->pcs);
        b->pcs = nv;
        b->pcs_cap = nc;
    }
    uintptr_t key = (pc << 1) | (exact ? 1 : 0);
    if (key == 0)
        key = 2;
    size_t j = (key * 0x9e3779b97f4a7c15ull >> 20) & (b->pcs_cap - 1);
    while (b->pcs[j].key) {
        if (b->pcs[j].key == key)
            return b->pcs[j].id;
        j = (j + 1) & (b->pcs_cap - 1);
    }
    lw_sym s;
    lw__sym_lookup(pc, !exact, &s);
    uint64_t mid = mapping_for(b, &s);
    uint64_t id;
    if (s.function) {
        char *pretty = lw__demangle(s.function);
        uint64_t fid = pprof_add_function(b->p, pretty ? pretty : s.function, s.function,
                                          s.file ? s.file : "", 0);
        lw__real_free(pretty);
        if (fid == 0)
            return 0;
        pprof_line ln = {fid, s.line, 0};
        id = pprof_add_location(b->p, mid, pc, &ln, 1);
    } else {
        id = pprof_add_location(b->p, mid, pc, NULL, 0);
    }
    if (id == 0)
        return 0;
    b->pcs[j].key = key;
    b->pcs[j].id = id;
    b->pcs_n++;
    return id;
}

int lw__pb_locations(lw_pb *b, const uintptr_t *pcs, size_t n, bool exact_leaf, uint64_t *ids)
{
    if (n > LW_MAX_FRAMES)
        n = LW_MAX_FRAMES;
    for (size_t i = 0; i < n; i++) {
        ids[i] = location_for(b, pcs[i], exact_leaf && i == 0);
        if (ids[i] == 0)
            return -ENOMEM;
    }
    return (int)n;
}

/* ---- C++ names --------------------------------------------------------------
 * The agent is a C library: it demangles with the C++ runtime's
 * __cxa_demangle only when the process has one (a C++ program), looked up
 * at run time. */
typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);

char *lw__demangle(const char *name)
{
    static demangle_fn fn;
    static int looked;
    if (!name || name[0] != '_' || name[1] != 'Z')
        return NULL;
    if (!looked) {
        fn = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
        looked = 1;
    }
    if (!fn)
        return NULL;
    int status = 0;
    char *out = fn(name, NULL, NULL, &status);
    if (status != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- text frames --------------------------------------------------------- */

int lw__text_frames(lw_buf *out, const uintptr_t *pcs, size_t n, bool exact_leaf)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool ret = !(exact_leaf && i == 0);
        uintptr_t pc = pcs[i] - (ret ? 1 : 0);
        lw_sym s;
        lw__sym_lookup(pcs[i], ret, &s);
        char *pretty = lw__demangle(s.function);
        if (!s.function)
            rc = lw_buf_printf(out, "#\t%#lx\n", (unsigned long)pc);
        else
            rc = lw_buf_printf(out, "#\t%#lx\t%s+%#lx\t%s:%d\n", (unsigned long)pc,
                               pretty ? pretty : s.function, (unsigned long)(pc - s.func_start),
                               s.file ? s.file : "?", s.line);
        lw__real_free(pretty);
    }
    return rc;
}

/* One Go traceback frame: "func(...)\n\tfile:line +0xoff\n", where off is
 * the pc's offset in its function (for a return address, the address after
 * the call, as Go prints). */
static int frame2(lw_buf *out, uintptr_t pc, bool is_return)
{
    lw_sym s;
    lw__sym_lookup(pc, is_return, &s);
    if (!s.function)
        return lw_buf_printf(out, "%#lx(...)\n\t%s +%#lx\n", (unsigned long)pc,
                             s.mod_file ? s.mod_file : "?", (unsigned long)(pc - s.mod_start));
    char *pretty = lw__demangle(s.function);
    int rc = lw_buf_printf(out, "%s(...)\n\t%s:%d +%#lx\n", pretty ? pretty : s.function,
                           s.file ? s.file : "?", s.line, (unsigned long)(pc - s.func_start));
    lw__real_free(pretty);
    return rc;
}

int lw__text_frames2(lw_buf *out, const uintptr_t *pcs, size_t n, bool exact_leaf)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = frame2(out, pcs[i], !(exact_leaf && i == 0));
    return rc;
}

/* ---- heap ---------------------------------------------------------------------- */

static void scale_heap(uint64_t count, uint64_t size_total, int64_t rate, int64_t *c_out,
                       int64_t *s_out)
{
    if (count == 0 || size_total == 0) {
        *c_out = 0;
        *s_out = 0;
        return;
    }
    if (rate <= 1) {
        *c_out = (int64_t)count;
        *s_out = (int64_t)size_total;
        return;
    }
    double avg = (double)size_total / (double)count;
    double scale = 1.0 / (1.0 - exp(-avg / (double)rate));
    *c_out = (int64_t)((double)count * scale);
    *s_out = (int64_t)((double)size_total * scale);
}

int lw__prof_heap(bool allocs, pprof_profile **out)
{
    lw_heap_record *recs = NULL;
    size_t n = 0;
    int rc = lw__heap_snapshot(&recs, &n);
    if (rc != 0)
        return rc;
    rc = -ENOMEM;
    int64_t rate = lw__heap_rate();
    lw_pb *b = lw__pb_new();
    if (!b)
        goto out;
    pprof_profile *p = lw__pb_profile(b);
    if (pprof_add_sample_type(p, "alloc_objects", "count") != 0 ||
        pprof_add_sample_type(p, "alloc_space", "bytes") != 0 ||
        pprof_add_sample_type(p, "inuse_objects", "count") != 0 ||
        pprof_add_sample_type(p, "inuse_space", "bytes") != 0 ||
        pprof_set_period(p, "space", "bytes", rate) != 0)
        goto out;
    if (allocs && pprof_set_default_sample_type(p, "alloc_space") != 0)
        goto out;
    p->time_nanos = lw__now_ns();
    int64_t bytes_key = pprof_intern(p, "bytes");
    if (bytes_key < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const lw_heap_record *r = &recs[i];
        if (r->allocs == 0)
            continue;
        int64_t v[4];
        uint64_t live = r->allocs - r->frees;
        scale_heap(r->allocs, r->alloc_bytes, rate, &v[0], &v[1]);
        scale_heap(live, r->alloc_bytes - r->free_bytes, rate, &v[2], &v[3]);
        uint64_t ids[LW_MAX_FRAMES];
        int k = lw__pb_locations(b, r->pcs, r->n_pcs, false, ids);
        if (k < 0)
            goto out;
        /* Go's "bytes" label (the block size): stable per bucket, so that
         * successive profiles have the same rows (an average would drift). */
        pprof_label lab = {bytes_key, 0, (int64_t)r->label_bytes, 0};
        if (pprof_add_sample(p, ids, (size_t)k, v, &lab, 1) != 0)
            goto out;
    }
    *out = lw__pb_finish(b);
    b = NULL;
    rc = 0;
out:
    lw__pb_free(b);
    lw__real_free(recs);
    return rc;
}

static int cmp_inuse(const void *a, const void *b)
{
    const lw_heap_record *x = a, *y = b;
    uint64_t ix = x->alloc_bytes - x->free_bytes;
    uint64_t iy = y->alloc_bytes - y->free_bytes;
    return ix < iy ? 1 : ix > iy ? -1 : 0;
}

int lw__prof_heap_text(lw_buf *out)
{
    lw_heap_record *recs = NULL;
    size_t n = 0;
    int rc = lw__heap_snapshot(&recs, &n);
    if (rc != 0)
        return rc;
    qsort(recs, n, sizeof(*recs), cmp_inuse);
    uint64_t t[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        uint64_t live = recs[i].allocs - recs[i].frees;
        t[0] += live;
        t[1] += recs[i].alloc_bytes - recs[i].free_bytes;
        t[2] += recs[i].allocs;
        t[3] += recs[i].alloc_bytes;
    }
    rc = lw_buf_printf(out, "heap profile: %llu: %llu [%llu: %llu] @ heap/%lld\n",
                       (unsigned long long)t[0], (unsigned long long)t[1],
                       (unsigned long long)t[2], (unsigned long long)t[3],
                       (long long)(2 * lw__heap_rate()));
    lw__sym_lock();
    for (size_t i = 0; i < n && rc == 0; i++) {
        const lw_heap_record *r = &recs[i];
        if (r->allocs == 0)
            continue;
        uint64_t live = r->allocs - r->frees;
        rc = lw_buf_printf(out, "%llu: %llu [%llu: %llu] @", (unsigned long long)live,
                           (unsigned long long)(r->alloc_bytes - r->free_bytes),
                           (unsigned long long)r->allocs,
                           (unsigned long long)r->alloc_bytes);
        for (uint32_t k = 0; k < r->n_pcs && rc == 0; k++)
            rc = lw_buf_printf(out, " %#lx", (unsigned long)r->pcs[k]);
        if (rc == 0)
            rc = lw_buf_puts(out, "\n");
        if (rc == 0)
            rc = lw__text_frames(out, r->pcs, r->n_pcs, false);
        if (rc == 0)
            rc = lw_buf_puts(out, "\n");
    }
    lw__sym_unlock();
    if (rc == 0) {
        struct mallinfo2 mi = mallinfo2();
        rc = lw_buf_printf(out,
                           "\n# leakwatch agent: glibc mallinfo2 (main arena + mmap)\n"
                           "# Arena = %zu\n# InUse = %zu\n# Free = %zu\n# Mmap = %zu\n"
                           "# HeapRate = %lld\n",
                           mi.arena, mi.uordblks, mi.fordblks, mi.hblkhd,
                           (long long)lw__heap_rate());
    }
    lw__real_free(recs);
    return rc;
}

/* ---- goroutine (threads) -------------------------------------------------------- */

static const char *state_word(char c)
{
    switch (c) {
    case 'R': return "running";
    case 'S': return "sleeping";
    case 'D': return "disk";
    case 'T': return "stopped";
    case 't': return "tracing stop";
    case 'Z': return "zombie";
    case 'X': return "dead";
    case 'I': return "idle";
    default: return "unknown";
    }
}

typedef struct group {
    const lw_thread_info *first;
    size_t count;
} group;

static bool same_group(const lw_thread_info *a, const lw_thread_info *b)
{
    return a->has_stack == b->has_stack && a->stack.n == b->stack.n &&
           memcmp(a->stack.pc, b->stack.pc, a->stack.n * sizeof(uintptr_t)) == 0 &&
           a->state == b->state && a->stack_scanned == b->stack_scanned &&
           strcmp(a->wait, b->wait) == 0 &&
           strcmp(a->name, b->name) == 0;
}

static int cmp_group(const void *x, const void *y)
{
    const group *a = x, *b = y;
    return a->count < b->count ? 1 : a->count > b->count ? -1 : 0;
}

/* Group threads by (stack, state, wait, name); *groups allocated. */
static int group_threads(const lw_thread_info *t, size_t n, group **groups, size_t *n_groups)
{
    group *g = lw__real_calloc(n ? n : 1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < k; j++)
            if (same_group(g[j].first, &t[i]))
                break;
        if (j == k)
            g[k++].first = &t[i];
        g[j].count++;
    }
    qsort(g, k, sizeof(*g), cmp_group);
    *groups = g;
    *n_groups = k;
    return 0;
}

int lw__prof_goroutine(pprof_profile **out)
{
    lw_thread_info *t = NULL;
    size_t n = 0;
    group *g = NULL;
    size_t ng = 0;
    lw_pb *b = NULL;
    int rc = lw__threads_capture(&t, &n);
    if (rc != 0)
        return rc;
    rc = group_threads(t, n, &g, &ng);
    if (rc != 0)
        goto out;
    rc = -ENOMEM;
    b = lw__pb_new();
    if (!b)
        goto out;
    pprof_profile *p = lw__pb_profile(b);
    if (pprof_add_sample_type(p, "goroutine", "count") != 0 ||
        pprof_set_period(p, "goroutine", "count", 1) != 0)
        goto out;
    p->time_nanos = lw__now_ns();
    int64_t k_name = pprof_intern(p, "thread_name"), k_state = pprof_intern(p, "state"),
            k_wait = pprof_intern(p, "wait");
    int64_t k_stack = pprof_intern(p, "stack"), v_scanned = pprof_intern(p, "scanned");
    if (k_name < 0 || k_state < 0 || k_wait < 0 || k_stack < 0 || v_scanned < 0)
        goto out;
    for (size_t i = 0; i < ng; i++) {
        const lw_thread_info *ti = g[i].first;
        uint64_t ids[LW_MAX_FRAMES];
        int k = 0;
        if (ti->has_stack) {
            k = lw__pb_locations(b, ti->stack.pc, ti->stack.n, true, ids);
            if (k < 0)
                goto out;
        }
        int64_t v_name = pprof_intern(p, ti->name), v_state = pprof_intern(p, state_word(ti->state)),
                v_wait = pprof_intern(p, ti->wait);
        if (v_name < 0 || v_state < 0 || v_wait < 0)
            goto out;
        pprof_label labs[4] = {{k_name, v_name, 0, 0}, {k_state, v_state, 0, 0}};
        size_t nl = 2;
        if (ti->wait[0])
            labs[nl++] = (pprof_label){k_wait, v_wait, 0, 0};
        if (ti->stack_scanned)
            labs[nl++] = (pprof_label){k_stack, v_scanned, 0, 0};
        int64_t v = (int64_t)g[i].count;
        if (pprof_add_sample(p, ids, (size_t)k, &v, labs, nl) != 0)
            goto out;
    }
    *out = lw__pb_finish(b);
    b = NULL;
    rc = 0;
out:
    lw__pb_free(b);
    lw__real_free(g);
    lw__real_free(t);
    return rc;
}

static int goroutine_text1(lw_buf *out, const lw_thread_info *t, size_t n)
{
    group *g = NULL;
    size_t ng = 0;
    int rc = group_threads(t, n, &g, &ng);
    if (rc != 0)
        return rc;
    rc = lw_buf_printf(out, "goroutine profile: total %zu\n", n);
    lw__sym_lock();
    for (size_t i = 0; i < ng && rc == 0; i++) {
        const lw_thread_info *ti = g[i].first;
        rc = lw_buf_printf(out, "%zu @", g[i].count);
        for (uint32_t k = 0; ti->has_stack && k < ti->stack.n && rc == 0; k++)
            rc = lw_buf_printf(out, " %#lx", (unsigned long)ti->stack.pc[k]);
        if (rc == 0)
            rc = lw_buf_printf(out, "\n# labels: {%s\"state\":\"%s\", \"thread_name\":\"%s\"%s%s%s}\n",
                               ti->stack_scanned ? "\"stack\":\"scanned\", " : "",
                               state_word(ti->state), ti->name, ti->wait[0] ? ", \"wait\":\"" : "",
                               ti->wait, ti->wait[0] ? "\"" : "");
        if (rc == 0 && ti->has_stack)
            rc = lw__text_frames(out, ti->stack.pc, ti->stack.n, true);
        if (rc == 0)
            rc = lw_buf_puts(out, "\n");
    }
    lw__sym_unlock();
    lw__real_free(g);
    return rc;
}

static int goroutine_text2(lw_buf *out, const lw_thread_info *t, size_t n)
{
    int rc = 0;
    lw__sym_lock();
    for (size_t i = 0; i < n && rc == 0; i++) {
        const lw_thread_info *ti = &t[i];
        char age[48];
        if (ti->age_seconds >= 60)
            snprintf(age, sizeof age, "%lld minutes", (long long)(ti->age_seconds / 60));
        else
            snprintf(age, sizeof age, "%lld seconds", (long long)ti->age_seconds);
        rc = lw_buf_printf(out, "goroutine %d [%s%s%s, %s, \"%s\"]:\n", (int)ti->tid,
                           state_word(ti->state), ti->wait[0] ? ", " : "", ti->wait, age, ti->name);
        if (rc == 0 && ti->has_stack && ti->stack_scanned)
            rc = lw_buf_printf(out, "(stack recovered by scanning, not unwinding: a signal would "
                                    "interrupt %s; frames below the first may be stale)\n",
                               ti->wait[0] ? ti->wait : "its syscall");
        if (rc == 0 && ti->has_stack)
            rc = lw__text_frames2(out, ti->stack.pc, ti->stack.n, true);
        else if (rc == 0)
            rc = lw_buf_puts(out, "(stack unavailable: the thread did not answer the capture signal)\n");
        if (rc == 0 && ti->has_created_by && ti->created_by.n > 0) {
            lw_sym s;
            lw__sym_lookup(ti->created_by.pc[0], true, &s);
            if (s.function)
                rc = lw_buf_printf(out, "created by %s in goroutine %d\n", s.function,
                                   (int)ti->creator_tid);
            else
                rc = lw_buf_printf(out, "created by %#lx in goroutine %d\n",
                                   (unsigned long)ti->created_by.pc[0], (int)ti->creator_tid);
            uintptr_t pc = ti->created_by.pc[0];
            if (rc == 0)
                rc = lw_buf_printf(out, "\t%s:%d +%#lx\n",
                                   s.file ? s.file : (s.mod_file ? s.mod_file : "?"), s.line,
                                   (unsigned long)(s.func_start ? pc - s.func_start : 0));
            if (rc == 0 && ti->created_by.n > 1)
                rc = lw__text_frames2(out, ti->created_by.pc + 1, ti->created_by.n - 1, false);
        }
        if (rc == 0)
            rc = lw_buf_puts(out, "\n");
    }
    lw__sym_unlock();
    return rc;
}

int lw__prof_goroutine_text(int debug, lw_buf *out)
{
    lw_thread_info *t = NULL;
    size_t n = 0;
    int rc = lw__threads_capture(&t, &n);
    if (rc != 0)
        return rc;
    rc = debug >= 2 ? goroutine_text2(out, t, n) : goroutine_text1(out, t, n);
    lw__real_free(t);
    return rc;
}

/* ---- threadcreate ------------------------------------------------------------- */

int lw__prof_threadcreate(pprof_profile **out)
{
    lw_stack *st = NULL;
    size_t n = 0;
    int rc = lw__threads_created(&st, &n);
    if (rc != 0)
        return rc;
    rc = -ENOMEM;
    lw_pb *b = lw__pb_new();
    if (!b)
        goto out;
    pprof_profile *p = lw__pb_profile(b);
    if (pprof_add_sample_type(p, "threadcreate", "count") != 0 ||
        pprof_set_period(p, "threadcreate", "count", 1) != 0)
        goto out;
    p->time_nanos = lw__now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t ids[LW_MAX_FRAMES];
        int k = lw__pb_locations(b, st[i].pc, st[i].n, false, ids);
        if (k < 0)
            goto out;
        int64_t v = 1;
        if (pprof_add_sample(p, ids, (size_t)k, &v, NULL, 0) != 0)
            goto out;
    }
    *out = lw__pb_finish(b);
    b = NULL;
    rc = 0;
out:
    lw__pb_free(b);
    lw__real_free(st);
    return rc;
}

int lw__prof_threadcreate_text(lw_buf *out)
{
    lw_stack *st = NULL;
    size_t n = 0;
    int rc = lw__threads_created(&st, &n);
    if (rc != 0)
        return rc;
    rc = lw_buf_printf(out, "threadcreate profile: total %zu\n", n);
    lw__sym_lock();
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t cnt = 1;
        while (i + cnt < n && st[i + cnt].n == st[i].n &&
               memcmp(st[i + cnt].pc, st[i].pc, st[i].n * sizeof(uintptr_t)) == 0)
            cnt++;
        rc = lw_buf_printf(out, "%zu @", cnt);
        for (uint32_t k = 0; k < st[i].n && rc == 0; k++)
            rc = lw_buf_printf(out, " %#lx", (unsigned long)st[i].pc[k]);
        if (rc == 0)
            rc = lw_buf_puts(out, "\n");
        if (rc == 0)
            rc = lw__text_frames(out, st[i].pc, st[i].n, false);
        if (rc == 0)
            rc = lw_buf_puts(out, "\n");
        i += cnt - 1;
    }
    lw__sym_unlock();
    lw__real_free(st);
    return rc;
}
