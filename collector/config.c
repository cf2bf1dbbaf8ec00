/* config.c — YAML configuration loader, flag overrides, durations, sizes and
 * file_sd target files (see config.h).
 *
 * The YAML text is loaded into a libyaml document tree, then walked section
 * by section. Each mapping is first checked as a whole (keys are scalars,
 * known to that section, not duplicated), then its known keys are fetched by
 * name; this keeps "unknown key" and "duplicate key" errors uniform. All
 * values are copied into the config's arena, so the document can be freed
 * right after loading. The walk counts the nodes it visits and gives up past
 * a limit, so YAML aliases cannot make it run (or allocate) without bound.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#define MAX_CONFIG_BYTES ((size_t)16 << 20)
#define MAX_NODE_VISITS 1000000

const char *const lw_signal_names[LW_N_SIGNALS] = {"goroutines", "heap_inuse_bytes",
                                                   "heap_inuse_objects"};

/* ---- arena ---------------------------------------------------------------- */

struct arena_chunk {
    struct arena_chunk *next;
    max_align_t data[];
};

struct lw_arena {
    struct arena_chunk *head;
};

static struct lw_arena *arena_new(void)
{
    return calloc(1, sizeof(struct lw_arena));
}

void lw_arena_free(struct lw_arena *a)
{
    if (!a)
        return;
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

/* Zeroed memory owned by the arena, or NULL when out of memory. */
static void *arena_alloc(struct lw_arena *a, size_t n)
{
    if (n > SIZE_MAX - sizeof(struct arena_chunk) - 1)
        return NULL;
    struct arena_chunk *c = calloc(1, sizeof(*c) + (n ? n : 1));
    if (!c)
        return NULL;
    c->next = a->head;
    a->head = c;
    return c->data;
}

static void *arena_array(struct lw_arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return arena_alloc(a, n * size);
}

static char *arena_strndup(struct lw_arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *arena_strdup(struct lw_arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

static char *arena_printf(struct lw_arena *a, const char *fmt, ...) LW_PRINTF(2, 3);
static char *arena_printf(struct lw_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *d = arena_alloc(a, (size_t)n + 1);
    if (!d)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

/* ---- durations and sizes ------------------------------------------------- */

int lw_parse_duration(const char *s, int64_t *ns_out)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {
        {"y", INT64_C(365) * 86400 * LW_NS_PER_SEC},
        {"w", INT64_C(7) * 86400 * LW_NS_PER_SEC},
        {"d", INT64_C(86400) * LW_NS_PER_SEC},
        {"h", INT64_C(3600) * LW_NS_PER_SEC},
        {"m", INT64_C(60) * LW_NS_PER_SEC},
        {"s", LW_NS_PER_SEC},
        {"ms", INT64_C(1000000)},
    };
    if (!s || !*s)
        return -EINVAL;
    if (strcmp(s, "0") == 0) {
        *ns_out = 0;
        return 0;
    }
    int64_t total = 0;
    size_t next_unit = 0;
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        int64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            if (v > (INT64_MAX - 9) / 10)
                return -EINVAL;
            v = v * 10 + (*p - '0');
            p++;
        }
        size_t ulen = 0;
        while (isalpha((unsigned char)p[ulen]))
            ulen++;
        if (ulen == 0)
            return -EINVAL;
        size_t u = next_unit;
        while (u < sizeof(units) / sizeof(units[0]) &&
               !(strlen(units[u].unit) == ulen && strncmp(units[u].unit, p, ulen) == 0))
            u++;
        if (u == sizeof(units) / sizeof(units[0]))
            return -EINVAL; /* unknown unit, or units out of order / repeated */
        if (v > INT64_MAX / units[u].ns || total > INT64_MAX - v * units[u].ns)
            return -EINVAL;
        total += v * units[u].ns;
        next_unit = u + 1;
        p += ulen;
    }
    *ns_out = total;
    return 0;
}

const char *lw_format_duration(int64_t ns, char *buf, size_t buf_len)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {
        {"y", INT64_C(365) * 86400 * LW_NS_PER_SEC},
        {"w", INT64_C(7) * 86400 * LW_NS_PER_SEC},
        {"d", INT64_C(86400) * LW_NS_PER_SEC},
        {"h", INT64_C(3600) * LW_NS_PER_SEC},
        {"m", INT64_C(60) * LW_NS_PER_SEC},
        {"s", LW_NS_PER_SEC},
        {"ms", INT64_C(1000000)},
    };
    if (buf_len == 0)
        return buf;
    buf[0] = '\0';
    if (ns < INT64_C(1000000)) {
        snprintf(buf, buf_len, "%s", ns <= 0 ? "0s" : "0ms");
        return buf;
    }
    size_t used = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        int64_t v = ns / units[i].ns;
        if (v == 0)
            continue;
        ns -= v * units[i].ns;
        int n = snprintf(buf + used, buf_len - used, "%lld%s", (long long)v, units[i].unit);
        if (n < 0 || (size_t)n >= buf_len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

int lw_parse_size(const char *s, int64_t *bytes_out)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {
        {"", 0},    {"B", 0},     {"KB", 10},  {"MB", 20},  {"GB", 30},  {"TB", 40},
        {"PB", 50}, {"EB", 60},   {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40},
        {"PiB", 50}, {"EiB", 60}, {"K", 10},   {"M", 20},   {"G", 30},   {"T", 40},
    };
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    int64_t v = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p)) {
        if (v > (INT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (*p - '0');
        p++;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (units[i].shift && v > (INT64_MAX >> units[i].shift))
                return -EINVAL;
            *bytes_out = v << units[i].shift;
            return 0;
        }
    }
    return -EINVAL;
}

