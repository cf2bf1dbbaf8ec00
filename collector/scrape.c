/* scrape.c — the scrape manager: targets, schedule, libcurl multi transfers,
 * decoding, storing, health, /api/v1/targets and /metrics data (see coll.h).
 *
 * Ownership: the collector owns its targets (array of pointers, so that
 * libcurl's CURLOPT_PRIVATE pointers to a profile's state stay valid while
 * the arrays are rebuilt on reload); each target owns its label strings and
 * its profile states; each profile state owns an easy handle and a
 * response buffer only while a transfer runs (both are released after every
 * scrape, so idle targets cost little memory; kept-alive connections live in
 * the connection caches of the collector's share handles, see coll.shares).
 *
 * Locking: only the loop thread changes targets and health, and it does so
 * under c->mu; other threads only read under c->mu. The loop thread reads
 * without the lock (it is the only writer). Workers never touch targets:
 * a job carries copies of what it needs (labels, store id, body) and its
 * result goes back through c->done_head (under c->q_mu), matched to its
 * profile by serial number, so targets may be reconfigured or removed while
 * their jobs run. Hooks are called with no lock held.
 *
 * Storing: a worker decodes a body and hands the profile to the writer
 * thread (c->ingest_head), which stores what has gathered in one
 * transaction (store_ingest_batch) once INGEST_LINGER_NS has passed since
 * the oldest arrived, or sooner when the batch is full or big: one commit
 * per batch instead of one per profile (a small profile's commit writes
 * about six 4 KiB WAL pages, several times its own size). The writer then
 * runs the hooks and returns the jobs to the loop thread.
 */
#include "coll.h"
#include "lw_util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "file_sd.h"
#include "lw_log.h"
#include "pprof.h"

#define ERR_LEN 384
#define FSD_CHECK_DEFAULT_NS LW_NS_PER_SEC
#define MAX_REDIRECTS 5
#define MAX_SECRET_FILE_BYTES 65536
#define COLL_WORKERS 2 /* decode threads */
/* The writer's batches: stored at the latest this long after the oldest
 * profile arrived, at once when this many are waiting or their decoded
 * bodies add up to this many bytes. */
#define INGEST_LINGER_NS (100 * LW_NS_PER_SEC / 1000)
#define INGEST_BATCH_MAX 64
#define INGEST_BATCH_BYTES ((size_t)1 << 20)
/* Decoded profiles are bigger than their bodies: while the writer is behind
 * (a slow disk, retention's collection holding the store) at most this many
 * wait for it; the workers then wait too, and bodies queue instead. */
#define INGEST_QUEUE_MAX (2 * INGEST_BATCH_MAX)
#define COLL_SHARES 64 /* libcurl share handles (connection + DNS caches) */
/* libcurl's receive buffer, allocated per transfer in flight (default 16 KiB;
 * hundreds of transfers are in flight when the machine is loaded). */
#define RECV_BUFFER_BYTES 8192L

typedef struct target target;

typedef struct worker_arg {
    struct coll *c;
    size_t index;
} worker_arg;

typedef struct prof_state {
    target *t;
    uint64_t serial; /* unique per collector, names the state in worker jobs */
    char name[32];
    char *url;
    int64_t timeout_ns;
    CURL *easy; /* exists only while a transfer runs */
    bool in_flight;
    struct curl_slist *headers;
    struct curl_slist *connect_to; /* tls_config.server_name mapping */
    lw_buf body;
    char status_line[160]; /* last "HTTP/1.1 500 Internal Server Error" seen */
    bool too_big;          /* body cap hit */
    char curl_err[CURL_ERROR_SIZE];
    int64_t start_mono_ns;
    int64_t start_wall_ns;
    /* Health, under c->mu. */
    bool has_result;
    bool up;
    int64_t last_scrape_ns; /* wall time the last finished scrape started */
    int64_t last_duration_ns;
    char last_error[ERR_LEN];
    uint64_t n_ok;
    uint64_t n_err;
} prof_state;

struct target {
    char *key; /* identity: URL base + sorted labels */
    char *job;
    char *instance;
    store_label *labels; /* sorted by name; strings owned */
    size_t n_labels;
    char *base_url; /* scheme://address + path prefix */
    char *address;
    const lw_scrape_config *sc;
    int64_t interval_ns;
    uint64_t hash;
    int64_t next_mono_ns;
    int64_t store_id; /* 0 until registered in the store */
    uint64_t serial;  /* unique per collector */
    int64_t cost_ns;  /* moving average of its jobs' decode+store time */
    prof_state **profiles;
    size_t n_profiles;
    /* Last values seen, under c->mu. */
    bool has_goroutines, has_heap;
    double goroutines, heap_inuse_bytes, heap_inuse_objects;
    bool claimed; /* reconcile mark */
    size_t index; /* position in c->targets (lookup hint for finished jobs) */
};

struct coll {
    pthread_mutex_t mu;
    CURLM *multi;
    /* The earliest next_mono_ns of any target (CLOCK_MONOTONIC ns), kept by
     * start_due(); 0 after the targets change (a full scan then). Most
     * wake-ups (socket events) find nothing due and skip the scan. */
    int64_t next_due_ns;
    /* Kept-alive connections and DNS entries, split by target hash over
     * COLL_SHARES caches instead of the multi handle's single ones. libcurl
     * 7.88 walks the whole connection cache in every
     * curl_multi_remove_handle() (close_connect_only) and the whole DNS cache
     * ("host:port" entries) on every transfer (stale entry pruning): with
     * 1000 targets (2000 idle connections) those walks were ~15% of the
     * daemon's CPU. A target always uses the same share, so its connections
     * are still reused from one scrape to the next. Used on the loop thread
     * only (no lock callbacks needed). */
    CURLSH *shares[COLL_SHARES];
    store *store;
    coll_hooks hooks;
    coll_options opt;
    const lw_config *cfg;
    target **targets;
    size_t n_targets;
    coll__fsd **fsds; /* one per (scrape config, file_sd config), in config order */
    size_t n_fsds;
    int64_t next_fsd_check_ns;
    uint64_t next_serial;
    /* Decode/ingest workers and their queues (under q_mu). */
    pthread_t workers[COLL_WORKERS];
    worker_arg worker_args[COLL_WORKERS];
    size_t n_workers;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    bool q_stop;
    struct job *todo_head, *todo_tail; /* FIFO */
    struct job *done_head;             /* results for the loop thread */
    struct job *ingest_head, *ingest_tail; /* decoded, for the writer (FIFO) */
    size_t ingest_n, ingest_bytes;
    pthread_cond_t ingest_cv;
    pthread_cond_t ingest_room_cv; /* the writer took a batch */
    pthread_t writer;
    bool writer_started;
    bool workers_done; /* joined: nothing more reaches the writer's queue */
    uint64_t running[COLL_WORKERS];    /* target serial per busy worker, 0 = idle */
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* "64 MiB", "512 KiB", "1000 bytes". */
static const char *fmt_bytes(size_t n, char *buf, size_t len)
{
    if (n && n % ((size_t)1 << 20) == 0)
        snprintf(buf, len, "%zu MiB", n >> 20);
    else if (n && n % 1024 == 0)
        snprintf(buf, len, "%zu KiB", n >> 10);
    else
        snprintf(buf, len, "%zu bytes", n);
    return buf;
}

static void fmt_rfc3339(int64_t ns, char *buf, size_t len)
{
    time_t sec = (time_t)(ns / LW_NS_PER_SEC);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((ns % LW_NS_PER_SEC) / 1000000));
}

/* ---- targets ------------------------------------------------------------ */

static void prof_free(coll *c, prof_state *ps)
{
    if (!ps)
        return;
    if (ps->easy) {
        if (ps->in_flight)
            curl_multi_remove_handle(c->multi, ps->easy);
        curl_easy_cleanup(ps->easy);
    }
    curl_slist_free_all(ps->headers);
    curl_slist_free_all(ps->connect_to);
    lw_buf_cleanup(&ps->body);
    free(ps->url);
    free(ps);
}

