/* engine.c — the detection engine: store-backed evaluation, attribution, alerts, outputs.
 *
 * One mutex guards the engine's tables (latest verdict per target and
 * signal, alerts). Evaluation reads the store without the lock (series,
 * profiles, per-stack values), then takes the lock to publish verdicts, step
 * the alert state machines and persist their state; the Alertmanager payload
 * is handed to the notifier thread after the lock is released. The JSON and
 * text outputs take the lock only while formatting.
 *
 * Persisted alert state: key "alert/<alertname>/<target_id>", value the
 * alerts_state_json() form. Restored at start, so `for` timers and firing
 * alerts survive a restart; labels and annotations are rebuilt at the
 * target's next evaluation (alerts without labels are neither listed nor
 * sent until then).
 */
#include "detect.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "stats.h"
#include "store.h"

#define NS_PER_S 1000000000LL
#define PAYLOAD_MAX_BYTES (4u << 20)

static const char *const alert_names[2] = {"GoroutineLeak", "HeapLeak"};

typedef struct tgt {
    int64_t target_id;
    alerts_kv *labels; /* owned copies, as given */
    size_t n_labels;
    char *job, *instance;
    /* Latest verdict per signal, NULL if none: each allocated by
     * verdict_dup() with only its n_top stacks (most verdicts have none), so
     * a target costs ~1 KB here rather than three full verdicts (~14 KB). */
    detect_verdict *v[DETECT_N_SIGNALS];
    int64_t last_eval_ns; /* now_ns of the latest published evaluation */
    int64_t signal_eval_ns[DETECT_N_SIGNALS]; /* now_ns of each signal's latest judgment */
} tgt;

struct detect_engine {
    store *s;
    detect_config dc;
    alerts_config ac;
    pthread_mutex_t mu;
    tgt *targets;
    size_t n_targets, cap_targets;
    alert **alerts;
    size_t n_alerts, cap_alerts;
    alerts_notifier *notifier; /* NULL without Alertmanagers */
    int64_t first_eval_ns;     /* now_ns of the first evaluation, 0 before */
};

/* ---- small helpers -------------------------------------------------------- */

static void kv_array_free(alerts_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static void fmt_duration(int64_t ns, char *buf, size_t len)
{
    int64_t s = (ns + NS_PER_S / 2) / NS_PER_S;
    int64_t h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
    if (h > 0 && m == 0 && sec == 0)
        snprintf(buf, len, "%" PRId64 "h", h);
    else if (h > 0)
        snprintf(buf, len, "%" PRId64 "h%" PRId64 "m", h, m);
    else if (m > 0 && sec == 0)
        snprintf(buf, len, "%" PRId64 "m", m);
    else if (m > 0)
        snprintf(buf, len, "%" PRId64 "m%" PRId64 "s", m, sec);
    else
        snprintf(buf, len, "%" PRId64 "s", sec);
}

/* A signal value with its unit: "1200 goroutines", "12.3 MiB", "5000 objects". */
static void fmt_amount(int signal, double v, char *buf, size_t len)
{
    if (signal == DETECT_HEAP_INUSE_BYTES) {
        const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        int i = 0;
        double a = fabs(v);
        while (a >= 1024 && i < 4) {
            a /= 1024;
            v /= 1024;
            i++;
        }
        snprintf(buf, len, "%.1f %s", v, u[i]);
    } else {
        snprintf(buf, len, "%.0f %s", v, signal == DETECT_GOROUTINES ? "goroutines" : "objects");
    }
}

static int url_escape(lw_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            rc = lw_buf_append(b, p, 1);
        else
            rc = lw_buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
    return rc;
}

/* RFC 3339 rounded up to the second: the API picks the profile at or before
 * each end, so rounding up keeps the window's first and last profiles. */
static void rfc3339_s(int64_t ns, char *buf, size_t len)
{
    ns = (ns + NS_PER_S - 1) / NS_PER_S * NS_PER_S;
    alerts_format_time(ns, buf, len);
    char *dot = strchr(buf, '.');
    if (dot != NULL)
        snprintf(dot, len - (size_t)(dot - buf), "Z");
}

/* <external_url>/api/v1/diff?job=..&instance=..&type=..&from=..&to=.. */
static int diff_url(const detect_engine *e, const tgt *t, const detect_verdict *v, lw_buf *b)
{
    char from[40], to[40];
    rfc3339_s(v->window_start_ns, from, sizeof(from));
    rfc3339_s(v->window_end_ns, to, sizeof(to));
    int rc = lw_buf_printf(b, "%s/api/v1/diff?job=", e->ac.external_url);
    if (rc == 0)
        rc = url_escape(b, t->job ? t->job : "");
    if (rc == 0)
        rc = lw_buf_puts(b, "&instance=");
    if (rc == 0)
        rc = url_escape(b, t->instance ? t->instance : "");
    if (rc == 0)
        rc = lw_buf_printf(b, "&type=%s&from=%s&to=%s",
                           v->signal == DETECT_GOROUTINES ? "goroutine" : "heap", from, to);
    if (rc == 0 && v->signal != DETECT_GOROUTINES)
        rc = lw_buf_printf(b, "&sample_type=%s",
                           v->signal == DETECT_HEAP_INUSE_BYTES ? "inuse_space" : "inuse_objects");
    return rc;
}

/* ---- attribution ------------------------------------------------------------ */

typedef struct stack_obs {
    int64_t stack_id;
    size_t k;      /* which sampled profile */
    int64_t value;
} stack_obs;

static int cmp_obs(const void *a, const void *b)
{
    const stack_obs *x = a, *y = b;
    if (x->stack_id != y->stack_id)
        return x->stack_id < y->stack_id ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

static int cmp_stack_growth(const void *a, const void *b)
{
    const detect_stack *x = a, *y = b;
    return (x->growth < y->growth) - (x->growth > y->growth);
}

/* Index of sample type name in "a/u,b/u,..." or -1. */
static int sample_index(const char *types, const char *name)
{
    int idx = 0;
    size_t nl = strlen(name);
    for (const char *p = types; *p;) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '/')
            return idx;
        p = strchr(p, ',');
        if (p == NULL)
            break;
        p++;
        idx++;
    }
    return -1;
}