bool lw_label_name_valid(const char *name)
{
    if (!name || !(isalpha((unsigned char)*name) || *name == '_'))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

/* ---- YAML walking ---------------------------------------------------------- */

typedef struct pctx {
    const char *file;
    yaml_document_t *doc;
    struct lw_arena *a;
    char *err;
    size_t err_len;
    long visits;
} pctx;

static int oom(pctx *p)
{
    snprintf(p->err, p->err_len, "%s: out of memory", p->file);
    return -ENOMEM;
}

/* Write "FILE:LINE:COL: KEY: message" for node n and return -EINVAL. */
static int fail(pctx *p, const yaml_node_t *n, const char *key, const char *fmt, ...)
    LW_PRINTF(4, 5);
static int fail(pctx *p, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char msg[LW_CONFIG_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(p->err, p->err_len, "%s:%zu:%zu: %s: %s", p->file, n ? n->start_mark.line + 1 : 1,
             n ? n->start_mark.column + 1 : 1, key, msg);
    return -EINVAL;
}

static yaml_node_t *node(pctx *p, int id)
{
    p->visits++;
    return yaml_document_get_node(p->doc, id);
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = sval(n);
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static const char *type_name(const yaml_node_t *n)
{
    if (is_null(n))
        return "null";
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static int too_big(pctx *p, const yaml_node_t *n, const char *key)
{
    if (p->visits > MAX_NODE_VISITS)
        return fail(p, n, key, "document too large (more than %d nodes visited)", MAX_NODE_VISITS);
    return 0;
}

static int want_type(pctx *p, const yaml_node_t *n, const char *key, yaml_node_type_t t)
{
    if (n->type == t && !(t == YAML_SCALAR_NODE && is_null(n)))
        return 0;
    const char *want = t == YAML_SCALAR_NODE ? "a scalar" : t == YAML_SEQUENCE_NODE ? "a list" : "a mapping";
    return fail(p, n, key, "expected %s, got %s", want, type_name(n));
}

/* Check that mapping n has only scalar keys from `allowed` (NULL-terminated;
 * NULL allowed = any name), none twice. `section` names it in messages. */
static int check_keys(pctx *p, yaml_node_t *n, const char *key, const char *section,
                      const char *const *allowed)
{
    int rc = want_type(p, n, key, YAML_MAPPING_NODE);
    if (rc)
        return rc;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(p, pr->key);
        if (!k || k->type != YAML_SCALAR_NODE)
            return fail(p, k, key, "mapping keys must be scalars in %s", section);
        if (allowed) {
            const char *const *a = allowed;
            while (*a && strcmp(*a, sval(k)) != 0)
                a++;
            if (!*a)
                return fail(p, k, sval(k), "unknown key in %s", section);
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < pr; q++) {
            yaml_node_t *k2 = node(p, q->key);
            if (strcmp(sval(k2), sval(k)) == 0)
                return fail(p, k, sval(k), "duplicate key in %s (first at line %zu)", section,
                            k2->start_mark.line + 1);
        }
    }
    return too_big(p, n, key);
}

/* The value of key in mapping n (checked by check_keys), NULL if absent or null. */
static yaml_node_t *lookup(pctx *p, yaml_node_t *n, const char *key)
{
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(p, pr->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp(sval(k), key) == 0) {
            yaml_node_t *v = node(p, pr->value);
            return is_null(v) ? NULL : v;
        }
    }
    return NULL;
}

static int get_string(pctx *p, yaml_node_t *m, const char *key, const char **out)
{
    yaml_node_t *n = lookup(p, m, key);
    if (!n)
        return 0;
    int rc = want_type(p, n, key, YAML_SCALAR_NODE);
    if (rc)
        return rc;
    char *s = arena_strndup(p->a, sval(n), n->data.scalar.length);
    if (!s)
        return oom(p);
    if (strlen(s) != n->data.scalar.length)
        return fail(p, n, key, "value contains a NUL byte");
    *out = s;
    return 0;
}

static int get_duration(pctx *p, yaml_node_t *m, const char *key, int64_t *out, bool positive)
{
    yaml_node_t *n = lookup(p, m, key);
    if (!n)
        return 0;
    int rc = want_type(p, n, key, YAML_SCALAR_NODE);
    if (rc)
        return rc;
    int64_t v;
    if (lw_parse_duration(sval(n), &v) != 0)
        return fail(p, n, key, "invalid duration \"%s\"", sval(n));
    if (positive && v <= 0)
        return fail(p, n, key, "must be greater than 0");
    *out = v;
    return 0;
}

static int get_bool(pctx *p, yaml_node_t *m, const char *key, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    yaml_node_t *n = lookup(p, m, key);
    if (!n)
        return 0;
    int rc = want_type(p, n, key, YAML_SCALAR_NODE);
    if (rc)
        return rc;
    for (int i = 0; yes[i]; i++) {
        if (strcmp(sval(n), yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(sval(n), no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return fail(p, n, key, "invalid boolean \"%s\" (want true or false)", sval(n));
}

static int get_int(pctx *p, yaml_node_t *m, const char *key, int64_t min, int64_t max, int64_t *out)
{
    yaml_node_t *n = lookup(p, m, key);
    if (!n)
        return 0;
    int rc = want_type(p, n, key, YAML_SCALAR_NODE);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    long long v = strtoll(sval(n), &end, 10);
    if (errno || end == sval(n) || *end || !(isdigit((unsigned char)*sval(n)) || *sval(n) == '-'))
        return fail(p, n, key, "invalid integer \"%s\"", sval(n));
    if (v < min || v > max)
        return fail(p, n, key, "%lld out of range [%lld, %lld]", v, (long long)min, (long long)max);
    *out = v;
    return 0;
}

static int get_float(pctx *p, yaml_node_t *m, const char *key, double *out)
{
    yaml_node_t *n = lookup(p, m, key);
    if (!n)
        return 0;
    int rc = want_type(p, n, key, YAML_SCALAR_NODE);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    double v = strtod(sval(n), &end);
    if (errno || end == sval(n) || *end || !isfinite(v))
        return fail(p, n, key, "invalid number \"%s\"", sval(n));
    if (v < 0)
        return fail(p, n, key, "must not be negative");
    *out = v;
    return 0;
}

/* A list of strings (a single scalar is not accepted, as in Prometheus). */
static int get_string_list_node(pctx *p, yaml_node_t *n, const char *key, const char ***out,
                                size_t *n_out)
{
    int rc = want_type(p, n, key, YAML_SEQUENCE_NODE);
    if (rc)
        return rc;
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    const char **arr = arena_array(p->a, cnt ? cnt : 1, sizeof(*arr));
    if (!arr)
        return oom(p);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node(p, n->data.sequence.items.start[i]);
        if ((rc = want_type(p, it, key, YAML_SCALAR_NODE)) != 0)
            return rc;
        if (!(arr[i] = arena_strdup(p->a, sval(it))))
            return oom(p);
    }
    if ((rc = too_big(p, n, key)) != 0)
        return rc;
    *out = arr;
    *n_out = cnt;
    return 0;
}

/* A mapping of label names to string values. */
static int get_labels_node(pctx *p, yaml_node_t *n, const char *key, lw_kv **out, size_t *n_out)
{
    int rc = check_keys(p, n, key, key, NULL);
    if (rc)
        return rc;
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    lw_kv *arr = arena_array(p->a, cnt ? cnt : 1, sizeof(*arr));
    if (!arr)
        return oom(p);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *k = node(p, n->data.mapping.pairs.start[i].key);
        yaml_node_t *v = node(p, n->data.mapping.pairs.start[i].value);
        if (!lw_label_name_valid(sval(k)))
            return fail(p, k, key, "invalid label name \"%s\"", sval(k));
        if (v->type != YAML_SCALAR_NODE)
            return fail(p, v, sval(k), "expected a scalar, got %s", type_name(v));
        arr[i].name = arena_strdup(p->a, sval(k));
        arr[i].value = arena_strdup(p->a, is_null(v) ? "" : sval(v));
        if (!arr[i].name || !arr[i].value)
            return oom(p);
    }
    *out = arr;
    *n_out = cnt;
    return 0;
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* ---- targets -------------------------------------------------------------------- */

static const char *default_port(const char *scheme)
{
    return scheme && strcmp(scheme, "https") == 0 ? "443" : "80";
}

/* Validate "host:port" / "host" / "[v6]:port"; returns the normalized
 * address (port added) in the arena, or NULL with *why set. */
static const char *normalize_target(struct lw_arena *a, const char *t, const char *scheme,
                                    const char **why)
{
    *why = NULL;
    if (!*t) {
        *why = "empty target";
        return NULL;
    }
    for (const char *c = t; *c; c++) {
        if (*c == '/' || isspace((unsigned char)*c) || *c == '?' || *c == '#' || *c == '@') {
            *why = "want host:port without scheme or path";
            return NULL;
        }
    }
    const char *port = NULL;
    if (t[0] == '[') {
        const char *close = strchr(t, ']');
        if (!close || close == t + 1) {
            *why = "bad IPv6 address";
            return NULL;
        }
        if (close[1] == ':')
            port = close + 2;
        else if (close[1]) {
            *why = "want [address]:port";
            return NULL;
        }
    } else {
        const char *colon = strchr(t, ':');
        if (colon) {
            if (strchr(colon + 1, ':')) {
                *why = "IPv6 addresses need brackets: [address]:port";
                return NULL;
            }
            if (colon == t) {
                *why = "missing host";
                return NULL;
            }
            port = colon + 1;
        }
    }
    if (port) {
        if (!*port || strlen(port) > 5) {
            *why = "invalid port";
            return NULL;
        }
        for (const char *c = port; *c; c++)
            if (!isdigit((unsigned char)*c)) {
                *why = "invalid port";
                return NULL;
            }
        if (atoi(port) < 1 || atoi(port) > 65535) {
            *why = "invalid port";
            return NULL;
        }
        return arena_strdup(a, t);
    }
    return arena_printf(a, "%s:%s", t, default_port(scheme));
}

/* One {targets, labels} group. `section` is "static_config" or "file_sd". */
static int parse_target_group(pctx *p, yaml_node_t *n, const char *section, const char *scheme,
                              lw_target_group *g)
{
    static const char *const keys[] = {"targets", "labels", NULL};
    int rc = check_keys(p, n, section, section, keys);
    if (rc)
        return rc;
    yaml_node_t *t = lookup(p, n, "targets");
    if (t) {
        if ((rc = get_string_list_node(p, t, "targets", &g->targets, &g->n_targets)) != 0)
            return rc;
        for (size_t i = 0; i < g->n_targets; i++) {
            const char *why;
            const char *norm = normalize_target(p->a, g->targets[i], scheme, &why);
            if (!norm && why)
                return fail(p, node(p, t->data.sequence.items.start[i]), "targets",
                            "invalid target \"%s\": %s", g->targets[i], why);
            if (!norm)
                return oom(p);
            g->targets[i] = norm;
        }
    }
    yaml_node_t *l = lookup(p, n, "labels");
    if (l && (rc = get_labels_node(p, l, "labels", &g->labels, &g->n_labels)) != 0)
        return rc;
    return 0;
}

/* ---- scrape configs ------------------------------------------------------------------ */

static const struct {
    const char *name;
    const char *path;
    bool enabled;
    bool delta;
} builtin_profiles[] = {
    {"goroutine", "/debug/pprof/goroutine", true, false},
    {"heap", "/debug/pprof/heap", true, false},
    {"allocs", "/debug/pprof/allocs", false, false},
    {"threadcreate", "/debug/pprof/threadcreate", false, false},
    {"mutex", "/debug/pprof/mutex", false, false},
    {"block", "/debug/pprof/block", false, false},
    {"profile", "/debug/pprof/profile", false, true},
};
#define N_BUILTIN_PROFILES (sizeof(builtin_profiles) / sizeof(builtin_profiles[0]))

/* "" or "/x/y" from "x/y/", "/x", "/" ... */
static const char *normalize_prefix(struct lw_arena *a, const char *s)
{
    while (*s == '/')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        n--;
    if (n == 0)
        return "";
    char *d = arena_alloc(a, n + 2);
    if (d) {
        d[0] = '/';
        memcpy(d + 1, s, n);
    }
    return d;
}

static int default_profiles(pctx *p, lw_scrape_config *sc, size_t extra)
{
    sc->profiles = arena_array(p->a, N_BUILTIN_PROFILES + extra, sizeof(*sc->profiles));
    if (!sc->profiles)
        return oom(p);
    for (size_t i = 0; i < N_BUILTIN_PROFILES; i++) {
        sc->profiles[i].name = builtin_profiles[i].name;
        sc->profiles[i].path = builtin_profiles[i].path;
        sc->profiles[i].enabled = builtin_profiles[i].enabled;
        sc->profiles[i].delta = builtin_profiles[i].delta;
    }
    sc->n_profiles = N_BUILTIN_PROFILES;
    return 0;
}

static bool profile_name_valid(const char *s)
{
    if (!*s || strlen(s) > 31)
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static int parse_profiling(pctx *p, yaml_node_t *n, lw_scrape_config *sc)
{
    static const char *const keys[] = {"path_prefix", "pprof_config", NULL};
    static const char *const pkeys[] = {"enabled", "path", "delta", "seconds", NULL};
    int rc = check_keys(p, n, "profiling_config", "profiling_config", keys);
    if (rc)
        return rc;
    const char *prefix = NULL;
    if ((rc = get_string(p, n, "path_prefix", &prefix)) != 0)
        return rc;
    if (prefix && !(sc->path_prefix = normalize_prefix(p->a, prefix)))
        return oom(p);
    yaml_node_t *pc = lookup(p, n, "pprof_config");
    if (!pc)
        return 0;
    if ((rc = check_keys(p, pc, "pprof_config", "pprof_config", NULL)) != 0)
        return rc;
    size_t cnt = (size_t)(pc->data.mapping.pairs.top - pc->data.mapping.pairs.start);
    if ((rc = default_profiles(p, sc, cnt)) != 0)
        return rc;
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *k = node(p, pc->data.mapping.pairs.start[i].key);
        yaml_node_t *v = node(p, pc->data.mapping.pairs.start[i].value);
        const char *name = sval(k);
        if (!profile_name_valid(name))
            return fail(p, k, name, "invalid profile name (want 1-31 of [A-Za-z0-9_.-])");
        lw_profile_config *pr = NULL;
        for (size_t j = 0; j < sc->n_profiles; j++)
            if (strcmp(sc->profiles[j].name, name) == 0)
                pr = &sc->profiles[j];
        bool custom = !pr;
        if (custom) {
            pr = &sc->profiles[sc->n_profiles++];
            if (!(pr->name = arena_strdup(p->a, name)))
                return oom(p);
            pr->enabled = true;
        }
        if (is_null(v)) {
            if (custom)
                return fail(p, k, name, "path is required for a custom profile");
            continue;
        }
        if ((rc = check_keys(p, v, name, "pprof_config entry", pkeys)) != 0)
            return rc;
        const char *path = NULL;
        int64_t seconds = 0;
        if ((rc = get_bool(p, v, "enabled", &pr->enabled)) != 0 ||
            (rc = get_string(p, v, "path", &path)) != 0 ||
            (rc = get_bool(p, v, "delta", &pr->delta)) != 0 ||
            (rc = get_int(p, v, "seconds", 1, 86400, &seconds)) != 0)
            return rc;
        if (path) {
            if (!*path)
                return fail(p, lookup(p, v, "path"), "path", "must not be empty");
            if (!(pr->path = path[0] == '/' ? path : arena_printf(p->a, "/%s", path)))
                return oom(p);
        } else if (custom) {
            return fail(p, k, name, "path is required for a custom profile");
        }
        pr->seconds = seconds;
    }
    return 0;
}

static int parse_basic_auth(pctx *p, yaml_node_t *n, lw_basic_auth *ba)
{
    static const char *const keys[] = {"username", "password", "password_file", NULL};
    int rc = check_keys(p, n, "basic_auth", "basic_auth", keys);
    if (rc)
        return rc;
    ba->set = true;
    ba->username = "";
    if ((rc = get_string(p, n, "username", &ba->username)) != 0 ||
        (rc = get_string(p, n, "password", &ba->password)) != 0 ||
        (rc = get_string(p, n, "password_file", &ba->password_file)) != 0)
        return rc;
    if (ba->password && ba->password_file)
        return fail(p, lookup(p, n, "password_file"), "password_file",
                    "at most one of password and password_file may be set");
    return 0;
}

static int parse_scrape_config(pctx *p, yaml_node_t *n, const lw_config *c, lw_scrape_config *sc)
{
    static const char *const keys[] = {"job_name",       "scrape_interval", "scrape_timeout",
                                       "scheme",         "params",          "basic_auth",
                                       "authorization",  "tls_config",      "static_configs",
                                       "file_sd_configs", "profiling_config", NULL};
    int rc = check_keys(p, n, "scrape_configs", "scrape_config", keys);
    if (rc)
        return rc;
    if ((rc = get_string(p, n, "job_name", &sc->job_name)) != 0)
        return rc;
    if (!sc->job_name || !*sc->job_name)
        return fail(p, n, "job_name", "missing job_name in scrape config");

    int64_t interval = 0, timeout = 0;
    if ((rc = get_duration(p, n, "scrape_interval", &interval, true)) != 0 ||
        (rc = get_duration(p, n, "scrape_timeout", &timeout, true)) != 0)
        return rc;
    sc->scrape_interval_ns = interval ? interval : c->scrape_interval_ns;
    if (timeout) {
        if (timeout > sc->scrape_interval_ns) {
            char a[32], b[32];
            return fail(p, lookup(p, n, "scrape_timeout"), "scrape_timeout",
                        "scrape timeout %s is greater than scrape interval %s",
                        lw_format_duration(timeout, a, sizeof(a)),
                        lw_format_duration(sc->scrape_interval_ns, b, sizeof(b)));
        }
        sc->scrape_timeout_ns = timeout;
    } else {
        sc->scrape_timeout_ns = c->scrape_timeout_ns < sc->scrape_interval_ns
                                    ? c->scrape_timeout_ns
                                    : sc->scrape_interval_ns;
    }

    sc->scheme = "http";
    if ((rc = get_string(p, n, "scheme", &sc->scheme)) != 0)
        return rc;
    if (strcmp(sc->scheme, "http") != 0 && strcmp(sc->scheme, "https") != 0)
        return fail(p, lookup(p, n, "scheme"), "scheme", "invalid scheme \"%s\" (want http or https)",
                    sc->scheme);

    yaml_node_t *pm = lookup(p, n, "params");
    if (pm) {
        if ((rc = check_keys(p, pm, "params", "params", NULL)) != 0)
            return rc;
        size_t total = 0, np = (size_t)(pm->data.mapping.pairs.top - pm->data.mapping.pairs.start);
        for (size_t i = 0; i < np; i++) {
            yaml_node_t *v = node(p, pm->data.mapping.pairs.start[i].value);
            yaml_node_t *k = node(p, pm->data.mapping.pairs.start[i].key);
            if ((rc = want_type(p, v, sval(k), YAML_SEQUENCE_NODE)) != 0)
                return rc;
            total += seq_len(v);
        }
        if (!(sc->params = arena_array(p->a, total ? total : 1, sizeof(*sc->params))))
            return oom(p);
        for (size_t i = 0; i < np; i++) {
            yaml_node_t *k = node(p, pm->data.mapping.pairs.start[i].key);
            yaml_node_t *v = node(p, pm->data.mapping.pairs.start[i].value);
            const char **vals;
            size_t nv;
            if ((rc = get_string_list_node(p, v, sval(k), &vals, &nv)) != 0)
                return rc;
            for (size_t j = 0; j < nv; j++) {
                sc->params[sc->n_params].name = arena_strdup(p->a, sval(k));
                sc->params[sc->n_params++].value = vals[j];
            }
        }
    }

    yaml_node_t *ba = lookup(p, n, "basic_auth");
    if (ba && (rc = parse_basic_auth(p, ba, &sc->basic_auth)) != 0)
        return rc;
    yaml_node_t *au = lookup(p, n, "authorization");
    if (au) {
        static const char *const akeys[] = {"type", "credentials", "credentials_file", NULL};
        if ((rc = check_keys(p, au, "authorization", "authorization", akeys)) != 0)
            return rc;
        if (ba)
            return fail(p, au, "authorization", "at most one of basic_auth and authorization may be set");
        sc->authorization.set = true;
        sc->authorization.type = "Bearer";
        if ((rc = get_string(p, au, "type", &sc->authorization.type)) != 0 ||
            (rc = get_string(p, au, "credentials", &sc->authorization.credentials)) != 0 ||
            (rc = get_string(p, au, "credentials_file", &sc->authorization.credentials_file)) != 0)
            return rc;
        if (strcasecmp(sc->authorization.type, "basic") == 0)
            return fail(p, lookup(p, au, "type"), "type",
                        "authorization type cannot be \"Basic\" (use basic_auth)");
        if (sc->authorization.credentials && sc->authorization.credentials_file)
            return fail(p, lookup(p, au, "credentials_file"), "credentials_file",
                        "at most one of credentials and credentials_file may be set");
    }
    yaml_node_t *tls = lookup(p, n, "tls_config");
    if (tls) {
        static const char *const tkeys[] = {"ca_file", "cert_file", "key_file", "server_name",
                                            "insecure_skip_verify", NULL};
        if ((rc = check_keys(p, tls, "tls_config", "tls_config", tkeys)) != 0 ||
            (rc = get_string(p, tls, "ca_file", &sc->tls.ca_file)) != 0 ||
            (rc = get_string(p, tls, "cert_file", &sc->tls.cert_file)) != 0 ||
            (rc = get_string(p, tls, "key_file", &sc->tls.key_file)) != 0 ||
            (rc = get_string(p, tls, "server_name", &sc->tls.server_name)) != 0 ||
            (rc = get_bool(p, tls, "insecure_skip_verify", &sc->tls.insecure_skip_verify)) != 0)
            return rc;
        if (!sc->tls.cert_file != !sc->tls.key_file)
            return fail(p, tls, "tls_config", "cert_file and key_file must be set together");
    }

    yaml_node_t *st = lookup(p, n, "static_configs");
    if (st) {
        if ((rc = want_type(p, st, "static_configs", YAML_SEQUENCE_NODE)) != 0)
            return rc;
        sc->n_static_configs = seq_len(st);
        if (!(sc->static_configs = arena_array(p->a, sc->n_static_configs + 1, sizeof(lw_target_group))))
            return oom(p);
        for (size_t i = 0; i < sc->n_static_configs; i++) {
            yaml_node_t *g = node(p, st->data.sequence.items.start[i]);
            if ((rc = parse_target_group(p, g, "static_configs", sc->scheme, &sc->static_configs[i])) != 0)
                return rc;
        }
    }
    yaml_node_t *fs = lookup(p, n, "file_sd_configs");
    if (fs) {
        static const char *const fkeys[] = {"files", "refresh_interval", NULL};
        if ((rc = want_type(p, fs, "file_sd_configs", YAML_SEQUENCE_NODE)) != 0)
            return rc;
        sc->n_file_sd_configs = seq_len(fs);
        if (!(sc->file_sd_configs = arena_array(p->a, sc->n_file_sd_configs + 1, sizeof(lw_file_sd_config))))
            return oom(p);
        for (size_t i = 0; i < sc->n_file_sd_configs; i++) {
            yaml_node_t *f = node(p, fs->data.sequence.items.start[i]);
            lw_file_sd_config *fc = &sc->file_sd_configs[i];
            fc->refresh_interval_ns = LW_DEFAULT_FILE_SD_REFRESH_NS;
            if ((rc = check_keys(p, f, "file_sd_configs", "file_sd_config", fkeys)) != 0 ||
                (rc = get_duration(p, f, "refresh_interval", &fc->refresh_interval_ns, true)) != 0)
                return rc;
            yaml_node_t *files = lookup(p, f, "files");
            if (!files)
                return fail(p, f, "files", "file_sd_config needs at least one file");
            if ((rc = get_string_list_node(p, files, "files", &fc->files, &fc->n_files)) != 0)
                return rc;
            for (size_t j = 0; j < fc->n_files; j++) {
                const char *fn = fc->files[j];
                const char *base = strrchr(fn, '/');
                base = base ? base + 1 : fn;
                size_t len = strlen(fn);
                bool ext_ok = (len > 5 && strcmp(fn + len - 5, ".json") == 0) ||
                              (len > 4 && strcmp(fn + len - 4, ".yml") == 0) ||
                              (len > 5 && strcmp(fn + len - 5, ".yaml") == 0);
                yaml_node_t *fnode = node(p, files->data.sequence.items.start[j]);
                if (!ext_ok)
                    return fail(p, fnode, "files", "\"%s\" must end in .json, .yml or .yaml", fn);
                if (strpbrk(fn, "*?[") && strpbrk(fn, "*?[") < base)
                    return fail(p, fnode, "files",
                                "\"%s\": only the last path element may contain a glob", fn);
            }
        }
    }

    sc->path_prefix = "";
    yaml_node_t *pc = lookup(p, n, "profiling_config");
    if (pc && (rc = parse_profiling(p, pc, sc)) != 0)
        return rc;
    if (!sc->profiles && (rc = default_profiles(p, sc, 0)) != 0)
        return rc;
    for (size_t i = 0; i < sc->n_profiles; i++) {
        lw_profile_config *pr = &sc->profiles[i];
        if (pr->delta && pr->seconds == 0) {
            int64_t s = sc->scrape_interval_ns / LW_NS_PER_SEC - 1;
            pr->seconds = s < 1 ? 1 : s;
        }
    }
    return 0;
}

/* ---- leak detection and alerting ------------------------------------------------------- */

static void leak_defaults(lw_leak_config *l)
{
    l->window_ns = LW_DEFAULT_LEAK_WINDOW_NS;
    l->min_samples = LW_DEFAULT_LEAK_MIN_SAMPLES;
    l->for_ns = LW_DEFAULT_LEAK_FOR_NS;
    static const double min_growth[LW_N_SIGNALS] = {10, 4 << 20, 10000};
    for (int i = 0; i < LW_N_SIGNALS; i++) {
        l->signals[i].enabled = true;
        l->signals[i].min_growth = min_growth[i];
        l->signals[i].min_relative_growth = 0.05;
        l->signals[i].severity = "warning";
    }
}

static int parse_leak(pctx *p, yaml_node_t *n, lw_leak_config *l)
{
    static const char *const keys[] = {"window", "min_samples", "for", "signals", NULL};
    static const char *const skeys[] = {"enabled", "min_growth", "min_relative_growth", "severity", NULL};
    int rc = check_keys(p, n, "leak_detection", "leak_detection", keys);
    if (rc)
        return rc;
    if ((rc = get_duration(p, n, "window", &l->window_ns, true)) != 0 ||
        (rc = get_int(p, n, "min_samples", 3, 1000000, &l->min_samples)) != 0 ||
        (rc = get_duration(p, n, "for", &l->for_ns, false)) != 0)
        return rc;
    yaml_node_t *sig = lookup(p, n, "signals");
    if (!sig)
        return 0;
    static const char *const signal_keys[] = {"goroutines", "heap_inuse_bytes", "heap_inuse_objects",
                                              NULL};
    if ((rc = check_keys(p, sig, "signals", "signals", signal_keys)) != 0)
        return rc;
    for (int i = 0; i < LW_N_SIGNALS; i++) {
        yaml_node_t *s = lookup(p, sig, lw_signal_names[i]);
        if (!s)
            continue;
        lw_leak_signal_config *sc = &l->signals[i];
        if ((rc = check_keys(p, s, lw_signal_names[i], "signal", skeys)) != 0 ||
            (rc = get_bool(p, s, "enabled", &sc->enabled)) != 0 ||
            (rc = get_float(p, s, "min_growth", &sc->min_growth)) != 0 ||
            (rc = get_float(p, s, "min_relative_growth", &sc->min_relative_growth)) != 0 ||
            (rc = get_string(p, s, "severity", &sc->severity)) != 0)
            return rc;
        if (!*sc->severity)
            return fail(p, lookup(p, s, "severity"), "severity", "must not be empty");
    }
    return 0;
}

static int parse_alerting(pctx *p, yaml_node_t *n, lw_alerting_config *al)
{
    static const char *const keys[] = {"alertmanagers", "resend_delay", NULL};
    static const char *const amkeys[] = {"static_configs", "scheme", "path_prefix", "timeout",
                                         "basic_auth", "api_version", NULL};
    int rc = check_keys(p, n, "alerting", "alerting", keys);
    if (rc)
        return rc;
    if ((rc = get_duration(p, n, "resend_delay", &al->resend_delay_ns, true)) != 0)
        return rc;
    yaml_node_t *ams = lookup(p, n, "alertmanagers");
    if (!ams)
        return 0;
    if ((rc = want_type(p, ams, "alertmanagers", YAML_SEQUENCE_NODE)) != 0)
        return rc;
    al->n_alertmanagers = seq_len(ams);
    if (!(al->alertmanagers = arena_array(p->a, al->n_alertmanagers + 1, sizeof(lw_alertmanager_config))))
        return oom(p);
    for (size_t i = 0; i < al->n_alertmanagers; i++) {
        yaml_node_t *m = node(p, ams->data.sequence.items.start[i]);
        lw_alertmanager_config *am = &al->alertmanagers[i];
        am->scheme = "http";
        am->path_prefix = "";
        am->timeout_ns = LW_DEFAULT_AM_TIMEOUT_NS;
        const char *prefix = NULL, *api = NULL;
        if ((rc = check_keys(p, m, "alertmanagers", "alertmanager_config", amkeys)) != 0 ||
            (rc = get_string(p, m, "scheme", &am->scheme)) != 0 ||
            (rc = get_string(p, m, "path_prefix", &prefix)) != 0 ||
            (rc = get_string(p, m, "api_version", &api)) != 0 ||
            (rc = get_duration(p, m, "timeout", &am->timeout_ns, true)) != 0)
            return rc;
        if (strcmp(am->scheme, "http") != 0 && strcmp(am->scheme, "https") != 0)
            return fail(p, lookup(p, m, "scheme"), "scheme",
                        "invalid scheme \"%s\" (want http or https)", am->scheme);
        if (api && strcmp(api, "v2") != 0)
            return fail(p, lookup(p, m, "api_version"), "api_version",
                        "unsupported api_version \"%s\" (only v2)", api);
        if (prefix && !(am->path_prefix = normalize_prefix(p->a, prefix)))
            return oom(p);
        yaml_node_t *ba = lookup(p, m, "basic_auth");
        if (ba && (rc = parse_basic_auth(p, ba, &am->basic_auth)) != 0)
            return rc;
        yaml_node_t *st = lookup(p, m, "static_configs");
        if (!st)
            continue;
        if ((rc = want_type(p, st, "static_configs", YAML_SEQUENCE_NODE)) != 0)
            return rc;
        size_t ng = seq_len(st);
        lw_target_group *groups = arena_array(p->a, ng + 1, sizeof(*groups));
        if (!groups)
            return oom(p);
        size_t total = 0;
        for (size_t g = 0; g < ng; g++) {
            yaml_node_t *gn = node(p, st->data.sequence.items.start[g]);
            if ((rc = parse_target_group(p, gn, "static_configs", am->scheme, &groups[g])) != 0)
                return rc;
            total += groups[g].n_targets;
        }
        if (!(am->targets = arena_array(p->a, total + 1, sizeof(char *))))
            return oom(p);
        for (size_t g = 0; g < ng; g++)
            for (size_t t = 0; t < groups[g].n_targets; t++)
                am->targets[am->n_targets++] = groups[g].targets[t];
    }
    return 0;
}

/* ---- flags applied to a config ----------------------------------------------- */

/* Split a URL "scheme://host[:port][/prefix]" (scheme optional, http
 * default) into parts allocated in the arena. 0 or -EINVAL with *why. */
static int split_url(struct lw_arena *a, const char *url, const char **scheme, const char **address,
                     const char **prefix, const char **why)
{
    const char *rest = url;
    *scheme = "http";
    const char *sep = strstr(url, "://");
    if (sep) {
        size_t n = (size_t)(sep - url);
        if (n == 4 && strncmp(url, "http", 4) == 0)
            *scheme = "http";
        else if (n == 5 && strncmp(url, "https", 5) == 0)
            *scheme = "https";
        else {
            *why = "scheme must be http or https";
            return -EINVAL;
        }
        rest = sep + 3;
    }
    const char *slash = strchr(rest, '/');
    size_t hlen = slash ? (size_t)(slash - rest) : strlen(rest);
    char *host = arena_strndup(a, rest, hlen);
    if (!host)
        return -ENOMEM;
    if (strpbrk(rest, "?#")) {
        *why = "query strings and fragments are not supported";
        return -EINVAL;
    }
    *address = normalize_target(a, host, *scheme, why);
    if (!*address)
        return *why ? -EINVAL : -ENOMEM;
    *prefix = normalize_prefix(a, slash ? slash : "");
    return *prefix ? 0 : -ENOMEM;
}

static int flag_fail(char *err, size_t err_len, int rc, const char *fmt, ...) LW_PRINTF(4, 5);
static int flag_fail(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return rc;
}

/* Job "leakwatch" from --target URLs: one group per URL, carrying its scheme
 * and path prefix as the internal labels __scheme__ and __path_prefix__
 * (see coll.h). */
static int add_flag_targets(lw_config *c, const lw_flags *f, char *err, size_t err_len)
{
    struct lw_arena *a = c->arena;
    if (lw_config_job(c, LW_FLAG_TARGET_JOB))
        return flag_fail(err, err_len, -EINVAL,
                         "--target: job \"%s\" is already defined in %s", LW_FLAG_TARGET_JOB,
                         c->source);
    lw_scrape_config *arr = arena_array(a, c->n_scrape_configs + 1, sizeof(*arr));
    if (!arr)
        return -ENOMEM;
    if (c->n_scrape_configs)
        memcpy(arr, c->scrape_configs, c->n_scrape_configs * sizeof(*arr));
    lw_scrape_config *sc = &arr[c->n_scrape_configs];
    sc->job_name = LW_FLAG_TARGET_JOB;
    sc->scrape_interval_ns = c->scrape_interval_ns;
    sc->scrape_timeout_ns = c->scrape_timeout_ns;
    sc->scheme = "http";
    sc->path_prefix = "";
    sc->static_configs = arena_array(a, f->n_targets, sizeof(lw_target_group));
    if (!sc->static_configs)
        return -ENOMEM;
    pctx p = {.file = "flags", .a = a, .err = err, .err_len = err_len};
    int rc = default_profiles(&p, sc, 0);
    if (rc)
        return rc;
    for (size_t i = 0; i < sc->n_profiles; i++)
        if (sc->profiles[i].delta && sc->profiles[i].seconds == 0)
            sc->profiles[i].seconds =
                sc->scrape_interval_ns / LW_NS_PER_SEC > 1 ? sc->scrape_interval_ns / LW_NS_PER_SEC - 1 : 1;
    for (size_t i = 0; i < f->n_targets; i++) {
        const char *scheme, *address, *prefix, *why = NULL;
        rc = split_url(a, f->targets[i], &scheme, &address, &prefix, &why);
        if (rc == -EINVAL)
            return flag_fail(err, err_len, rc, "--target: invalid URL \"%s\": %s", f->targets[i], why);
        if (rc)
            return rc;
        lw_target_group *g = &sc->static_configs[sc->n_static_configs++];
        g->targets = arena_array(a, 1, sizeof(char *));
        g->labels = arena_array(a, 2, sizeof(lw_kv));
        if (!g->targets || !g->labels)
            return -ENOMEM;
        g->targets[0] = address;
        g->n_targets = 1;
        g->labels[g->n_labels++] = (lw_kv){"__scheme__", scheme};
        if (*prefix)
            g->labels[g->n_labels++] = (lw_kv){"__path_prefix__", prefix};
    }
    c->scrape_configs = arr;
    c->n_scrape_configs++;
    return 0;
}

static int add_flag_alertmanagers(lw_config *c, const lw_flags *f, char *err, size_t err_len)
{
    struct lw_arena *a = c->arena;
    size_t n = c->alerting.n_alertmanagers + f->n_alertmanager_urls;
    lw_alertmanager_config *arr = arena_array(a, n, sizeof(*arr));
    if (!arr)
        return -ENOMEM;
    if (c->alerting.n_alertmanagers)
        memcpy(arr, c->alerting.alertmanagers, c->alerting.n_alertmanagers * sizeof(*arr));
    for (size_t i = 0; i < f->n_alertmanager_urls; i++) {
        lw_alertmanager_config *am = &arr[c->alerting.n_alertmanagers + i];
        const char *why = NULL, *address;
        int rc = split_url(a, f->alertmanager_urls[i], &am->scheme, &address, &am->path_prefix, &why);
        if (rc == -EINVAL)
            return flag_fail(err, err_len, rc, "--alertmanager.url: invalid URL \"%s\": %s",
                             f->alertmanager_urls[i], why);
        if (rc)
            return rc;
        if (!(am->targets = arena_array(a, 1, sizeof(char *))))
            return -ENOMEM;
        am->targets[0] = address;
        am->n_targets = 1;
        am->timeout_ns = LW_DEFAULT_AM_TIMEOUT_NS;
    }
    c->alerting.alertmanagers = arr;
    c->alerting.n_alertmanagers = n;
    return 0;
}

/* ---- whole document -------------------------------------------------------------- */

static int parse_global(pctx *p, yaml_node_t *g, lw_config *c, const lw_flags *f)
{
    static const char *const keys[] = {"scrape_interval", "scrape_timeout", "evaluation_interval",
                                       "external_labels", NULL};
    int64_t interval = 0, timeout = 0, evaluation = 0;
    yaml_node_t *tnode = NULL;
    int rc;
    if (g) {
        if ((rc = check_keys(p, g, "global", "global", keys)) != 0 ||
            (rc = get_duration(p, g, "scrape_interval", &interval, true)) != 0 ||
            (rc = get_duration(p, g, "scrape_timeout", &timeout, true)) != 0 ||
            (rc = get_duration(p, g, "evaluation_interval", &evaluation, true)) != 0)
            return rc;
        tnode = lookup(p, g, "scrape_timeout");
        yaml_node_t *el = lookup(p, g, "external_labels");
        if (el && (rc = get_labels_node(p, el, "external_labels", &c->external_labels,
                                        &c->n_external_labels)) != 0)
            return rc;
    }
    bool flag_interval = f && f->scrape_interval_ns > 0;
    bool flag_timeout = f && f->scrape_timeout_ns > 0;
    if (flag_interval)
        interval = f->scrape_interval_ns;
    if (flag_timeout)
        timeout = f->scrape_timeout_ns;
    c->scrape_interval_ns = interval ? interval : LW_DEFAULT_SCRAPE_INTERVAL_NS;
    c->evaluation_interval_ns = evaluation ? evaluation : LW_DEFAULT_EVALUATION_INTERVAL_NS;
    if (timeout) {
        if (timeout > c->scrape_interval_ns) {
            char a[32], b[32];
            lw_format_duration(timeout, a, sizeof(a));
            lw_format_duration(c->scrape_interval_ns, b, sizeof(b));
            if (flag_timeout || flag_interval)
                return flag_fail(p->err, p->err_len, -EINVAL,
                                 "--scrape.timeout: scrape timeout %s is greater than scrape "
                                 "interval %s",
                                 a, b);
            return fail(p, tnode, "scrape_timeout",
                        "scrape timeout %s is greater than scrape interval %s", a, b);
        }
        c->scrape_timeout_ns = timeout;
    } else {
        c->scrape_timeout_ns = LW_DEFAULT_SCRAPE_TIMEOUT_NS < c->scrape_interval_ns
                                   ? LW_DEFAULT_SCRAPE_TIMEOUT_NS
                                   : c->scrape_interval_ns;
    }
    return 0;
}

static int parse_document(pctx *p, yaml_node_t *root, lw_config *c, const lw_flags *f)
{
    static const char *const keys[] = {"global", "scrape_configs", "leak_detection", "alerting", NULL};
    int rc;
    if (root && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE)
            return fail(p, root, "config", "expected a mapping at the top level, got %s", type_name(root));
        if ((rc = check_keys(p, root, "config", "the top level", keys)) != 0)
            return rc;
    } else {
        root = NULL;
    }
    if ((rc = parse_global(p, root ? lookup(p, root, "global") : NULL, c, f)) != 0)
        return rc;

    yaml_node_t *scs = root ? lookup(p, root, "scrape_configs") : NULL;
    if (scs) {
        if ((rc = want_type(p, scs, "scrape_configs", YAML_SEQUENCE_NODE)) != 0)
            return rc;
        size_t cnt = seq_len(scs);
        if (!(c->scrape_configs = arena_array(p->a, cnt + 1, sizeof(lw_scrape_config))))
            return oom(p);
        for (size_t i = 0; i < cnt; i++) {
            yaml_node_t *sn = node(p, scs->data.sequence.items.start[i]);
            lw_scrape_config *sc = &c->scrape_configs[i];
            if ((rc = parse_scrape_config(p, sn, c, sc)) != 0)
                return rc;
            for (size_t j = 0; j < i; j++) {
                if (strcmp(c->scrape_configs[j].job_name, sc->job_name) == 0) {
                    yaml_node_t *first = lookup(p, node(p, scs->data.sequence.items.start[j]), "job_name");
                    return fail(p, lookup(p, sn, "job_name"), "job_name",
                                "duplicate job name \"%s\" (first defined at line %zu)", sc->job_name,
                                first ? first->start_mark.line + 1 : 0);
                }
            }
            c->n_scrape_configs++;
        }
    }

    leak_defaults(&c->leak);
    yaml_node_t *ld = root ? lookup(p, root, "leak_detection") : NULL;
    if (ld && (rc = parse_leak(p, ld, &c->leak)) != 0)
        return rc;
    c->alerting.resend_delay_ns = LW_DEFAULT_RESEND_DELAY_NS;
    yaml_node_t *al = root ? lookup(p, root, "alerting") : NULL;
    if (al && (rc = parse_alerting(p, al, &c->alerting)) != 0)
        return rc;
    return 0;
}

/* Turn a libyaml parser error into "FILE:LINE:COL: yaml: problem". */
static int yaml_error(pctx *p, const yaml_parser_t *parser)
{
    const char *what = parser->problem ? parser->problem : "malformed YAML";
    size_t line = parser->problem_mark.line + 1, col = parser->problem_mark.column + 1;
    if (parser->context)
        snprintf(p->err, p->err_len, "%s:%zu:%zu: yaml: %s %s", p->file, line, col, what,
                 parser->context);
    else
        snprintf(p->err, p->err_len, "%s:%zu:%zu: yaml: %s", p->file, line, col, what);
    return parser->error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
}

/* Load data into doc. 0, or an error written through p. */
static int load_yaml(pctx *p, const char *data, size_t len, yaml_document_t *doc)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return oom(p);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, doc))
        rc = yaml_error(p, &parser);
    yaml_parser_delete(&parser);
    return rc;
}

static int apply_detection_flags(lw_config *c, const lw_flags *f, char *err, size_t err_len)
{
    if (f->detection_window_ns > 0)
        c->leak.window_ns = f->detection_window_ns;
    if (f->detection_evaluation_interval_ns > 0)
        c->evaluation_interval_ns = f->detection_evaluation_interval_ns;
    if (f->detection_for_ns >= 0)
        c->leak.for_ns = f->detection_for_ns;
    if (f->detection_min_samples >= 0) {
        if (f->detection_min_samples < 3)
            return flag_fail(err, err_len, -EINVAL, "--detection.min-samples: must be at least 3");
        c->leak.min_samples = f->detection_min_samples;
    }
    return 0;
}

int lw_config_parse(const char *name, const char *data, size_t len, const lw_flags *flags,
                    lw_config **out, char *err, size_t err_len)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    *out = NULL;
    err[0] = '\0';
    int rc;
    bool have_doc = false;
    yaml_document_t doc;
    lw_config *c = calloc(1, sizeof(*c));
    struct lw_arena *a = arena_new();
    pctx p = {.file = name ? name : "config", .a = a, .err = err, .err_len = err_len, .doc = &doc};
    if (!c || !a) {
        rc = oom(&p);
        goto fail_alloc;
    }
    c->arena = a;
    if (!(c->source = arena_strdup(a, p.file))) {
        rc = oom(&p);
        goto fail_alloc;
    }
    if (data) {
        if ((rc = load_yaml(&p, data, len, &doc)) != 0)
            goto fail_alloc;
        have_doc = true;
    }
    if ((rc = parse_document(&p, have_doc ? yaml_document_get_root_node(&doc) : NULL, c, flags)) != 0)
        goto fail_parse;
    if (flags) {
        if ((rc = apply_detection_flags(c, flags, err, err_len)) != 0)
            goto fail_parse;
        if (flags->n_targets && (rc = add_flag_targets(c, flags, err, err_len)) != 0)
            goto fail_parse;
        if (flags->n_alertmanager_urls && (rc = add_flag_alertmanagers(c, flags, err, err_len)) != 0)
            goto fail_parse;
    }
    if (have_doc)
        yaml_document_delete(&doc);
    *out = c;
    return 0;

fail_parse:
    if (rc == -ENOMEM && !err[0])
        oom(&p);
    if (have_doc)
        yaml_document_delete(&doc);
fail_alloc:
    lw_arena_free(a);
    free(c);
    return rc;
}