static void target_free(coll *c, target *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_profiles; i++)
        prof_free(c, t->profiles[i]);
    free(t->profiles);
    for (size_t i = 0; i < t->n_labels; i++) {
        free((char *)t->labels[i].name);
        free((char *)t->labels[i].value);
    }
    free(t->labels);
    free(t->key);
    free(t->base_url);
    free(t->address);
    free(t);
}

/* A label list under construction. */
typedef struct label_set {
    store_label *l;
    size_t n;
    size_t cap;
    const char *scheme;
    const char *prefix;
} label_set;

static int ls_set(label_set *s, const char *name, const char *value, bool override)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->l[i].name, name) == 0) {
            if (!override)
                return 0;
            char *v = strdup(value);
            if (!v)
                return -ENOMEM;
            free((char *)s->l[i].value);
            s->l[i].value = v;
            return 0;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        store_label *nl = realloc(s->l, cap * sizeof(*nl));
        if (!nl)
            return -ENOMEM;
        s->l = nl;
        s->cap = cap;
    }
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    s->l[s->n].name = n;
    s->l[s->n++].value = v;
    return 0;
}

static void ls_free(label_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free((char *)s->l[i].name);
        free((char *)s->l[i].value);
    }
    free(s->l);
    memset(s, 0, sizeof(*s));
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const store_label *)a)->name, ((const store_label *)b)->name);
}

static const char *ls_get(const label_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->l[i].name, name) == 0)
            return s->l[i].value;
    return NULL;
}

/* Build a new (unscheduled) target for one address of a group. */
static int target_build(const lw_config *cfg, const lw_scrape_config *sc, const lw_target_group *g,
                        const char *address, target **out)
{
    int rc = -ENOMEM;
    label_set s = {0};
    lw_buf key;
    lw_buf_init(&key, 1 << 20);
    target *t = calloc(1, sizeof(*t));
    if (!t)
        goto fail;
    s.scheme = sc->scheme;
    s.prefix = sc->path_prefix;
    if ((rc = ls_set(&s, "job", sc->job_name, true)) != 0 ||
        (rc = ls_set(&s, "instance", address, true)) != 0)
        goto fail;
    for (size_t i = 0; i < g->n_labels; i++) {
        const lw_kv *kv = &g->labels[i];
        if (strcmp(kv->name, "__scheme__") == 0)
            s.scheme = kv->value;
        else if (strcmp(kv->name, "__path_prefix__") == 0)
            s.prefix = kv->value;
        else if (strncmp(kv->name, "__", 2) != 0 && (rc = ls_set(&s, kv->name, kv->value, true)) != 0)
            goto fail;
    }
    for (size_t i = 0; i < cfg->n_external_labels; i++)
        if ((rc = ls_set(&s, cfg->external_labels[i].name, cfg->external_labels[i].value, false)) != 0)
            goto fail;
    if (strcmp(s.scheme, "http") != 0 && strcmp(s.scheme, "https") != 0)
        s.scheme = sc->scheme;
    qsort(s.l, s.n, sizeof(*s.l), cmp_label);
    rc = lw_buf_printf(&key, "%s://%s%s", s.scheme, address, s.prefix);
    if (rc)
        goto fail;
    if (!(t->base_url = strdup(key.data)) || !(t->address = strdup(address))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < s.n && !rc; i++)
        rc = lw_buf_printf(&key, "|%s=%s", s.l[i].name, s.l[i].value);
    if (rc || !(t->key = lw_buf_detach(&key, NULL))) {
        rc = rc ? rc : -ENOMEM;
        goto fail;
    }
    t->labels = s.l;
    t->n_labels = s.n;
    t->job = (char *)ls_get(&s, "job");
    t->instance = (char *)ls_get(&s, "instance");
    t->hash = fnv1a(t->key);
    t->sc = sc;
    *out = t;
    lw_buf_cleanup(&key);
    return 0;
fail:
    ls_free(&s);
    lw_buf_cleanup(&key);
    if (t) {
        t->labels = NULL;
        t->n_labels = 0;
        free(t->key);
        free(t->base_url);
        free(t->address);
        free(t);
    }
    return rc;
}

/* The URL of one profile of t. */
static char *profile_url(const target *t, const lw_profile_config *pc)
{
    lw_buf u;
    lw_buf_init(&u, 1 << 16);
    int rc = lw_buf_printf(&u, "%s%s", t->base_url, pc->path);
    char sep = strchr(pc->path, '?') ? '&' : '?';
    for (size_t i = 0; i < t->sc->n_params && !rc; i++) {
        char *n = curl_easy_escape(NULL, t->sc->params[i].name, 0);
        char *v = curl_easy_escape(NULL, t->sc->params[i].value, 0);
        rc = n && v ? lw_buf_printf(&u, "%c%s=%s", sep, n, v) : -ENOMEM;
        sep = '&';
        curl_free(n);
        curl_free(v);
    }
    if (!rc && pc->delta)
        rc = lw_buf_printf(&u, "%cseconds=%" PRId64, sep, pc->seconds);
    if (rc) {
        lw_buf_cleanup(&u);
        return NULL;
    }
    return lw_buf_detach(&u, NULL);
}

static int64_t first_slot(int64_t now, int64_t interval, uint64_t hash)
{
    int64_t offset = (int64_t)(hash % (uint64_t)interval);
    int64_t base = now - now % interval + offset;
    if (base < now)
        base += interval;
    return base;
}

/* (Re)derive t's settings from its scrape config: interval, profiles. Old
 * profile states with the same name are kept (with their counters and any
 * request in flight); others are cancelled. Called under c->mu. */
static int target_configure(coll *c, target *t, const lw_scrape_config *sc, int64_t now)
{
    size_t n_enabled = 0;
    for (size_t i = 0; i < sc->n_profiles; i++)
        n_enabled += sc->profiles[i].enabled;
    prof_state **np = calloc(n_enabled ? n_enabled : 1, sizeof(*np));
    if (!np)
        return -ENOMEM;
    t->sc = sc;
    size_t k = 0;
    for (size_t i = 0; i < sc->n_profiles; i++) {
        const lw_profile_config *pc = &sc->profiles[i];
        if (!pc->enabled)
            continue;
        prof_state *ps = NULL;
        for (size_t j = 0; j < t->n_profiles; j++) {
            if (t->profiles[j] && strcmp(t->profiles[j]->name, pc->name) == 0) {
                ps = t->profiles[j];
                t->profiles[j] = NULL;
            }
        }
        char *url = profile_url(t, pc);
        if (!ps && url && (ps = calloc(1, sizeof(*ps))) != NULL)
            ps->serial = ++c->next_serial;
        if (!ps || !url) {
            free(url);
            prof_free(c, ps);
            for (size_t j = 0; j < k; j++)
                prof_free(c, np[j]);
            free(np);
            return -ENOMEM;
        }
        ps->t = t;
        snprintf(ps->name, sizeof(ps->name), "%s", pc->name);
        free(ps->url);
        ps->url = url;
        ps->timeout_ns = sc->scrape_timeout_ns + (pc->delta ? pc->seconds * LW_NS_PER_SEC : 0);
        np[k++] = ps;
    }
    for (size_t j = 0; j < t->n_profiles; j++)
        prof_free(c, t->profiles[j]);
    free(t->profiles);
    t->profiles = np;
    t->n_profiles = k;
    if (t->interval_ns != sc->scrape_interval_ns) {
        t->interval_ns = sc->scrape_interval_ns;
        t->next_mono_ns = first_slot(now, t->interval_ns, t->hash);
    }
    return 0;
}

/* ---- reconcile ---------------------------------------------------------------- */

typedef struct cand_list {
    target **v;
    size_t n;
    size_t cap;
    int rc;
    const lw_config *cfg;
    const lw_scrape_config *sc;
} cand_list;