/* Whether a frame is application code, so that a leak is blamed on the
 * function that keeps the memory or starts the thread rather than on a
 * library it calls. The store's top frame skips only the runtime and the
 * allocator; this also skips:
 * - Go's standard library: a Go function (its name has a '.') is
 *   application code when it is "main.f" or its package path starts with a
 *   domain ("github.com/x/y.F"), so a substring leak names the function that
 *   keeps the string, not strings.(*Builder).grow;
 * - C system libraries: frames whose source file is unknown or a relative
 *   build path of a distribution library ("../sysdeps/unix/.../read.c"),
 *   or a system header, so a thread blocked in read(2) names its start
 *   routine, not read. */
static bool user_frame(const char *fn, size_t fn_len, const char *file, size_t file_len)
{
    if (fn_len == 0)
        return false;
    if (memchr(fn, '.', fn_len) != NULL && memmem(fn, fn_len, "::", 2) == NULL) {
        if (fn_len > 5 && strncmp(fn, "main.", 5) == 0)
            return true;
        const char *slash = memchr(fn, '/', fn_len);
        return slash != NULL && memchr(fn, '.', (size_t)(slash - fn)) != NULL;
    }
    if (file_len == 0 || (file_len == 1 && file[0] == '?'))
        return false;
    if (file[0] == '.' || (file_len >= 12 && strncmp(file, "/usr/include", 12) == 0))
        return false;
    return memmem(file, file_len, "/sysdeps/", 9) == NULL;
}

/* Replace d's frame by the leaf-most application frame of its stack
 * ("func (file:line)" lines, leaf first), when there is one. */
static void prefer_user_frame(detect_engine *e, detect_stack *d)
{
    lw_buf b;
    lw_buf_init(&b, 1 << 16);
    if (store_stack_describe(e->s, d->stack_id, &b) == 0 && b.data != NULL) {
        for (const char *line = b.data; *line;) {
            const char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            const char *paren = NULL;
            for (size_t i = len; i >= 2; i--) {
                if (line[i - 1] == '(' && line[i - 2] == ' ') {
                    paren = line + i - 1;
                    break;
                }
            }
            if (paren != NULL && line[len - 1] == ')') {
                size_t fn_len = (size_t)(paren - 1 - line);
                const char *loc = paren + 1;
                size_t loc_len = (size_t)(line + len - 1 - loc);
                size_t file_len = loc_len;
                while (file_len > 0 && loc[file_len - 1] != ':')
                    file_len--;
                file_len = file_len > 0 ? file_len - 1 : loc_len;
                if (user_frame(line, fn_len, loc, file_len)) {
                    snprintf(d->function, sizeof(d->function), "%.*s", (int)fn_len, line);
                    snprintf(d->location, sizeof(d->location), "%.*s", (int)loc_len, loc);
                    break;
                }
            }
            if (end == NULL)
                break;
            line = end + 1;
        }
    }
    lw_buf_cleanup(&b);
}