/* Read a whole (capped) file into a malloc'ed NUL-terminated buffer. */
static int read_file(const char *path, size_t max_bytes, char **out, size_t *len_out, char *err,
                     size_t err_len)
{
    lw_buf b;
    lw_buf_init(&b, max_bytes);
    int rc = lw_buf_read_file(&b, path);
    if (rc) {
        snprintf(err, err_len, "%s: %s", path,
                 rc == -E2BIG ? "file too large" : rc == -ENOMEM ? "out of memory" : strerror(-rc));
        lw_buf_cleanup(&b);
        return rc;
    }
    *out = lw_buf_detach(&b, len_out);
    return 0;
}

int lw_config_load(const lw_flags *flags, lw_config **out, char *err, size_t err_len)
{
    *out = NULL;
    if (!flags->config_file && flags->n_targets == 0) {
        snprintf(err, err_len,
                 "nothing to scrape: give --config.file=FILE or at least one --target=URL "
                 "(see --help)");
        return -EINVAL;
    }
    if (!flags->config_file)
        return lw_config_parse("flags", NULL, 0, flags, out, err, err_len);
    char *data = NULL;
    size_t len = 0;
    int rc = read_file(flags->config_file, MAX_CONFIG_BYTES, &data, &len, err, err_len);
    if (rc)
        return rc;
    rc = lw_config_parse(flags->config_file, data, len, flags, out, err, err_len);
    free(data);
    return rc;
}