static void add_group(void *arg, const lw_target_group *g)
{
    cand_list *cl = arg;
    for (size_t i = 0; i < g->n_targets && !cl->rc; i++) {
        target *t;
        int rc = target_build(cl->cfg, cl->sc, g, g->targets[i], &t);
        if (rc) {
            cl->rc = rc;
            return;
        }
        bool dup = false;
        for (size_t j = 0; j < cl->n && !dup; j++)
            dup = strcmp(cl->v[j]->key, t->key) == 0;
        if (dup) {
            target_free(NULL, t);
            continue;
        }
        if (cl->n == cl->cap) {
            size_t cap = cl->cap ? cl->cap * 2 : 16;
            target **nv = realloc(cl->v, cap * sizeof(*nv));
            if (!nv) {
                target_free(NULL, t);
                cl->rc = -ENOMEM;
                return;
            }
            cl->v = nv;
            cl->cap = cap;
        }
        cl->v[cl->n++] = t;
    }
}

/* Rebuild the target list from cfg and the file_sd watchers' groups. */
static int reconcile(coll *c, const lw_config *cfg)
{
    c->next_due_ns = 0; /* schedules may change below */
    cand_list cl = {.cfg = cfg};
    size_t fi = 0;
    for (size_t i = 0; i < cfg->n_scrape_configs && !cl.rc; i++) {
        cl.sc = &cfg->scrape_configs[i];
        for (size_t g = 0; g < cl.sc->n_static_configs && !cl.rc; g++)
            add_group(&cl, &cl.sc->static_configs[g]);
        for (size_t f = 0; f < cl.sc->n_file_sd_configs && !cl.rc; f++)
            coll__fsd_foreach(c->fsds[fi++], add_group, &cl);
    }
    if (cl.rc) {
        for (size_t i = 0; i < cl.n; i++)
            target_free(NULL, cl.v[i]);
        free(cl.v);
        return cl.rc;
    }
    int64_t now = lw_mono_ns();
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_targets; i++)
        c->targets[i]->claimed = false;
    int rc = 0;
    size_t n_new = 0, n_kept = 0;
    for (size_t i = 0; i < cl.n; i++) {
        target *old = NULL;
        const lw_scrape_config *nsc = cl.v[i]->sc;
        for (size_t j = 0; j < c->n_targets && !old; j++)
            if (!c->targets[j]->claimed && strcmp(c->targets[j]->key, cl.v[i]->key) == 0)
                old = c->targets[j];
        if (old) {
            old->claimed = true;
            target_free(c, cl.v[i]);
            cl.v[i] = old;
            n_kept++;
        } else {
            cl.v[i]->serial = ++c->next_serial;
            n_new++;
        }
        cl.v[i]->index = i;
        int r = target_configure(c, cl.v[i], nsc, now);
        if (r && !rc)
            rc = r;
    }
    /* Keep one idle connection per profile of every target (libcurl holds
     * each share's connection cache to the multi handle's limit, whose
     * default follows the handles added at the moment and would close
     * kept-alive connections between scrapes). */
    size_t n_profiles = 0;
    for (size_t i = 0; i < cl.n; i++)
        n_profiles += cl.v[i]->n_profiles;
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)(n_profiles + 16));
    /* Swap, then drop the targets that left. */
    target **old_targets = c->targets;
    size_t n_old = c->n_targets;
    c->targets = cl.v;
    c->n_targets = cl.n;
    c->cfg = cfg;
    pthread_mutex_unlock(&c->mu);
    for (size_t j = 0; j < n_old; j++) {
        target *t = old_targets[j];
        if (t->claimed)
            continue;
        lw_log(LW_LOG_INFO, "target removed", "job", t->job, "instance", t->instance, NULL);
        if (t->store_id && c->hooks.on_target_removed)
            c->hooks.on_target_removed(c->hooks.ctx, t->store_id);
        target_free(c, t);
    }
    free(old_targets);
    char a[32], b[32];
    snprintf(a, sizeof(a), "%zu", cl.n);
    snprintf(b, sizeof(b), "%zu", n_new);
    lw_log(LW_LOG_INFO, "targets updated", "targets", a, "new", b, NULL);
    return rc;
}

static void fsds_free(coll__fsd **f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        coll__fsd_free(f[i]);
    free(f);
}

/* New file_sd watchers for cfg, files read once. */
static int fsds_new(const lw_config *cfg, coll__fsd ***out, size_t *n_out)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_scrape_configs; i++)
        n += cfg->scrape_configs[i].n_file_sd_configs;
    coll__fsd **f = calloc(n ? n : 1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    size_t k = 0;
    int64_t now = lw_mono_ns();
    for (size_t i = 0; i < cfg->n_scrape_configs; i++) {
        const lw_scrape_config *sc = &cfg->scrape_configs[i];
        for (size_t j = 0; j < sc->n_file_sd_configs; j++) {
            int rc = coll__fsd_new(&sc->file_sd_configs[j], sc->job_name, sc->scheme, &f[k]);
            if (rc) {
                fsds_free(f, k);
                return rc;
            }
            (void)coll__fsd_poll(f[k++], now);
        }
    }
    *out = f;
    *n_out = n;
    return 0;
}

/* ---- transfers ------------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    prof_state *ps = arg;
    size_t n = size * nmemb;
    int rc = lw_buf_append(&ps->body, data, n);
    if (rc == -E2BIG) {
        ps->too_big = true;
        return 0;
    }
    return rc ? 0 : n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    prof_state *ps = arg;
    size_t n = size * nmemb;
    if (n > 5 && strncmp(data, "HTTP/", 5) == 0) {
        size_t len = n;
        while (len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
            len--;
        if (len >= sizeof(ps->status_line))
            len = sizeof(ps->status_line) - 1;
        memcpy(ps->status_line, data, len);
        ps->status_line[len] = '\0';
        lw_buf_reset(&ps->body);
    }
    return n;
}

/* Read a small secret file, trimmed of trailing whitespace. NULL on error,
 * with why (for "cannot read FILE: why") set. */
static char *read_secret(const char *path, const char **why)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    char *buf = calloc(1, MAX_SECRET_FILE_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_SECRET_FILE_BYTES, f) : 0;
    fclose(f);
    if (!buf) {
        *why = "out of memory";
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return buf;
}

static void set_result(coll *c, prof_state *ps, bool ok, const char *err, int64_t duration_ns)
{
    pthread_mutex_lock(&c->mu);
    bool was_up = ps->up, had = ps->has_result;
    bool same_err = !ok && had && strcmp(ps->last_error, err) == 0;
    ps->has_result = true;
    ps->up = ok;
    ps->last_scrape_ns = ps->start_wall_ns;
    ps->last_duration_ns = duration_ns;
    snprintf(ps->last_error, sizeof(ps->last_error), "%s", ok ? "" : err);
    if (ok)
        ps->n_ok++;
    else
        ps->n_err++;
    pthread_mutex_unlock(&c->mu);
    const target *t = ps->t;
    if (!ok && !same_err)
        lw_log(LW_LOG_WARN, "scrape failed", "job", t->job, "instance", t->instance, "profile",
               ps->name, "url", ps->url, "err", err, NULL);
    else if (ok && had && !was_up)
        lw_log(LW_LOG_INFO, "scrape recovered", "job", t->job, "instance", t->instance, "profile",
               ps->name, NULL);
    else if (lw_log_enabled(LW_LOG_DEBUG)) {
        char d[32];
        snprintf(d, sizeof(d), "%.3f", (double)duration_ns / 1e9);
        lw_log(LW_LOG_DEBUG, ok ? "scrape ok" : "scrape failed", "job", t->job, "instance",
               t->instance, "profile", ps->name, "duration_seconds", d, "err", ok ? "" : err, NULL);
    }
}