/* Fill v->top with the stacks whose values grow over the window's profiles. */
static int attribute(detect_engine *e, int64_t target_id, detect_verdict *v)
{
    int rc = 0;
    store_profile_info *infos = NULL;
    size_t n_infos = 0, n_obs = 0, cap_obs = 0, n_cand = 0;
    stack_obs *obs = NULL;
    detect_stack *cand = NULL;
    double *series = NULL;
    const char *ptype = v->signal == DETECT_GOROUTINES ? "goroutine" : "heap";
    store_profile_query q = {.target_id = target_id,
                             .profile_type = ptype,
                             .from_ns = v->window_start_ns,
                             .to_ns = v->window_end_ns};
    rc = store_profiles_list(e->s, &q, &infos, &n_infos);
    if (rc < 0 || n_infos < 2)
        goto out;
    size_t k = e->dc.attribution_profiles < 2 ? 2 : e->dc.attribution_profiles;
    if (k > n_infos)
        k = n_infos;
    series = malloc(k * sizeof(*series));
    if (series == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    int64_t t_first = 0, t_last = 0;
    for (size_t j = 0; j < k; j++) {
        size_t i = (size_t)(((double)j * (double)(n_infos - 1)) / (double)(k - 1) + 0.5);
        const store_profile_info *pi = &infos[i];
        int sidx = 0;
        if (v->signal != DETECT_GOROUTINES) {
            sidx = sample_index(pi->sample_types, v->signal == DETECT_HEAP_INUSE_BYTES
                                                      ? "inuse_space" : "inuse_objects");
            if (sidx < 0)
                continue;
        }
        if (j == 0)
            t_first = pi->time_ns;
        t_last = pi->time_ns;
        store_stack_value *sv = NULL;
        size_t nsv = 0;
        rc = store_profile_stacks(e->s, pi->id, sidx, &sv, &nsv);
        if (rc < 0)
            goto out;
        if (n_obs + nsv > cap_obs) {
            size_t nc = (n_obs + nsv) * 2;
            stack_obs *no = realloc(obs, nc * sizeof(*obs));
            if (no == NULL) {
                free(sv);
                rc = -ENOMEM;
                goto out;
            }
            obs = no;
            cap_obs = nc;
        }
        for (size_t x = 0; x < nsv; x++)
            obs[n_obs++] = (stack_obs){sv[x].stack_id, j, sv[x].value};
        free(sv);
    }
    if (n_obs == 0 || t_last <= t_first)
        goto out;
    qsort(obs, n_obs, sizeof(*obs), cmp_obs);
    cand = calloc(n_obs, sizeof(*cand));
    if (cand == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    double hours = (double)(t_last - t_first) / (3600.0 * NS_PER_S);
    for (size_t i = 0; i < n_obs;) {
        size_t j = i;
        for (size_t x = 0; x < k; x++)
            series[x] = 0;
        while (j < n_obs && obs[j].stack_id == obs[i].stack_id) {
            series[obs[j].k] = (double)obs[j].value;
            j++;
        }
        double growth = series[k - 1] - series[0];
        bool rising = growth > 0;
        if (rising && k >= 3) {
            /* The stack's own series must rise, not just its end points. */
            stats_mk mk;
            if (stats_mann_kendall(series, k, &mk) == 0)
                rising = mk.s > 0 && (k < 6 || mk.z >= 1.64);
        }
        if (rising)
            cand[n_cand++] = (detect_stack){.stack_id = obs[i].stack_id,
                                            .growth = growth,
                                            .rate_per_hour = hours > 0 ? growth / hours : 0};
        i = j;
    }
    qsort(cand, n_cand, sizeof(*cand), cmp_stack_growth);
    size_t top = e->dc.top_stacks > DETECT_MAX_TOP ? DETECT_MAX_TOP : e->dc.top_stacks;
    for (size_t i = 0; i < n_cand && v->n_top < top; i++) {
        detect_stack *d = &v->top[v->n_top];
        *d = cand[i];
        if (store_stack_top_frame(e->s, d->stack_id, d->function, sizeof(d->function), d->location,
                                  sizeof(d->location)) < 0) {
            snprintf(d->function, sizeof(d->function), "?");
            d->location[0] = '\0';
        }
        prefer_user_frame(e, d);
        v->n_top++;
    }
out:
    free(infos);
    free(obs);
    free(cand);
    free(series);
    return rc;
}

/* ---- engine tables (lock held) -------------------------------------------- */

/* Bytes of v that matter: the fixed part and its n_top stacks. */
static size_t verdict_size(const detect_verdict *v)
{
    return offsetof(detect_verdict, top) + v->n_top * sizeof(v->top[0]);
}

/* A heap copy of v's first verdict_size(v) bytes (the unused stack slots
 * are not allocated: read it only through verdict_size()). NULL if out of
 * memory. */
static detect_verdict *verdict_dup(const detect_verdict *v)
{
    size_t n = verdict_size(v);
    void *c = malloc(n);
    if (c != NULL)
        memcpy(c, v, n);
    return c;
}

static tgt *find_target(detect_engine *e, int64_t id)
{
    for (size_t i = 0; i < e->n_targets; i++)
        if (e->targets[i].target_id == id)
            return &e->targets[i];
    return NULL;
}

static void tgt_clear(tgt *t)
{
    kv_array_free(t->labels, t->n_labels);
    free(t->job);
    free(t->instance);
    for (int sig = 0; sig < DETECT_N_SIGNALS; sig++)
        free(t->v[sig]);
    memset(t, 0, sizeof(*t));
}

static int tgt_set_labels(tgt *t, const store_label *labels, size_t n)
{
    alerts_kv *kv = calloc(n ? n : 1, sizeof(*kv));
    char *job = NULL, *inst = NULL;
    if (kv == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        kv[i].name = strdup(labels[i].name ? labels[i].name : "");
        kv[i].value = strdup(labels[i].value ? labels[i].value : "");
        if (kv[i].name == NULL || kv[i].value == NULL) {
            kv_array_free(kv, i + 1);
            return -ENOMEM;
        }
        if (strcmp(kv[i].name, "job") == 0)
            job = kv[i].value;
        if (strcmp(kv[i].name, "instance") == 0)
            inst = kv[i].value;
    }
    char *jd = strdup(job ? job : ""), *id = strdup(inst ? inst : "");
    if (jd == NULL || id == NULL) {
        free(jd);
        free(id);
        kv_array_free(kv, n);
        return -ENOMEM;
    }
    kv_array_free(t->labels, t->n_labels);
    free(t->job);
    free(t->instance);
    t->labels = kv;
    t->n_labels = n;
    t->job = jd;
    t->instance = id;
    return 0;
}

static alert *find_alert(detect_engine *e, const char *name, int64_t target_id, size_t *idx)
{
    for (size_t i = 0; i < e->n_alerts; i++) {
        if (e->alerts[i]->target_id == target_id && strcmp(e->alerts[i]->alertname, name) == 0) {
            if (idx != NULL)
                *idx = i;
            return e->alerts[i];
        }
    }
    return NULL;
}

static alert *add_alert(detect_engine *e, const char *name, int64_t target_id)
{
    if (e->n_alerts == e->cap_alerts) {
        size_t nc = e->cap_alerts ? e->cap_alerts * 2 : 8;
        alert **na = realloc(e->alerts, nc * sizeof(*na));
        if (na == NULL)
            return NULL;
        e->alerts = na;
        e->cap_alerts = nc;
    }
    alert *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    snprintf(a->alertname, sizeof(a->alertname), "%s", name);
    a->target_id = target_id;
    e->alerts[e->n_alerts++] = a;
    return a;
}

static void remove_alert(detect_engine *e, size_t idx)
{
    alerts_clear(e->alerts[idx]);
    free(e->alerts[idx]);
    e->alerts[idx] = e->alerts[--e->n_alerts];
}

static void state_key(const alert *a, char *key, size_t len)
{
    snprintf(key, len, "alert/%s/%" PRId64, a->alertname, a->target_id);
}

static int persist(detect_engine *e, const alert *a, bool remove)
{
    char key[96];
    state_key(a, key, sizeof(key));
    if (remove)
        return store_state_delete(e->s, key);
    lw_buf b;
    lw_buf_init(&b, 1024);
    int rc = alerts_state_json(a, &b);
    if (rc == 0)
        rc = store_state_put(e->s, key, b.data);
    lw_buf_cleanup(&b);
    return rc;
}

/* Rebuild labels and annotations of alert a (index ai: 0 goroutines, 1 heap)
 * from target t and verdict v (the signal that made it active). */
static int alert_describe(detect_engine *e, alert *a, int ai, const tgt *t, const detect_verdict *v)
{
    int rc = 0;
    const char *sev = e->dc.signals[ai == 0 ? DETECT_GOROUTINES : DETECT_HEAP_INUSE_BYTES].severity;
    if (sev[0] == '\0')
        sev = e->ac.severity[0] ? e->ac.severity : "warning";
    alerts_kv *kv = calloc(t->n_labels + 2, sizeof(*kv));
    lw_buf summary, desc, url;
    lw_buf_init(&summary, 4096);
    lw_buf_init(&desc, 8192);
    lw_buf_init(&url, 4096);
    if (kv == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->n_labels; i++)
        kv[n++] = t->labels[i];
    kv[n++] = (alerts_kv){"alertname", (char *)a->alertname};
    kv[n++] = (alerts_kv){"severity", (char *)sev};
    rc = alerts_set_labels(a, kv, n);
    if (rc < 0 || v == NULL)
        goto out;

    char span[32], growth[64], rate[64];
    fmt_duration(v->window_end_ns - v->window_start_ns, span, sizeof(span));
    fmt_amount(v->signal, v->growth, growth, sizeof(growth));
    fmt_amount(v->signal, v->slope_per_second * 3600.0, rate, sizeof(rate));
    if (v->signal == DETECT_GOROUTINES) {
        char *sp = strchr(rate, ' ');
        if (sp != NULL)
            *sp = '\0'; /* "2400/h", the unit is in the growth */
    }
    rc = lw_buf_printf(&summary, "%s leak in %s/%s: +%s in %s (%s/h)",
                       ai == 0 ? "Goroutine" : "Heap", t->job, t->instance, growth, span, rate);
    if (rc == 0)
        rc = lw_buf_printf(&desc, "%s: +%s over %s (%s per hour; Mann-Kendall Z=%.2f, %zu samples).",
                           detect_signal_name(v->signal), growth, span, rate, v->score, v->n_samples);
    if (rc == 0 && v->n_top > 0) {
        char g[64], r[64];
        fmt_amount(v->signal, v->top[0].growth, g, sizeof(g));
        fmt_amount(v->signal, v->top[0].rate_per_hour, r, sizeof(r));
        rc = lw_buf_printf(&desc, " Top growing stack: %s (%s), +%s (%s/h).", v->top[0].function,
                           v->top[0].location, g, r);
    }
    if (rc == 0)
        rc = diff_url(e, t, v, &url);
    if (rc < 0)
        goto out;
    alerts_kv ann[] = {{"summary", summary.data}, {"description", desc.data}, {"diff_url", url.data}};
    rc = alerts_set_annotations(a, ann, 3);
    if (rc == 0) {
        char *gen = strdup(url.data);
        if (gen == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        free(a->generator_url);
        a->generator_url = gen;
        a->value = v->growth;
    }
out:
    free(kv);
    lw_buf_cleanup(&summary);
    lw_buf_cleanup(&desc);
    lw_buf_cleanup(&url);
    return rc;
}

/* Step both alerts of target t at now; append sends to payload list. */
static int step_alerts(detect_engine *e, tgt *t, int64_t now_ns, bool forget, alert **send,
                       size_t *n_send)
{
    int rc = 0;
    for (int ai = 0; ai < 2; ai++) {
        const detect_verdict *v = NULL;
        bool active = false;
        /* Not judged yet by this run (a restart, then a heap profile
         * first): the alert waits; its restored state must not read as
         * "inactive" and lose its activeAt. */
        if (!forget && (ai == 0 ? !t->signal_eval_ns[DETECT_GOROUTINES]
                                : !t->signal_eval_ns[DETECT_HEAP_INUSE_BYTES] &&
                                      !t->signal_eval_ns[DETECT_HEAP_INUSE_OBJECTS]))
            continue;
        if (!forget) {
            if (ai == 0) {
                if (t->v[DETECT_GOROUTINES] != NULL && t->v[DETECT_GOROUTINES]->suspected)
                    v = t->v[DETECT_GOROUTINES];
            } else {
                for (int s = DETECT_HEAP_INUSE_BYTES; s <= DETECT_HEAP_INUSE_OBJECTS && !v; s++)
                    if (t->v[s] != NULL && t->v[s]->suspected)
                        v = t->v[s];
            }
            active = v != NULL;
        }
        size_t idx;
        alert *a = find_alert(e, alert_names[ai], t->target_id, &idx);
        if (a == NULL && !active)
            continue;
        if (a == NULL) {
            a = add_alert(e, alert_names[ai], t->target_id);
            if (a == NULL)
                return -ENOMEM;
            idx = e->n_alerts - 1;
        }
        if (active || a->n_labels == 0) {
            int r = alert_describe(e, a, ai, t, v);
            if (r < 0)
                rc = r;
        }
        bool changed = alerts_step(a, active, now_ns, e->ac.for_ns);
        /* Forget pending alerts that cleared and resolved ones past retention. */
        if (alerts_expired(a, now_ns, e->ac.resolved_retention_ns)) {
            int r = persist(e, a, true);
            if (r < 0)
                rc = r;
            remove_alert(e, idx);
            continue;
        }
        if (alerts_needs_send(a, now_ns, e->ac.resend_delay_ns) && a->n_labels > 0) {
            a->last_sent_ns = now_ns;
            changed = true;
            if (send != NULL)
                send[(*n_send)++] = a;
        }
        if (changed) {
            int r = persist(e, a, false);
            if (r < 0)
                rc = r;
        }
    }
    return rc;
}

/* Alerts whose target is not (or no longer) evaluated: forgotten targets'
 * resolved alerts expire after retention; alerts restored from a previous
 * run whose target has not come back within window + for are dropped. Lock
 * held. */
static int sweep_orphans(detect_engine *e, int64_t now_ns)
{
    int rc = 0;
    for (size_t i = 0; i < e->n_alerts;) {
        alert *a = e->alerts[i];
        bool drop = false;
        if (find_target(e, a->target_id) == NULL) {
            if (a->n_labels == 0)
                drop = now_ns - e->first_eval_ns > e->dc.window_ns + e->ac.for_ns;
            else
                drop = alerts_expired(a, now_ns, e->ac.resolved_retention_ns);
        }
        if (!drop) {
            i++;
            continue;
        }
        int r = persist(e, a, true);
        if (r < 0)
            rc = r;
        remove_alert(e, i);
    }
    return rc;
}

/* Restore "alert/<name>/<id>" keys saved by a previous run. */
static int restore(detect_engine *e)
{
    char **keys = NULL, **vals = NULL;
    size_t n = 0;
    int rc = store_state_list(e->s, "alert/", &keys, &vals, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        long long id;
        if (sscanf(keys[i], "alert/%31[^/]/%lld", name, &id) == 2 &&
            (strcmp(name, alert_names[0]) == 0 || strcmp(name, alert_names[1]) == 0)) {
            alert tmp;
            memset(&tmp, 0, sizeof(tmp));
            if (alerts_state_parse(vals[i], &tmp) == 0 && rc == 0) {
                alert *a = add_alert(e, name, id);
                if (a == NULL) {
                    rc = -ENOMEM;
                } else {
                    a->state = tmp.state;
                    a->active_at_ns = tmp.active_at_ns;
                    a->fired_at_ns = tmp.fired_at_ns;
                    a->resolved_at_ns = tmp.resolved_at_ns;
                    a->last_sent_ns = tmp.last_sent_ns;
                    a->value = tmp.value;
                }
            }
        }
        free(keys[i]);
        free(vals[i]);
    }
    free(keys);
    free(vals);
    return rc;
}

/* ---- public ----------------------------------------------------------------- */

int detect_engine_new(store *s, const detect_config *dc, const alerts_config *ac, detect_engine **out)
{
    int rc = 0;
    if (s == NULL || dc == NULL || out == NULL)
        return -EINVAL;
    detect_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->s = s;
    e->dc = *dc;
    if (ac != NULL)
        e->ac = *ac;
    else
        alerts_config_default(&e->ac);
    if (ac == NULL)
        e->ac.n_alertmanagers = 0;
    size_t l = strlen(e->ac.external_url);
    while (l > 0 && e->ac.external_url[l - 1] == '/')
        e->ac.external_url[--l] = '\0';
    pthread_mutex_init(&e->mu, NULL);
    rc = restore(e);
    if (rc < 0)
        goto fail;
    if (e->ac.n_alertmanagers > 0) {
        rc = alerts_notifier_new(&e->ac, &e->notifier);
        if (rc < 0)
            goto fail;
    }
    *out = e;
    return 0;
fail:
    detect_engine_free(e);
    return rc;
}

void detect_engine_free(detect_engine *e)
{
    if (e == NULL)
        return;
    if (e->notifier != NULL) {
        /* A short grace period for what is queued (resolutions at shutdown). */
        if (alerts_notifier_flush(e->notifier, 2 * NS_PER_S) < 0)
            fprintf(stderr, "leakwatch: detect: unsent alert notifications dropped at shutdown\n");
        alerts_notifier_free(e->notifier);
    }
    for (size_t i = 0; i < e->n_targets; i++)
        tgt_clear(&e->targets[i]);
    free(e->targets);
    for (size_t i = 0; i < e->n_alerts; i++) {
        alerts_clear(e->alerts[i]);
        free(e->alerts[i]);
    }
    free(e->alerts);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* Payload for sends[0..n) queued to the notifier; lock held. */
static int queue_payload(detect_engine *e, alert **send, size_t n, int64_t now_ns, char **payload)
{
    *payload = NULL;
    if (n == 0 || e->notifier == NULL)
        return 0;
    lw_buf b;
    lw_buf_init(&b, PAYLOAD_MAX_BYTES);
    int rc = alerts_payload_json(send, n, now_ns, e->ac.resend_delay_ns, &b);
    if (rc == 0)
        *payload = lw_buf_detach(&b, NULL);
    lw_buf_cleanup(&b);
    return rc;
}

/* Evaluate the signals in mask (bit per signal) of one target: disabled
 * ones lose their verdict, the others not in mask keep theirs. */
static int evaluate(detect_engine *e, int64_t target_id, const store_label *labels,
                    size_t n_labels, unsigned mask, int64_t now_ns)
{
    int rc = 0;
    detect_verdict v[DETECT_N_SIGNALS];
    bool have[DETECT_N_SIGNALS] = {false};
    char *payload = NULL;

    for (int sig = 0; sig < DETECT_N_SIGNALS; sig++) {
        if (!(mask & (1u << sig)) || !e->dc.signals[sig].enabled)
            continue;
        store_point *pts = NULL;
        size_t n = 0;
        rc = store_series_get(e->s, target_id, detect_signal_name(sig), now_ns - e->dc.window_ns,
                              now_ns, &pts, &n);
        if (rc < 0)
            goto out;
        int64_t *t = malloc((n ? n : 1) * sizeof(*t));
        double *val = malloc((n ? n : 1) * sizeof(*val));
        if (t == NULL || val == NULL) {
            free(t);
            free(val);
            free(pts);
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            t[i] = pts[i].time_ns;
            val[i] = pts[i].value;
        }
        free(pts);
        rc = detect_series(&e->dc, sig, t, val, n, &v[sig]);
        free(t);
        free(val);
        if (rc < 0)
            goto out;
        if (v[sig].suspected) {
            rc = attribute(e, target_id, &v[sig]);
            if (rc < 0)
                goto out;
        }
        have[sig] = true;
    }

    pthread_mutex_lock(&e->mu);
    tgt *t = find_target(e, target_id);
    if (t == NULL) {
        if (e->n_targets == e->cap_targets) {
            size_t nc = e->cap_targets ? e->cap_targets * 2 : 8;
            tgt *nt = realloc(e->targets, nc * sizeof(*nt));
            if (nt == NULL) {
                rc = -ENOMEM;
                goto unlock;
            }
            e->targets = nt;
            e->cap_targets = nc;
        }
        t = &e->targets[e->n_targets++];
        memset(t, 0, sizeof(*t));
        t->target_id = target_id;
    }
    /* Evaluations may arrive out of order (a target's heap scrape can
     * start before its goroutine scrape and be stored after it): a
     * verdict is never replaced by an older one, signal by signal, and the
     * alerts step at the newest time seen (never back in time). Skipping
     * the whole evaluation instead would starve the signals of the profile
     * type that is always stored second. */
    int64_t step_ns = now_ns > t->last_eval_ns ? now_ns : t->last_eval_ns;
    t->last_eval_ns = step_ns;
    rc = tgt_set_labels(t, labels, n_labels);
    if (rc < 0)
        goto unlock;
    for (int sig = 0; sig < DETECT_N_SIGNALS; sig++) {
        detect_verdict *nv = NULL;
        if (!(mask & (1u << sig)) || now_ns < t->signal_eval_ns[sig])
            continue;
        if (have[sig] && (nv = verdict_dup(&v[sig])) == NULL) {
            rc = -ENOMEM;
            goto unlock;
        }
        free(t->v[sig]);
        t->v[sig] = nv;
        t->signal_eval_ns[sig] = now_ns;
    }
    alert *send[2];
    size_t n_send = 0;
    rc = step_alerts(e, t, step_ns, false, send, &n_send);
    int qrc = queue_payload(e, send, n_send, step_ns, &payload);
    if (rc == 0)
        rc = qrc;
    if (e->first_eval_ns == 0)
        e->first_eval_ns = step_ns;
    qrc = sweep_orphans(e, step_ns);
    if (rc == 0)
        rc = qrc;
unlock:
    pthread_mutex_unlock(&e->mu);
    if (payload != NULL && alerts_notifier_enqueue(e->notifier, payload) < 0 && rc == 0)
        rc = -EIO;
out:
    return rc;
}

int detect_evaluate_target(detect_engine *e, int64_t target_id, const store_label *labels,
                           size_t n_labels, int64_t now_ns)
{
    if (e == NULL || (labels == NULL && n_labels > 0))
        return -EINVAL;
    return evaluate(e, target_id, labels, n_labels, (1u << DETECT_N_SIGNALS) - 1, now_ns);
}

int detect_evaluate_profile(detect_engine *e, int64_t target_id, const store_label *labels,
                            size_t n_labels, const char *profile_type, int64_t now_ns)
{
    if (e == NULL || profile_type == NULL || (labels == NULL && n_labels > 0))
        return -EINVAL;
    unsigned mask = 0;
    if (strcmp(profile_type, "goroutine") == 0)
        mask = 1u << DETECT_GOROUTINES;
    else if (strcmp(profile_type, "heap") == 0)
        mask = (1u << DETECT_HEAP_INUSE_BYTES) | (1u << DETECT_HEAP_INUSE_OBJECTS);
    if (mask && e->dc.evaluation_interval_ns > 0) {
        /* Judged recently enough: skip (a clock step back judges again). */
        pthread_mutex_lock(&e->mu);
        const tgt *t = find_target(e, target_id);
        for (int sig = 0; t && sig < DETECT_N_SIGNALS; sig++) {
            int64_t last = t->signal_eval_ns[sig];
            if ((mask & (1u << sig)) && last && now_ns >= last &&
                now_ns - last < e->dc.evaluation_interval_ns)
                mask &= ~(1u << sig);
        }
        pthread_mutex_unlock(&e->mu);
    }
    return mask ? evaluate(e, target_id, labels, n_labels, mask, now_ns) : 0;
}

int detect_forget_target(detect_engine *e, int64_t target_id, int64_t now_ns)
{
    int rc = 0;
    char *payload = NULL;
    if (e == NULL)
        return -EINVAL;
    pthread_mutex_lock(&e->mu);
    tgt *t = find_target(e, target_id);
    if (t != NULL) {
        alert *send[2];
        size_t n_send = 0;
        rc = step_alerts(e, t, now_ns, true, send, &n_send);
        int qrc = queue_payload(e, send, n_send, now_ns, &payload);
        if (rc == 0)
            rc = qrc;
        tgt_clear(t);
        *t = e->targets[--e->n_targets];
    }
    pthread_mutex_unlock(&e->mu);
    if (payload != NULL && alerts_notifier_enqueue(e->notifier, payload) < 0 && rc == 0)
        rc = -EIO;
    return rc;
}

int detect_verdict_get(detect_engine *e, int64_t target_id, int signal, detect_verdict *out)
{
    int rc = -ENOENT;
    if (e == NULL || out == NULL || signal < 0 || signal >= DETECT_N_SIGNALS)
        return -EINVAL;
    pthread_mutex_lock(&e->mu);
    tgt *t = find_target(e, target_id);
    if (t != NULL && t->v[signal] != NULL) {
        memset(out, 0, sizeof(*out));
        memcpy(out, t->v[signal], verdict_size(t->v[signal]));
        rc = 0;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* JSON number that is never NaN/Inf. */
static double num_or_zero(double x)
{
    return isfinite(x) ? x : 0.0;
}

int detect_leaks_json(detect_engine *e, lw_buf *out)
{
    if (e == NULL || out == NULL)
        return -EINVAL;
    pthread_mutex_lock(&e->mu);
    int rc = lw_buf_puts(out, "[");
    bool first = true;
    for (size_t i = 0; rc == 0 && i < e->n_targets; i++) {
        const tgt *t = &e->targets[i];
        for (int sig = 0; rc == 0 && sig < DETECT_N_SIGNALS; sig++) {
            if (t->v[sig] == NULL)
                continue;
            const detect_verdict *v = t->v[sig];
            char ws[40], we[40];
            alerts_format_time(v->window_start_ns, ws, sizeof(ws));
            alerts_format_time(v->window_end_ns, we, sizeof(we));
            rc = lw_buf_puts(out, first ? "{\"job\":" : ",{\"job\":");
            first = false;
            if (rc == 0)
                rc = lw_buf_json_str(out, t->job);
            if (rc == 0)
                rc = lw_buf_puts(out, ",\"instance\":");
            if (rc == 0)
                rc = lw_buf_json_str(out, t->instance);
            if (rc == 0)
                rc = lw_buf_printf(out,
                                   ",\"target_id\":%" PRId64 ",\"signal\":\"%s\",\"evaluated\":%s,"
                                   "\"suspected\":%s,\"score\":%.6g,\"p_value\":%.6g,"
                                   "\"slope_per_second\":%.9g,\"growth\":%.9g,\"window_start\":\"%s\","
                                   "\"window_end\":\"%s\",\"n_samples\":%zu,\"reason\":",
                                   t->target_id, detect_signal_name(sig), v->evaluated ? "true" : "false",
                                   v->suspected ? "true" : "false", num_or_zero(v->score),
                                   num_or_zero(v->p_value), num_or_zero(v->slope_per_second),
                                   num_or_zero(v->growth), ws, we, v->n_samples);
            if (rc == 0)
                rc = lw_buf_json_str(out, v->reason);
            if (rc == 0)
                rc = lw_buf_puts(out, ",\"top_stacks\":[");
            for (size_t k = 0; rc == 0 && k < v->n_top; k++) {
                const detect_stack *st = &v->top[k];
                rc = lw_buf_puts(out, k ? ",{\"function\":" : "{\"function\":");
                if (rc == 0)
                    rc = lw_buf_json_str(out, st->function);
                if (rc == 0)
                    rc = lw_buf_puts(out, ",\"location\":");
                if (rc == 0)
                    rc = lw_buf_json_str(out, st->location);
                if (rc == 0)
                    rc = lw_buf_printf(out,
                                       ",\"growth\":%.9g,\"rate_per_hour\":%.9g,\"stack_id\":%" PRId64 "}",
                                       num_or_zero(st->growth), num_or_zero(st->rate_per_hour), st->stack_id);
            }
            if (rc == 0)
                rc = lw_buf_puts(out, "]}");
        }
    }
    if (rc == 0)
        rc = lw_buf_puts(out, "]");
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int detect_alerts_json(detect_engine *e, lw_buf *out)
{
    if (e == NULL || out == NULL)
        return -EINVAL;
    pthread_mutex_lock(&e->mu);
    int rc = lw_buf_puts(out, "[");
    bool first = true;
    for (size_t i = 0; rc == 0 && i < e->n_alerts; i++) {
        const alert *a = e->alerts[i];
        if (a->n_labels == 0 || (a->state == ALERTS_INACTIVE && a->resolved_at_ns == 0))
            continue;
        if (!first)
            rc = lw_buf_puts(out, ",");
        first = false;
        if (rc == 0)
            rc = alerts_api_json(a, out);
    }
    if (rc == 0)
        rc = lw_buf_puts(out, "]");
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static int prom_value(lw_buf *b, const char *s)
{
    int rc = 0;
    for (const char *p = s ? s : ""; rc == 0 && *p; p++) {
        if (*p == '\\')
            rc = lw_buf_puts(b, "\\\\");
        else if (*p == '"')
            rc = lw_buf_puts(b, "\\\"");
        else if (*p == '\n')
            rc = lw_buf_puts(b, "\\n");
        else
            rc = lw_buf_append(b, p, 1);
    }
    return rc;
}

static int prom_series(lw_buf *b, const char *metric, const tgt *t, const char *signal, double value)
{
    int rc = lw_buf_printf(b, "%s{job=\"", metric);
    if (rc == 0)
        rc = prom_value(b, t->job);
    if (rc == 0)
        rc = lw_buf_puts(b, "\",instance=\"");
    if (rc == 0)
        rc = prom_value(b, t->instance);
    if (rc == 0)
        rc = lw_buf_printf(b, "\",signal=\"%s\"} %.9g\n", signal, num_or_zero(value));
    return rc;
}

int detect_metrics_text(detect_engine *e, lw_buf *out)
{
    if (e == NULL || out == NULL)
        return -EINVAL;
    pthread_mutex_lock(&e->mu);
    int rc = lw_buf_puts(out,
                         "# HELP leakwatch_leak_growth_per_second Theil-Sen slope of the signal over "
                         "the detection window, in signal units per second.\n"
                         "# TYPE leakwatch_leak_growth_per_second gauge\n");
    for (size_t i = 0; rc == 0 && i < e->n_targets; i++)
        for (int sig = 0; rc == 0 && sig < DETECT_N_SIGNALS; sig++)
            if (e->targets[i].v[sig] != NULL && e->targets[i].v[sig]->evaluated)
                rc = prom_series(out, "leakwatch_leak_growth_per_second", &e->targets[i],
                                 detect_signal_name(sig), e->targets[i].v[sig]->slope_per_second);
    if (rc == 0)
        rc = lw_buf_puts(out, "# HELP leakwatch_leak_suspected 1 when the detector suspects a leak "
                              "of the signal, else 0.\n"
                              "# TYPE leakwatch_leak_suspected gauge\n");
    for (size_t i = 0; rc == 0 && i < e->n_targets; i++)
        for (int sig = 0; rc == 0 && sig < DETECT_N_SIGNALS; sig++)
            if (e->targets[i].v[sig] != NULL)
                rc = prom_series(out, "leakwatch_leak_suspected", &e->targets[i],
                                 detect_signal_name(sig), e->targets[i].v[sig]->suspected ? 1 : 0);
    if (rc == 0)
        rc = lw_buf_puts(out, "# HELP leakwatch_alerts Leak alerts that are pending or firing, like "
                              "Prometheus' ALERTS.\n"
                              "# TYPE leakwatch_alerts gauge\n");
    for (size_t i = 0; rc == 0 && i < e->n_alerts; i++) {
        const alert *a = e->alerts[i];
        if (a->n_labels == 0 || a->state == ALERTS_INACTIVE)
            continue;
        const char *job = alerts_label(a, "job"), *inst = alerts_label(a, "instance");
        const char *sev = alerts_label(a, "severity");
        rc = lw_buf_printf(out, "leakwatch_alerts{alertname=\"%s\",alertstate=\"%s\",job=\"",
                           a->alertname, alerts_state_name(a->state));
        if (rc == 0)
            rc = prom_value(out, job);
        if (rc == 0)
            rc = lw_buf_puts(out, "\",instance=\"");
        if (rc == 0)
            rc = prom_value(out, inst);
        if (rc == 0)
            rc = lw_buf_puts(out, "\",severity=\"");
        if (rc == 0)
            rc = prom_value(out, sev);
        if (rc == 0)
            rc = lw_buf_puts(out, "\"} 1\n");
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}