void lw_config_free(lw_config *c)
{
    if (!c)
        return;
    lw_arena_free(c->arena);
    free(c);
}

const lw_scrape_config *lw_config_job(const lw_config *c, const char *job_name)
{
    for (size_t i = 0; i < c->n_scrape_configs; i++)
        if (strcmp(c->scrape_configs[i].job_name, job_name) == 0)
            return &c->scrape_configs[i];
    return NULL;
}

const lw_profile_config *lw_config_profile(const lw_scrape_config *sc, const char *name)
{
    for (size_t i = 0; i < sc->n_profiles; i++)
        if (strcmp(sc->profiles[i].name, name) == 0)
            return &sc->profiles[i];
    return NULL;
}

/* ---- file_sd ------------------------------------------------------------------- */

int lw_file_sd_parse(const char *name, const char *data, size_t len, const char *scheme,
                     lw_target_group **groups_out, size_t *n_out, struct lw_arena **arena_out,
                     char *err, size_t err_len)
{
    *groups_out = NULL;
    *n_out = 0;
    *arena_out = NULL;
    yaml_document_t doc;
    struct lw_arena *a = arena_new();
    pctx p = {.file = name, .a = a, .err = err, .err_len = err_len, .doc = &doc};
    if (!a)
        return oom(&p);
    int rc = load_yaml(&p, data, len, &doc);
    if (rc)
        goto fail_load;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    lw_target_group *groups = NULL;
    size_t n = 0;
    if (root && !is_null(root)) {
        if ((rc = want_type(&p, root, "file_sd", YAML_SEQUENCE_NODE)) != 0)
            goto fail_parse;
        n = seq_len(root);
        if (!(groups = arena_array(a, n + 1, sizeof(*groups)))) {
            rc = oom(&p);
            goto fail_parse;
        }
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *g = node(&p, root->data.sequence.items.start[i]);
            if ((rc = parse_target_group(&p, g, "target group", scheme, &groups[i])) != 0)
                goto fail_parse;
        }
    } else if (!(groups = arena_array(a, 1, sizeof(*groups)))) {
        rc = oom(&p);
        goto fail_parse;
    }
    yaml_document_delete(&doc);
    *groups_out = groups;
    *n_out = n;
    *arena_out = a;
    return 0;