/* Start one transfer. 0, or a negative errno with err set. */
static int start_scrape(coll *c, prof_state *ps, char *err, size_t err_len)
{
    const target *t = ps->t;
    const lw_scrape_config *sc = t->sc;
    char *secret = NULL;
    const char *why = NULL;
    snprintf(err, err_len, "out of memory");
    if (!ps->easy && !(ps->easy = curl_easy_init()))
        return -ENOMEM;
    CURL *e = ps->easy;
    curl_easy_setopt(e, CURLOPT_SHARE, c->shares[t->hash % COLL_SHARES]);
    curl_slist_free_all(ps->headers);
    ps->headers = NULL;
    curl_slist_free_all(ps->connect_to);
    ps->connect_to = NULL;
    lw_buf_cleanup(&ps->body);
    lw_buf_init(&ps->body, c->opt.max_body_bytes);
    ps->status_line[0] = '\0';
    ps->curl_err[0] = '\0';
    ps->too_big = false;

    struct curl_slist *h = curl_slist_append(NULL, "Accept-Encoding: gzip");
    if (h)
        h = curl_slist_append(h, "Accept: application/octet-stream, */*;q=0.5");
    if (sc->authorization.set && h) {
        const char *cred = sc->authorization.credentials;
        if (sc->authorization.credentials_file &&
            !(cred = secret = read_secret(sc->authorization.credentials_file, &why))) {
            curl_slist_free_all(h);
            snprintf(err, err_len, "authorization: cannot read %s: %s",
                     sc->authorization.credentials_file, why);
            return -EIO;
        }
        if (cred) {
            char line[MAX_SECRET_FILE_BYTES + 128];
            snprintf(line, sizeof(line), "Authorization: %s %s", sc->authorization.type, cred);
            struct curl_slist *h2 = curl_slist_append(h, line);
            if (!h2) {
                curl_slist_free_all(h);
                h = NULL;
            } else {
                h = h2;
            }
        }
        free(secret);
        secret = NULL;
    }
    if (!h)
        return -ENOMEM;
    ps->headers = h;

    long timeout_ms = (long)(ps->timeout_ns / 1000000);
    if (sc->tls.server_name && strncmp(ps->url, "https://", 8) == 0) {
        /* Ask for https://SERVER_NAME:PORT/... (SNI and certificate name)
         * but connect to the target's address. */
        const char *colon = strrchr(t->address, ':');
        char map[512], url[8192];
        snprintf(map, sizeof(map), "%s:%s:%.*s:%s", sc->tls.server_name, colon + 1,
                 (int)(colon - t->address), t->address, colon + 1);
        snprintf(url, sizeof(url), "https://%s:%s%s", sc->tls.server_name, colon + 1,
                 ps->url + 8 + strlen(t->address));
        if (!(ps->connect_to = curl_slist_append(NULL, map)))
            return -ENOMEM;
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, ps->connect_to);
        curl_easy_setopt(e, CURLOPT_URL, url);
    } else {
        curl_easy_setopt(e, CURLOPT_URL, ps->url);
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, ps);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, ps);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, ps);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ps->curl_err);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, RECV_BUFFER_BYTES);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, ps->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "leakwatch/" LW_VERSION);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->opt.max_body_bytes);
    if (sc->basic_auth.set) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, sc->basic_auth.username);
        if (sc->basic_auth.password_file) {
            if (!(secret = read_secret(sc->basic_auth.password_file, &why))) {
                snprintf(err, err_len, "basic_auth: cannot read %s: %s", sc->basic_auth.password_file, why);
                return -EIO;
            }
            curl_easy_setopt(e, CURLOPT_PASSWORD, secret);
            free(secret);
        } else {
            curl_easy_setopt(e, CURLOPT_PASSWORD, sc->basic_auth.password ? sc->basic_auth.password : "");
        }
    }
    if (sc->tls.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, sc->tls.ca_file);
    if (sc->tls.cert_file) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, sc->tls.cert_file);
        curl_easy_setopt(e, CURLOPT_SSLKEY, sc->tls.key_file);
    }
    if (sc->tls.insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    ps->start_mono_ns = lw_mono_ns();
    ps->start_wall_ns = lw_wall_ns();
    CURLMcode mrc = curl_multi_add_handle(c->multi, e);
    if (mrc != CURLM_OK) {
        snprintf(err, err_len, "cannot start request: %s", curl_multi_strerror(mrc));
        return -EIO;
    }
    ps->in_flight = true;
    return 0;
}

/* Describe a failed transfer precisely. */
static void transfer_error(coll *c, prof_state *ps, CURLcode code, char *out, size_t len)
{
    char b[32];
    long os_errno = 0;
    switch (code) {
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(ps->easy, CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno == ECONNREFUSED)
            snprintf(out, len, "connection refused");
        else
            snprintf(out, len, "connection failed: %s", ps->curl_err[0] ? ps->curl_err : strerror((int)os_errno));
        return;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(out, len, "timeout after %s", lw_format_duration(ps->timeout_ns, b, sizeof(b)));
        return;
    case CURLE_FILESIZE_EXCEEDED:
        snprintf(out, len, "response exceeds %s", fmt_bytes(c->opt.max_body_bytes, b, sizeof(b)));
        return;
    case CURLE_WRITE_ERROR:
        if (ps->too_big) {
            snprintf(out, len, "response exceeds %s", fmt_bytes(c->opt.max_body_bytes, b, sizeof(b)));
            return;
        }
        snprintf(out, len, "out of memory reading the response");
        return;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(out, len, "too many redirects (more than %d)", MAX_REDIRECTS);
        return;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(out, len, "cannot resolve host: %s", ps->curl_err[0] ? ps->curl_err : "unknown");
        return;
    case CURLE_GOT_NOTHING:
        snprintf(out, len, "empty reply from server");
        return;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(out, len, "TLS: %s", ps->curl_err[0] ? ps->curl_err : curl_easy_strerror(code));
        return;
    default:
        snprintf(out, len, "%s", ps->curl_err[0] ? ps->curl_err : curl_easy_strerror(code));
        return;
    }
}

/* ---- decode and ingest workers --------------------------------------------- */

/* A fetched body on its way through a worker (decode, store, hook) and back
 * to the loop thread with the result. Owns copies of everything it needs, so
 * the target may be reconfigured or removed meanwhile. */
typedef struct job {
    struct job *next;
    uint64_t serial;        /* of the prof_state that fetched it */
    uint64_t target_serial; /* of its target: one job per target runs at a time */
    size_t target_index;    /* the target's index when the job was made (a hint) */
    int64_t cost_ns;        /* the target's recent decode+store time: cheap jobs go first */
    int64_t run_ns;         /* this job's decode+store time */
    char profile_type[32];
    int64_t start_wall_ns;
    int64_t duration_ns;
    int64_t store_id; /* target's store id, 0 = register it */
    store_label *labels;
    size_t n_labels;
    lw_buf body;
    pprof_profile *prof;  /* decoded, waiting for the writer */
    size_t prof_bytes;    /* its body size (the writer bounds batches by it) */
    int64_t queued_ns;    /* when it reached the writer's queue */
    /* Results. */
    char err[ERR_LEN];
    bool has_value;
    double values[3]; /* goroutines, or heap inuse bytes and objects */
} job;

static void job_free(job *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n_labels; i++) {
        free((char *)j->labels[i].name);
        free((char *)j->labels[i].value);
    }
    free(j->labels);
    lw_buf_cleanup(&j->body);
    pprof_free(j->prof);
    free(j);
}

static void job_values(job *j, const pprof_profile *p)
{
    int64_t totals[16];
    if (p->n_sample_types == 0 || p->n_sample_types > 16)
        return;
    pprof_totals(p, totals);
    if (strcmp(j->profile_type, "goroutine") == 0) {
        j->values[0] = (double)totals[p->n_sample_types - 1];
        j->has_value = true;
    } else if (strcmp(j->profile_type, "heap") == 0) {
        int ib = pprof_sample_type_index(p, "inuse_space");
        int io = pprof_sample_type_index(p, "inuse_objects");
        if (ib >= 0 && io >= 0) {
            j->values[1] = (double)totals[ib];
            j->values[2] = (double)totals[io];
            j->has_value = true;
        }
    }
}