fail_parse:
    yaml_document_delete(&doc);
fail_load:
    lw_arena_free(a);
    return rc;
}

/* ---- flags -------------------------------------------------------------------- */

enum flag_kind { F_STRING, F_BOOL, F_DURATION, F_SIZE, F_COUNT, F_LIST, F_LEVEL, F_FORMAT };

typedef struct flag_def {
    const char *name;
    enum flag_kind kind;
    size_t offset;
    size_t count_offset; /* F_LIST: offset of the size_t count */
    const char *def;     /* default shown in --help */
    const char *help;
} flag_def;

#define OFF(field) offsetof(lw_flags, field)

static const flag_def flag_defs[] = {
    {"config.file", F_STRING, OFF(config_file), 0, "", "leakwatchd configuration file (YAML)"},
    {"config.check", F_BOOL, OFF(config_check), 0, "false",
     "validate the configuration, print the result and exit 0 (valid) or 1"},
    {"storage.path", F_STRING, OFF(storage_path), 0, LW_DEFAULT_STORAGE_PATH, "SQLite database file"},
    {"storage.retention.time", F_DURATION, OFF(retention_time_ns), 0, "7d",
     "delete profiles older than this (0 = keep)"},
    {"storage.retention.size", F_SIZE, OFF(retention_size_bytes), 0, "0",
     "keep the database under this size, e.g. 512MB, 1GiB (0 = no limit)"},
    {"storage.retention.interval", F_DURATION, OFF(retention_interval_ns), 0, "1m",
     "how often retention is enforced (and free memory handed back)"},
    {"storage.max-page-count", F_COUNT, OFF(storage_max_page_count), 0, "0",
     "cap the database at this many pages (testing a full disk; 0 = no cap)"},
    {"web.listen-address", F_STRING, OFF(web_listen_address), 0, LW_DEFAULT_LISTEN_ADDRESS,
     "address of the HTTP API and /metrics"},
    {"web.config.file", F_STRING, OFF(web_config_file), 0, "",
     "exporter-toolkit web config (TLS, basic auth)"},
    {"web.external-url", F_STRING, OFF(web_external_url), 0, "",
     "URL under which leakwatchd is reachable, for links in alerts (default http://<web.listen-address>)"},
    {"target", F_LIST, OFF(targets), OFF(n_targets), "",
     "scrape this URL (repeatable), e.g. http://127.0.0.1:6060; job \"leakwatch\""},
    {"scrape.interval", F_DURATION, OFF(scrape_interval_ns), 0, "15s",
     "global scrape interval (overrides the config's)"},
    {"scrape.timeout", F_DURATION, OFF(scrape_timeout_ns), 0, "10s",
     "global scrape timeout (overrides the config's)"},
    {"alertmanager.url", F_LIST, OFF(alertmanager_urls), OFF(n_alertmanager_urls), "",
     "send alerts to this Alertmanager (repeatable), e.g. http://127.0.0.1:9093"},
    {"detection.window", F_DURATION, OFF(detection_window_ns), 0, "30m",
     "leak detection window (overrides leak_detection.window)"},
    {"detection.for", F_DURATION, OFF(detection_for_ns), 0, "10m",
     "how long a leak must persist before its alert fires"},
    {"detection.min-samples", F_COUNT, OFF(detection_min_samples), 0, "10",
     "samples needed in the window before judging"},
    {"detection.evaluation-interval", F_DURATION, OFF(detection_evaluation_interval_ns), 0, "1m",
     "how often each target's leak signals are judged (overrides global.evaluation_interval)"},
    {"log.level", F_LEVEL, OFF(log_level), 0, "info", "debug, info, warn or error"},
    {"log.format", F_FORMAT, OFF(log_format), 0, "logfmt", "logfmt or json"},
    {"agent.enable", F_BOOL, OFF(agent_enable), 0, "false",
     "serve leakwatchd's own /debug/pprof (heap sampling, threads, CPU) on --agent.listen-address; "
     "not available in sanitizer builds"},
    {"agent.listen-address", F_STRING, OFF(agent_listen_address), 0,
     LW_DEFAULT_AGENT_LISTEN_ADDRESS, "address of leakwatchd's own /debug/pprof (with --agent.enable)"},
    {"help", F_BOOL, OFF(help), 0, "", "show this help and exit"},
    {"version", F_BOOL, OFF(version), 0, "", "show the version and exit"},
};
#define N_FLAG_DEFS (sizeof(flag_defs) / sizeof(flag_defs[0]))

static void flags_defaults(lw_flags *f)
{
    memset(f, 0, sizeof(*f));
    f->storage_path = LW_DEFAULT_STORAGE_PATH;
    f->retention_time_ns = LW_DEFAULT_RETENTION_NS;
    f->retention_interval_ns = 60 * LW_NS_PER_SEC;
    f->web_listen_address = LW_DEFAULT_LISTEN_ADDRESS;
    f->agent_listen_address = LW_DEFAULT_AGENT_LISTEN_ADDRESS;
    f->detection_for_ns = -1;
    f->detection_min_samples = -1;
    f->log_level = "info";
    f->log_format = "logfmt";
}

static int list_append(const char ***arr, size_t *n, const char *v)
{
    const char **p = realloc((void *)*arr, (*n + 1) * sizeof(**arr));
    if (!p)
        return -ENOMEM;
    p[(*n)++] = v;
    *arr = p;
    return 0;
}

static int set_flag(lw_flags *f, const flag_def *d, const char *v, char *err, size_t err_len)
{
    char *base = (char *)f;
    switch (d->kind) {
    case F_STRING:
        if (!*v && strcmp(d->name, "web.config.file") != 0 && strcmp(d->name, "web.external-url") != 0)
            return flag_fail(err, err_len, -EINVAL, "--%s: empty value", d->name);
        *(const char **)(base + d->offset) = *v ? v : NULL;
        return 0;
    case F_BOOL:
        if (strcmp(v, "true") == 0)
            *(bool *)(base + d->offset) = true;
        else if (strcmp(v, "false") == 0)
            *(bool *)(base + d->offset) = false;
        else
            return flag_fail(err, err_len, -EINVAL, "--%s: invalid boolean \"%s\"", d->name, v);
        return 0;
    case F_DURATION: {
        int64_t ns;
        if (lw_parse_duration(v, &ns) != 0)
            return flag_fail(err, err_len, -EINVAL, "--%s: invalid duration \"%s\"", d->name, v);
        if (ns == 0 && (d->offset == OFF(scrape_interval_ns) || d->offset == OFF(retention_interval_ns) || d->offset == OFF(scrape_timeout_ns) ||
                        d->offset == OFF(detection_window_ns) ||
                        d->offset == OFF(detection_evaluation_interval_ns)))
            return flag_fail(err, err_len, -EINVAL, "--%s: must be greater than 0", d->name);
        *(int64_t *)(base + d->offset) = ns;
        return 0;
    }
    case F_SIZE: {
        int64_t bytes;
        if (lw_parse_size(v, &bytes) != 0)
            return flag_fail(err, err_len, -EINVAL,
                             "--%s: invalid size \"%s\" (e.g. 512MB, 1GiB, 0)", d->name, v);
        *(int64_t *)(base + d->offset) = bytes;
        return 0;
    }
    case F_COUNT: {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end || n < 0)
            return flag_fail(err, err_len, -EINVAL, "--%s: invalid count \"%s\"", d->name, v);
        *(int64_t *)(base + d->offset) = n;
        return 0;
    }
    case F_LIST:
        if (!*v)
            return flag_fail(err, err_len, -EINVAL, "--%s: empty value", d->name);
        if (list_append((const char ***)(base + d->offset), (size_t *)(base + d->count_offset), v))
            return flag_fail(err, err_len, -ENOMEM, "out of memory");
        return 0;
    case F_LEVEL: {
        static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
        for (int i = 0; levels[i]; i++)
            if (strcmp(v, levels[i]) == 0) {
                *(const char **)(base + d->offset) = v;
                return 0;
            }
        return flag_fail(err, err_len, -EINVAL,
                         "--%s: invalid level \"%s\" (want debug, info, warn or error)", d->name, v);
    }
    case F_FORMAT:
        if (strcmp(v, "logfmt") != 0 && strcmp(v, "json") != 0)
            return flag_fail(err, err_len, -EINVAL, "--%s: invalid format \"%s\" (want logfmt or json)",
                             d->name, v);
        *(const char **)(base + d->offset) = v;
        return 0;
    }
    return -EINVAL;
}