/* Decode one body and register its target (worker thread): on success
 * j->prof holds the profile for the writer, else j->err says why. */
static void job_decode(coll *c, job *j)
{
    pprof_profile *p = NULL;
    const lw_buf *body = &j->body;
    int rc;
    /* A Content-Encoding: gzip layer is one more gzip layer around the
     * profile: pprof_decode unwraps it under the same cap. */
    if (body->len == 0) {
        snprintf(j->err, sizeof(j->err), "not a pprof profile: empty response");
        goto out;
    }
    pprof_limits lim = {.max_compressed_bytes = c->opt.max_decompressed_bytes,
                        .max_decompressed_bytes = c->opt.max_decompressed_bytes};
    char derr[PPROF_ERR_LEN] = "";
    rc = pprof_decode(body->data, body->len, &lim, &p, derr, sizeof(derr));
    if (rc) {
        snprintf(j->err, sizeof(j->err), "%s%s",
                 rc == -E2BIG ? "profile too large: " : "not a pprof profile: ",
                 derr[0] ? derr : strerror(-rc));
        goto out;
    }
    j->prof_bytes = body->len; /* bounds the bytes a writer batch holds */
    lw_buf_cleanup(&j->body);
    if (!j->store_id) {
        rc = store_target_upsert(c->store, j->labels, j->n_labels, &j->store_id);
        if (rc) {
            snprintf(j->err, sizeof(j->err), "storage: cannot register target: %s", strerror(-rc));
            j->store_id = 0;
            goto out;
        }
    }
    j->prof = p;
    p = NULL;
out:
    pprof_free(p);
    lw_buf_cleanup(&j->body);
}

/* After the writer stored j (rc, profile_id, serr): result, values, hook. */
static void job_stored(coll *c, job *j, int rc, int64_t profile_id, const char *serr)
{
    if (rc) {
        snprintf(j->err, sizeof(j->err), "storage: %s", serr[0] ? serr : strerror(-rc));
        return;
    }
    if (lw_log_enabled(LW_LOG_DEBUG)) {
        /* After COMMIT: a profile logged here is durable (crash tests check it). */
        char id[24], tid[24];
        snprintf(id, sizeof(id), "%lld", (long long)profile_id);
        snprintf(tid, sizeof(tid), "%lld", (long long)j->store_id);
        lw_log(LW_LOG_DEBUG, "profile stored", "id", id, "target_id", tid, "profile",
               j->profile_type, NULL);
    }
    job_values(j, j->prof);
    if (c->hooks.on_ingest)
        c->hooks.on_ingest(c->hooks.ctx, j->store_id, j->labels, j->n_labels, j->profile_type,
                           profile_id, j->start_wall_ns);
}

/* Return finished jobs (a chain linked by next) to the loop thread. */
static void jobs_done(coll *c, job *head)
{
    if (!head)
        return;
    job *tail = head;
    while (tail->next)
        tail = tail->next;
    pthread_mutex_lock(&c->q_mu);
    tail->next = c->done_head;
    c->done_head = head;
    pthread_mutex_unlock(&c->q_mu);
    curl_multi_wakeup(c->multi);
}

/* Store one batch of decoded jobs (writer thread, no lock held). */
static void ingest_batch(coll *c, job *head, size_t n)
{
    store_ingest_item *items = calloc(n, sizeof(*items));
    size_t k = 0;
    int64_t t0 = lw_mono_ns();
    for (job *j = head; j && items; j = j->next, k++)
        items[k] = (store_ingest_item){.target_id = j->store_id, .profile_type = j->profile_type,
                                       .time_ns = j->start_wall_ns, .profile = j->prof};
    /* A failed commit leaves its error in every item, read below. */
    int batch_rc = items ? store_ingest_batch(c->store, items, n) : -ENOMEM;
    int64_t share = (lw_mono_ns() - t0) / (int64_t)n;
    k = 0;
    for (job *j = head; j; j = j->next, k++) {
        int64_t profile_id = 0;
        char serr[STORE_ERR_LEN] = "";
        int rc = batch_rc;
        if (items) {
            rc = items[k].rc;
            profile_id = items[k].id;
            snprintf(serr, sizeof(serr), "%s", items[k].err);
        }
        if (rc == -ENOENT &&
            store_target_upsert(c->store, j->labels, j->n_labels, &j->store_id) == 0) {
            /* The cached target id is gone from the store (deleted
             * meanwhile): registered again, retry once. */
            serr[0] = '\0';
            rc = store_ingest(c->store, j->store_id, j->profile_type, j->start_wall_ns, j->prof,
                              &profile_id, serr, sizeof(serr));
        }
        job_stored(c, j, rc, profile_id, serr);
        pprof_free(j->prof);
        j->prof = NULL;
        j->run_ns += share;
    }
    free(items);
    jobs_done(c, head);
}

static void *writer_main(void *arg)
{
    coll *c = arg;
    pthread_mutex_lock(&c->q_mu);
    for (;;) {
        while (!c->workers_done && !c->ingest_head)
            pthread_cond_wait(&c->ingest_cv, &c->q_mu);
        if (!c->ingest_head)
            break; /* the workers are gone and nothing is left */
        /* Let a batch gather, unless stopping (then store what is here). */
        while (!c->q_stop && c->ingest_n < INGEST_BATCH_MAX &&
               c->ingest_bytes < INGEST_BATCH_BYTES) {
            /* queued_ns is CLOCK_MONOTONIC, the clock of ingest_cv */
            int64_t due = c->ingest_head->queued_ns + INGEST_LINGER_NS;
            if (lw_mono_ns() >= due)
                break;
            struct timespec ts = {.tv_sec = (time_t)(due / LW_NS_PER_SEC),
                                  .tv_nsec = (long)(due % LW_NS_PER_SEC)};
            pthread_cond_timedwait(&c->ingest_cv, &c->q_mu, &ts);
        }
        job *head = c->ingest_head;
        size_t n = 0;
        job *last = head;
        for (job *j = head; j && n < INGEST_BATCH_MAX; j = j->next) {
            last = j;
            n++;
            c->ingest_bytes -= j->prof_bytes;
        }
        c->ingest_head = last->next;
        if (!c->ingest_head)
            c->ingest_tail = NULL;
        last->next = NULL;
        c->ingest_n -= n;
        pthread_cond_broadcast(&c->ingest_room_cv);
        pthread_mutex_unlock(&c->q_mu);
        ingest_batch(c, head, n);
        pthread_mutex_lock(&c->q_mu);
    }
    pthread_mutex_unlock(&c->q_mu);
    return NULL;
}

/* The queued job to run next (under q_mu): the cheapest one whose target
 * has no job running. A target that sends gzip bombs or huge profiles thus
 * occupies at most one worker and goes after the cheap jobs of healthy
 * targets, whose ingest stays on time. NULL if none is eligible. */
static job *pick_job(coll *c)
{
    job *best = NULL, *best_prev = NULL, *prev = NULL;
    for (job *j = c->todo_head; j; prev = j, j = j->next) {
        bool busy = false;
        for (size_t w = 0; w < c->n_workers && !busy; w++)
            busy = c->running[w] == j->target_serial;
        if (!busy && (!best || j->cost_ns < best->cost_ns)) {
            best = j;
            best_prev = prev;
        }
    }
    if (!best)
        return NULL;
    if (best_prev)
        best_prev->next = best->next;
    else
        c->todo_head = best->next;
    if (c->todo_tail == best)
        c->todo_tail = best_prev;
    best->next = NULL;
    return best;
}

static void *worker_main(void *arg)
{
    coll *c = ((worker_arg *)arg)->c;
    size_t me = ((worker_arg *)arg)->index;
    pthread_mutex_lock(&c->q_mu);
    for (;;) {
        job *j = NULL;
        while (!c->q_stop && !(j = pick_job(c)))
            pthread_cond_wait(&c->q_cv, &c->q_mu);
        if (c->q_stop) {
            if (j) { /* not run: back to the queue, dropped by coll_free */
                j->next = c->todo_head;
                c->todo_head = j;
                if (!c->todo_tail)
                    c->todo_tail = j;
            }
            break;
        }
        c->running[me] = j->target_serial;
        pthread_mutex_unlock(&c->q_mu);
        int64_t t0 = lw_mono_ns();
        job_decode(c, j);
        j->run_ns = lw_mono_ns() - t0;
        pthread_mutex_lock(&c->q_mu);
        c->running[me] = 0;
        if (c->todo_head) /* a queued job of this target may now run */
            pthread_cond_broadcast(&c->q_cv);
        if (j->prof && c->writer_started) { /* to the writer */
            while (c->ingest_n >= INGEST_QUEUE_MAX)
                pthread_cond_wait(&c->ingest_room_cv, &c->q_mu);
            j->queued_ns = lw_mono_ns();
            if (c->ingest_tail)
                c->ingest_tail->next = j;
            else
                c->ingest_head = j;
            c->ingest_tail = j;
            c->ingest_n++;
            c->ingest_bytes += j->prof_bytes;
            if (c->ingest_n == 1 || c->ingest_n >= INGEST_BATCH_MAX ||
                c->ingest_bytes >= INGEST_BATCH_BYTES)
                pthread_cond_signal(&c->ingest_cv);
            continue;
        }
        pthread_mutex_unlock(&c->q_mu);
        if (j->prof) /* no writer thread: store it here */
            ingest_batch(c, j, 1);
        else
            jobs_done(c, j);
        pthread_mutex_lock(&c->q_mu);
    }
    pthread_mutex_unlock(&c->q_mu);
    return NULL;
}

/* The profile state that made job j, or NULL if it is gone: first at the
 * target's index when the job was made (unchanged unless a reload came
 * between), else by scanning every target. */
static prof_state *find_serial(coll *c, const job *j, target **t_out)
{
    uint64_t serial = j->serial;
    if (j->target_index < c->n_targets && c->targets[j->target_index]->serial == j->target_serial) {
        target *t = c->targets[j->target_index];
        for (size_t k = 0; k < t->n_profiles; k++)
            if (t->profiles[k]->serial == serial) {
                *t_out = t;
                return t->profiles[k];
            }
    }
    for (size_t i = 0; i < c->n_targets; i++)
        for (size_t k = 0; k < c->targets[i]->n_profiles; k++)
            if (c->targets[i]->profiles[k]->serial == serial) {
                *t_out = c->targets[i];
                return c->targets[i]->profiles[k];
            }
    return NULL;
}

/* Apply finished jobs to their profiles (loop thread). */
static void collect_done(coll *c)
{
    pthread_mutex_lock(&c->q_mu);
    job *j = c->done_head;
    c->done_head = NULL;
    pthread_mutex_unlock(&c->q_mu);
    while (j) {
        job *next = j->next;
        target *t = NULL;
        prof_state *ps = find_serial(c, j, &t);
        if (ps) {
            ps->in_flight = false;
            t->cost_ns = t->cost_ns ? (t->cost_ns * 3 + j->run_ns) / 4 : j->run_ns;
            pthread_mutex_lock(&c->mu);
            if (j->store_id)
                t->store_id = j->store_id;
            if (j->has_value && strcmp(j->profile_type, "goroutine") == 0) {
                t->goroutines = j->values[0];
                t->has_goroutines = true;
            } else if (j->has_value) {
                t->heap_inuse_bytes = j->values[1];
                t->heap_inuse_objects = j->values[2];
                t->has_heap = true;
            }
            pthread_mutex_unlock(&c->mu);
            set_result(c, ps, !j->err[0], j->err, j->duration_ns);
        }
        job_free(j);
        j = next;
    }
}

/* A transfer ended (loop thread): report transport/HTTP errors at once,
 * hand good bodies to a worker. */
static void finish(coll *c, prof_state *ps, CURLcode code)
{
    target *t = ps->t;
    int64_t duration = lw_mono_ns() - ps->start_mono_ns;
    char err[ERR_LEN] = "";
    curl_multi_remove_handle(c->multi, ps->easy);
    curl_slist_free_all(ps->headers);
    ps->headers = NULL;

    if (code != CURLE_OK) {
        transfer_error(c, ps, code, err, sizeof(err));
        goto fail;
    }
    long status = 0;
    curl_easy_getinfo(ps->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        const char *reason = "";
        /* "HTTP/1.1 500 Internal Server Error" -> "Internal Server Error" */
        const char *sp = strchr(ps->status_line, ' ');
        if (sp && (sp = strchr(sp + 1, ' ')) != NULL)
            reason = sp + 1;
        snprintf(err, sizeof(err), "HTTP %ld%s%s", status, *reason ? " " : "", reason);
        goto fail;
    }
    job *j = calloc(1, sizeof(*j));
    if (j && t->n_labels && !(j->labels = calloc(t->n_labels, sizeof(*j->labels)))) {
        free(j);
        j = NULL;
    }
    for (size_t i = 0; j && i < t->n_labels; i++) {
        j->labels[i].name = strdup(t->labels[i].name);
        j->labels[i].value = strdup(t->labels[i].value);
        j->n_labels++;
        if (!j->labels[i].name || !j->labels[i].value) {
            job_free(j);
            j = NULL;
        }
    }
    if (!j) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    j->serial = ps->serial;
    j->target_serial = t->serial;
    j->target_index = t->index;
    j->cost_ns = t->cost_ns;
    snprintf(j->profile_type, sizeof(j->profile_type), "%s", ps->name);
    j->start_wall_ns = ps->start_wall_ns;
    j->duration_ns = duration;
    j->store_id = t->store_id;
    j->body = ps->body; /* moved */
    lw_buf_init(&ps->body, c->opt.max_body_bytes);
    if (j->body.data && j->body.cap > j->body.len + 1) {
        /* A queued body keeps its bytes, not the slack of its doubling
         * growth (jobs pile up while the workers are short of CPU). */
        char *p = realloc(j->body.data, j->body.len + 1);
        if (p) {
            j->body.data = p;
            j->body.cap = j->body.len + 1;
        }
    }
    pthread_mutex_lock(&c->q_mu);
    if (c->todo_tail)
        c->todo_tail->next = j;
    else
        c->todo_head = j;
    c->todo_tail = j;
    pthread_cond_signal(&c->q_cv);
    pthread_mutex_unlock(&c->q_mu);
    /* Idle targets keep no easy handle (connections stay in the multi
     * handle's cache); ps stays in flight until the worker's result is
     * collected. */
    curl_easy_cleanup(ps->easy);
    ps->easy = NULL;
    return;

fail:
    ps->in_flight = false;
    lw_buf_cleanup(&ps->body);
    curl_easy_cleanup(ps->easy);
    ps->easy = NULL;
    set_result(c, ps, false, err, duration);
}

static void drain(coll *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            finish(c, (prof_state *)priv, m->data.result);
    }
    collect_done(c);
}

static void start_due(coll *c, int64_t now)
{
    if (now < c->next_due_ns)
        return;
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < c->n_targets; i++) {
        target *t = c->targets[i];
        if (now < t->next_mono_ns) {
            next = t->next_mono_ns < next ? t->next_mono_ns : next;
            continue;
        }
        for (size_t j = 0; j < t->n_profiles; j++) {
            prof_state *ps = t->profiles[j];
            if (ps->in_flight) {
                lw_log(LW_LOG_DEBUG, "previous scrape still running, skipping", "job", t->job,
                       "instance", t->instance, "profile", ps->name, NULL);
                continue;
            }
            char err[ERR_LEN];
            if (start_scrape(c, ps, err, sizeof(err)) != 0) {
                ps->start_wall_ns = lw_wall_ns();
                set_result(c, ps, false, err, 0);
            }
        }
        t->next_mono_ns += t->interval_ns;
        if (t->next_mono_ns <= now)
            t->next_mono_ns = first_slot(now + 1, t->interval_ns, t->hash);
        next = t->next_mono_ns < next ? t->next_mono_ns : next;
    }
    c->next_due_ns = next;
}