int lw_flags_parse(int argc, char **argv, lw_flags *f, char *err, size_t err_len)
{
    flags_defaults(f);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0) {
            f->help = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0)
            return flag_fail(err, err_len, -EINVAL, "unexpected argument \"%s\" (flags start with --)",
                             arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        bool negated = false;
        const flag_def *d = NULL;
        for (size_t j = 0; j < N_FLAG_DEFS && !d; j++)
            if (strlen(flag_defs[j].name) == nlen && strncmp(flag_defs[j].name, name, nlen) == 0)
                d = &flag_defs[j];
        if (!d && nlen > 3 && strncmp(name, "no-", 3) == 0) {
            for (size_t j = 0; j < N_FLAG_DEFS && !d; j++)
                if (flag_defs[j].kind == F_BOOL && strlen(flag_defs[j].name) == nlen - 3 &&
                    strncmp(flag_defs[j].name, name + 3, nlen - 3) == 0)
                    d = &flag_defs[j];
            negated = d != NULL;
        }
        if (!d)
            return flag_fail(err, err_len, -EINVAL, "unknown flag --%.*s (see --help)", (int)nlen, name);
        const char *value;
        if (d->kind == F_BOOL) {
            value = eq ? eq + 1 : "true";
            if (negated) {
                if (eq)
                    return flag_fail(err, err_len, -EINVAL, "--%.*s takes no value", (int)nlen, name);
                value = "false";
            }
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return flag_fail(err, err_len, -EINVAL, "--%s needs a value", d->name);
        }
        int rc = set_flag(f, d, value, err, err_len);
        if (rc)
            return rc;
    }
    return 0;
}

void lw_flags_cleanup(lw_flags *f)
{
    free((void *)f->targets);
    free((void *)f->alertmanager_urls);
    f->targets = NULL;
    f->alertmanager_urls = NULL;
    f->n_targets = 0;
    f->n_alertmanager_urls = 0;
}

int lw_flags_usage(lw_buf *out)
{
    int rc = lw_buf_puts(out, "usage: leakwatchd [flags]\n\n"
                              "Scrapes pprof endpoints, stores profiles in SQLite and reports "
                              "leaks.\n\nFlags:\n");
    for (size_t i = 0; i < N_FLAG_DEFS && !rc; i++) {
        const flag_def *d = &flag_defs[i];
        char left[64];
        const char *arg = d->kind == F_BOOL ? "" : d->kind == F_DURATION ? "=DURATION"
                                                   : d->kind == F_SIZE   ? "=SIZE"
                                                   : d->kind == F_COUNT  ? "=N"
                                                                         : "=VALUE";
        snprintf(left, sizeof(left), "--%s%s", d->name, arg);
        rc = lw_buf_printf(out, "  %-34s %s%s%s%s\n", left, d->help, *d->def ? " (default: " : "",
                           d->def, *d->def ? ")" : "");
    }
    return rc;
}