/* ---- public API ------------------------------------------------------------------ */

int coll_new(const lw_config *cfg, store *s, const coll_hooks *hooks, const coll_options *opt,
             coll **out, char *err, size_t err_len)
{
    *out = NULL;
    coll *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->q_mu, NULL);
    pthread_cond_init(&c->q_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->ingest_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&c->ingest_room_cv, NULL);
    c->store = s;
    if (hooks)
        c->hooks = *hooks;
    if (opt)
        c->opt = *opt;
    if (!c->opt.max_body_bytes)
        c->opt.max_body_bytes = COLL_MAX_BODY_BYTES;
    if (!c->opt.max_decompressed_bytes)
        c->opt.max_decompressed_bytes = PPROF_DEFAULT_MAX_DECOMPRESSED_BYTES;
    if (!c->opt.file_sd_check_ns)
        c->opt.file_sd_check_ns = FSD_CHECK_DEFAULT_NS;
    int rc = -EIO;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c->multi = curl_multi_init())) {
        snprintf(err, err_len, "libcurl initialisation failed");
        goto fail;
    }
    for (size_t i = 0; i < COLL_SHARES; i++) {
        if (!(c->shares[i] = curl_share_init()) ||
            curl_share_setopt(c->shares[i], CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
            curl_share_setopt(c->shares[i], CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
            snprintf(err, err_len, "libcurl initialisation failed (share handles)");
            goto fail;
        }
    }
    if (pthread_create(&c->writer, NULL, writer_main, c) != 0) {
        rc = -EAGAIN;
        snprintf(err, err_len, "cannot start the writer thread");
        goto fail;
    }
    c->writer_started = true;
    for (; c->n_workers < COLL_WORKERS; c->n_workers++) {
        c->worker_args[c->n_workers] = (worker_arg){c, c->n_workers};
        if (pthread_create(&c->workers[c->n_workers], NULL, worker_main,
                           &c->worker_args[c->n_workers]) != 0) {
            rc = -EAGAIN;
            snprintf(err, err_len, "cannot start worker threads");
            goto fail;
        }
    }
    if ((rc = fsds_new(cfg, &c->fsds, &c->n_fsds)) != 0 || (rc = reconcile(c, cfg)) != 0) {
        snprintf(err, err_len, "cannot set up targets: %s", strerror(-rc));
        goto fail;
    }
    c->next_fsd_check_ns = lw_mono_ns() + c->opt.file_sd_check_ns;
    *out = c;
    return 0;
fail:
    coll_free(c);
    return rc;
}

int coll_apply_config(coll *c, const lw_config *cfg, char *err, size_t err_len)
{
    coll__fsd **f;
    size_t n;
    int rc = fsds_new(cfg, &f, &n);
    if (rc) {
        snprintf(err, err_len, "cannot set up file_sd: %s", strerror(-rc));
        return rc;
    }
    coll__fsd **old = c->fsds;
    size_t n_old = c->n_fsds;
    c->fsds = f;
    c->n_fsds = n;
    rc = reconcile(c, cfg);
    if (rc) {
        c->fsds = old;
        c->n_fsds = n_old;
        fsds_free(f, n);
        snprintf(err, err_len, "cannot set up targets: %s", strerror(-rc));
        return rc;
    }
    fsds_free(old, n_old);
    return 0;
}

int coll_run_once(coll *c, int timeout_ms)
{
    int running = 0;
    CURLMcode mrc = curl_multi_perform(c->multi, &running);
    if (mrc != CURLM_OK)
        goto fail;
    drain(c);

    int64_t now = lw_mono_ns();
    if (now >= c->next_fsd_check_ns) {
        int changed = 0;
        for (size_t i = 0; i < c->n_fsds; i++)
            changed |= coll__fsd_poll(c->fsds[i], now);
        c->next_fsd_check_ns = now + c->opt.file_sd_check_ns;
        if (changed) {
            int rc = reconcile(c, c->cfg);
            if (rc)
                lw_log(LW_LOG_ERROR, "file_sd: cannot update targets", "err", strerror(-rc), NULL);
        }
    }
    start_due(c, now);
    if ((mrc = curl_multi_perform(c->multi, &running)) != CURLM_OK)
        goto fail;
    drain(c);

    now = lw_mono_ns();
    int64_t wait_ns = (int64_t)timeout_ms * 1000000;
    if (c->next_fsd_check_ns - now < wait_ns)
        wait_ns = c->next_fsd_check_ns - now;
    if (c->n_targets && c->next_due_ns - now < wait_ns)
        wait_ns = c->next_due_ns - now;
    if (wait_ns < 0)
        wait_ns = 0;
    mrc = curl_multi_poll(c->multi, NULL, 0, (int)((wait_ns + 999999) / 1000000), NULL);
    if (mrc != CURLM_OK)
        goto fail;
    if ((mrc = curl_multi_perform(c->multi, &running)) != CURLM_OK)
        goto fail;
    drain(c);
    return 0;
fail:
    lw_log(LW_LOG_ERROR, "libcurl multi failed", "err", curl_multi_strerror(mrc), NULL);
    return -EIO;
}

void coll_wakeup(coll *c)
{
    if (c && c->multi)
        curl_multi_wakeup(c->multi);
}

void coll_free(coll *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->q_mu);
    c->q_stop = true;
    pthread_cond_broadcast(&c->q_cv);
    pthread_mutex_unlock(&c->q_mu);
    for (size_t i = 0; i < c->n_workers; i++)
        pthread_join(c->workers[i], NULL);
    /* The writer stores what the workers decoded, then ends. */
    pthread_mutex_lock(&c->q_mu);
    c->workers_done = true;
    pthread_cond_broadcast(&c->ingest_cv);
    pthread_mutex_unlock(&c->q_mu);
    if (c->writer_started)
        pthread_join(c->writer, NULL);
    for (job *j = c->ingest_head, *next; j; j = next) { /* none unless the writer never ran */
        next = j->next;
        job_free(j);
    }
    /* Results of finished jobs are reported (their profiles are stored);
     * queued jobs are dropped. */
    collect_done(c);
    for (job *j = c->todo_head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    for (size_t i = 0; i < c->n_targets; i++)
        target_free(c, c->targets[i]);
    free(c->targets);
    fsds_free(c->fsds, c->n_fsds);
    /* After every easy handle (target_free): a share in use is not freed. */
    for (size_t i = 0; i < COLL_SHARES; i++)
        if (c->shares[i])
            curl_share_cleanup(c->shares[i]);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->q_cv);
    pthread_cond_destroy(&c->ingest_cv);
    pthread_cond_destroy(&c->ingest_room_cv);
    pthread_mutex_destroy(&c->q_mu);
    free(c);
}

size_t coll_n_targets(coll *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n_targets;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- outputs -------------------------------------------------------------------- */

static int json_time(lw_buf *out, bool has, int64_t ns)
{
    if (!has)
        return lw_buf_puts(out, "null");
    char b[96];
    fmt_rfc3339(ns, b, sizeof(b));
    return lw_buf_json_str(out, b);
}

static const char *health_of(const prof_state *ps)
{
    return !ps->has_result ? "unknown" : ps->up ? "up" : "down";
}

static int target_json(const target *t, lw_buf *out)
{
    int rc = lw_buf_puts(out, "{\"labels\":{");
    for (size_t i = 0; i < t->n_labels && !rc; i++) {
        rc = (i ? lw_buf_puts(out, ",") : 0) || lw_buf_json_str(out, t->labels[i].name) ||
             lw_buf_puts(out, ":") || lw_buf_json_str(out, t->labels[i].value);
    }
    const prof_state *latest = NULL, *failing = NULL;
    bool all_up = t->n_profiles > 0, any_result = false;
    for (size_t i = 0; i < t->n_profiles; i++) {
        const prof_state *ps = t->profiles[i];
        if (ps->has_result) {
            any_result = true;
            if (!latest || ps->last_scrape_ns > latest->last_scrape_ns)
                latest = ps;
        }
        if (!ps->has_result || !ps->up)
            all_up = false;
        if (ps->has_result && !ps->up && !failing)
            failing = ps;
    }
    const char *health = failing ? "down" : all_up ? "up" : "unknown";
    (void)any_result;
    char iv[32], to[32];
    lw_format_duration(t->interval_ns, iv, sizeof(iv));
    lw_format_duration(t->sc->scrape_timeout_ns, to, sizeof(to));
    rc = rc || lw_buf_puts(out, "},\"scrapePool\":") || lw_buf_json_str(out, t->sc->job_name) ||
         lw_buf_puts(out, ",\"scrapeUrl\":") || lw_buf_json_str(out, t->base_url) ||
         lw_buf_printf(out, ",\"health\":\"%s\",\"lastScrape\":", health) ||
         json_time(out, latest != NULL, latest ? latest->last_scrape_ns : 0) ||
         lw_buf_printf(out, ",\"lastScrapeDuration\":%.6f,\"lastError\":",
                       latest ? (double)latest->last_duration_ns / 1e9 : 0.0) ||
         lw_buf_json_str(out, failing ? failing->last_error : "") ||
         lw_buf_printf(out, ",\"scrapeInterval\":\"%s\",\"scrapeTimeout\":\"%s\",\"profiles\":[", iv, to);
    for (size_t i = 0; i < t->n_profiles && !rc; i++) {
        const prof_state *ps = t->profiles[i];
        rc = (i ? lw_buf_puts(out, ",") : 0) || lw_buf_puts(out, "{\"type\":") ||
             lw_buf_json_str(out, ps->name) || lw_buf_puts(out, ",\"url\":") ||
             lw_buf_json_str(out, ps->url) ||
             lw_buf_printf(out, ",\"health\":\"%s\",\"lastScrape\":", health_of(ps)) ||
             json_time(out, ps->has_result, ps->last_scrape_ns) ||
             lw_buf_printf(out, ",\"lastScrapeDuration\":%.6f,\"lastError\":",
                           (double)ps->last_duration_ns / 1e9) ||
             lw_buf_json_str(out, ps->last_error) ||
             lw_buf_printf(out, ",\"scrapesOk\":%" PRIu64 ",\"scrapesError\":%" PRIu64 "}", ps->n_ok,
                           ps->n_err);
    }
    rc = rc || lw_buf_puts(out, "]}");
    return rc ? -E2BIG : 0;
}

int coll_targets_json(coll *c, lw_buf *out)
{
    size_t mark = out->len;
    pthread_mutex_lock(&c->mu);
    int rc = lw_buf_puts(out, "{\"activeTargets\":[");
    for (size_t i = 0; i < c->n_targets && !rc; i++) {
        if (i)
            rc = lw_buf_puts(out, ",");
        if (!rc)
            rc = target_json(c->targets[i], out);
    }
    if (!rc)
        rc = lw_buf_puts(out, "],\"droppedTargets\":[]}");
    pthread_mutex_unlock(&c->mu);
    if (rc) {
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
        return -E2BIG;
    }
    return 0;
}

/* Label value escaped for the text format. */
static int prom_value(lw_buf *out, const char *v)
{
    int rc = 0;
    for (; *v && !rc; v++) {
        if (*v == '\\')
            rc = lw_buf_puts(out, "\\\\");
        else if (*v == '"')
            rc = lw_buf_puts(out, "\\\"");
        else if (*v == '\n')
            rc = lw_buf_puts(out, "\\n");
        else
            rc = lw_buf_append(out, v, 1);
    }
    return rc;
}

static int prom_series(lw_buf *out, const char *name, const target *t, const char *profile,
                       const char *result, const char *value)
{
    int rc = lw_buf_printf(out, "%s{job=\"", name) || prom_value(out, t->job) ||
             lw_buf_puts(out, "\",instance=\"") || prom_value(out, t->instance);
    if (!rc && profile)
        rc = lw_buf_puts(out, "\",profile=\"") || prom_value(out, profile);
    if (!rc && result)
        rc = lw_buf_printf(out, "\",result=\"%s", result);
    return rc || lw_buf_printf(out, "\"} %s\n", value) ? -E2BIG : 0;
}

int coll_metrics_text(coll *c, lw_buf *out)
{
    char v[64];
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    rc = lw_buf_printf(out, "# HELP leakwatch_targets Number of active scrape targets.\n"
                            "# TYPE leakwatch_targets gauge\nleakwatch_targets %zu\n",
                       c->n_targets);
    rc = rc || lw_buf_puts(out, "# HELP leakwatch_target_up 1 if the last scrape of every enabled "
                                "profile of the target succeeded, else 0.\n"
                                "# TYPE leakwatch_target_up gauge\n");
    for (size_t i = 0; i < c->n_targets && !rc; i++) {
        const target *t = c->targets[i];
        bool up = t->n_profiles > 0;
        for (size_t j = 0; j < t->n_profiles; j++)
            up = up && t->profiles[j]->has_result && t->profiles[j]->up;
        rc = prom_series(out, "leakwatch_target_up", t, NULL, NULL, up ? "1" : "0");
    }
    rc = rc || lw_buf_puts(out, "# HELP leakwatch_scrape_duration_seconds Duration of the last "
                                "scrape of a profile.\n"
                                "# TYPE leakwatch_scrape_duration_seconds gauge\n");
    for (size_t i = 0; i < c->n_targets && !rc; i++) {
        const target *t = c->targets[i];
        for (size_t j = 0; j < t->n_profiles && !rc; j++) {
            const prof_state *ps = t->profiles[j];
            if (!ps->has_result)
                continue;
            snprintf(v, sizeof(v), "%.6f", (double)ps->last_duration_ns / 1e9);
            rc = prom_series(out, "leakwatch_scrape_duration_seconds", t, ps->name, NULL, v);
        }
    }
    rc = rc || lw_buf_puts(out, "# HELP leakwatch_scrapes_total Scrapes of a profile by result.\n"
                                "# TYPE leakwatch_scrapes_total counter\n");
    for (size_t i = 0; i < c->n_targets && !rc; i++) {
        const target *t = c->targets[i];
        for (size_t j = 0; j < t->n_profiles && !rc; j++) {
            const prof_state *ps = t->profiles[j];
            snprintf(v, sizeof(v), "%" PRIu64, ps->n_ok);
            rc = prom_series(out, "leakwatch_scrapes_total", t, ps->name, "success", v);
            snprintf(v, sizeof(v), "%" PRIu64, ps->n_err);
            rc = rc || prom_series(out, "leakwatch_scrapes_total", t, ps->name, "error", v);
        }
    }
    static const struct {
        const char *name;
        const char *help;
    } gauges[] = {
        {"leakwatch_goroutines", "Goroutines (threads for C services) in the last goroutine profile."},
        {"leakwatch_heap_inuse_bytes", "In-use heap bytes in the last heap profile."},
        {"leakwatch_heap_inuse_objects", "In-use heap objects in the last heap profile."},
    };
    for (size_t g = 0; g < 3 && !rc; g++) {
        rc = lw_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help,
                           gauges[g].name);
        for (size_t i = 0; i < c->n_targets && !rc; i++) {
            const target *t = c->targets[i];
            if (g == 0 ? !t->has_goroutines : !t->has_heap)
                continue;
            double val = g == 0 ? t->goroutines : g == 1 ? t->heap_inuse_bytes : t->heap_inuse_objects;
            snprintf(v, sizeof(v), "%.17g", val);
            rc = prom_series(out, gauges[g].name, t, NULL, NULL, v);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc ? -E2BIG : 0;
}
