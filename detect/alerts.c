/* alerts.c — alert state machine, Alertmanager payloads and the notifier thread (see alerts.h).
 *
 * The notifier keeps a ring of owned payload strings guarded by one mutex;
 * the thread pops one, posts it to each Alertmanager with libcurl (outside
 * the lock), and waits on the condition variable between retries so that
 * alerts_notifier_free() interrupts a backoff at once.
 */
#include "alerts.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

void alerts_config_default(alerts_config *c)
{
    memset(c, 0, sizeof(*c));
    c->for_ns = 10LL * 60 * 1000000000LL;
    snprintf(c->severity, sizeof(c->severity), "warning");
    snprintf(c->external_url, sizeof(c->external_url), "http://localhost:8080");
    c->resend_delay_ns = 60LL * 1000000000LL;
    c->resolved_retention_ns = 15LL * 60 * 1000000000LL;
    c->timeout_ns = 10LL * 1000000000LL;
    c->queue_capacity = 64;
    c->max_attempts = 5;
    c->backoff_initial_ns = 500LL * 1000000LL;
}

/* ---- alerts ------------------------------------------------------------- */

static void kv_free(alerts_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

void alerts_clear(alert *a)
{
    if (a == NULL)
        return;
    kv_free(a->labels, a->n_labels);
    kv_free(a->annotations, a->n_annotations);
    free(a->generator_url);
    memset(a, 0, sizeof(*a));
}

static int cmp_kv(const void *x, const void *y)
{
    return strcmp(((const alerts_kv *)x)->name, ((const alerts_kv *)y)->name);
}

/* Sorted, de-duplicated (last wins) copy of kv. */
static int kv_copy(const alerts_kv *kv, size_t n, alerts_kv **out, size_t *n_out)
{
    alerts_kv *c = calloc(n ? n : 1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (kv[i].name == NULL || kv[i].value == NULL)
            continue;
        size_t j;
        for (j = 0; j < m; j++)
            if (strcmp(c[j].name, kv[i].name) == 0)
                break;
        char *v = strdup(kv[i].value);
        char *nm = j == m ? strdup(kv[i].name) : NULL;
        if (v == NULL || (j == m && nm == NULL)) {
            free(v);
            free(nm);
            kv_free(c, m);
            return -ENOMEM;
        }
        if (j == m) {
            c[m].name = nm;
            c[m].value = v;
            m++;
        } else {
            free(c[j].value);
            c[j].value = v;
        }
    }
    qsort(c, m, sizeof(*c), cmp_kv);
    *out = c;
    *n_out = m;
    return 0;
}

int alerts_set_labels(alert *a, const alerts_kv *kv, size_t n)
{
    alerts_kv *c;
    size_t m;
    int rc = kv_copy(kv, n, &c, &m);
    if (rc < 0)
        return rc;
    kv_free(a->labels, a->n_labels);
    a->labels = c;
    a->n_labels = m;
    return 0;
}

int alerts_set_annotations(alert *a, const alerts_kv *kv, size_t n)
{
    alerts_kv *c;
    size_t m;
    int rc = kv_copy(kv, n, &c, &m);
    if (rc < 0)
        return rc;
    kv_free(a->annotations, a->n_annotations);
    a->annotations = c;
    a->n_annotations = m;
    return 0;
}

const char *alerts_label(const alert *a, const char *name)
{
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i].name, name) == 0)
            return a->labels[i].value;
    return NULL;
}

bool alerts_step(alert *a, bool active, int64_t now_ns, int64_t for_ns)
{
    switch (a->state) {
    case ALERTS_INACTIVE:
        if (!active)
            return false;
        a->state = ALERTS_PENDING;
        a->active_at_ns = now_ns;
        a->fired_at_ns = 0;
        a->resolved_at_ns = 0;
        a->last_sent_ns = 0;
        if (for_ns <= 0) {
            a->state = ALERTS_FIRING;
            a->fired_at_ns = now_ns;
        }
        return true;
    case ALERTS_PENDING:
        if (!active) {
            a->state = ALERTS_INACTIVE;
            a->active_at_ns = 0;
            return true;
        }
        if (now_ns - a->active_at_ns >= for_ns) {
            a->state = ALERTS_FIRING;
            a->fired_at_ns = now_ns;
            return true;
        }
        return false;
    case ALERTS_FIRING:
        if (active)
            return false;
        a->state = ALERTS_INACTIVE;
        a->resolved_at_ns = now_ns;
        return true;
    default:
        a->state = ALERTS_INACTIVE;
        return true;
    }
}

bool alerts_expired(const alert *a, int64_t now_ns, int64_t retention_ns)
{
    if (a->state != ALERTS_INACTIVE)
        return false;
    if (a->resolved_at_ns == 0)
        return true;
    return now_ns - a->resolved_at_ns >= retention_ns;
}

bool alerts_needs_send(const alert *a, int64_t now_ns, int64_t resend_delay_ns)
{
    if (a->state == ALERTS_PENDING)
        return false;
    if (a->state == ALERTS_INACTIVE && a->resolved_at_ns == 0)
        return false;
    if (a->last_sent_ns == 0)
        return true;
    /* Resolved since the last send: tell Alertmanager at once. */
    if (a->state == ALERTS_INACTIVE && a->resolved_at_ns > a->last_sent_ns)
        return true;
    return a->last_sent_ns + resend_delay_ns <= now_ns;
}

const char *alerts_state_name(int state)
{
    switch (state) {
    case ALERTS_PENDING:
        return "pending";
    case ALERTS_FIRING:
        return "firing";
    default:
        return "inactive";
    }
}

void alerts_format_time(int64_t ns, char *buf, size_t len)
{
    time_t secs = (time_t)(ns / 1000000000LL);
    int ms = (int)((ns % 1000000000LL) / 1000000LL);
    if (ms < 0) {
        secs -= 1;
        ms += 1000;
    }
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

static int kv_json(const alerts_kv *kv, size_t n, lw_buf *out)
{
    int rc = lw_buf_puts(out, "{");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0)
            rc = lw_buf_puts(out, ",");
        if (rc == 0)
            rc = lw_buf_json_str(out, kv[i].name);
        if (rc == 0)
            rc = lw_buf_puts(out, ":");
        if (rc == 0)
            rc = lw_buf_json_str(out, kv[i].value);
    }
    if (rc == 0)
        rc = lw_buf_puts(out, "}");
    return rc;
}

int alerts_payload_json(alert *const *alerts, size_t n, int64_t now_ns, int64_t resend_delay_ns,
                        lw_buf *out)
{
    int rc = lw_buf_puts(out, "[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const alert *a = alerts[i];
        char starts[40], ends[40];
        alerts_format_time(a->active_at_ns, starts, sizeof(starts));
        if (a->state == ALERTS_FIRING)
            alerts_format_time(now_ns + 4 * resend_delay_ns, ends, sizeof(ends));
        else
            alerts_format_time(a->resolved_at_ns, ends, sizeof(ends));
        if (i > 0)
            rc = lw_buf_puts(out, ",");
        if (rc == 0)
            rc = lw_buf_puts(out, "{\"labels\":");
        if (rc == 0)
            rc = kv_json(a->labels, a->n_labels, out);
        if (rc == 0)
            rc = lw_buf_puts(out, ",\"annotations\":");
        if (rc == 0)
            rc = kv_json(a->annotations, a->n_annotations, out);
        if (rc == 0)
            rc = lw_buf_printf(out, ",\"startsAt\":\"%s\",\"endsAt\":\"%s\",\"generatorURL\":", starts,
                               ends);
        if (rc == 0)
            rc = lw_buf_json_str(out, a->generator_url ? a->generator_url : "");
        if (rc == 0)
            rc = lw_buf_puts(out, "}");
    }
    if (rc == 0)
        rc = lw_buf_puts(out, "]");
    return rc;
}

int alerts_api_json(const alert *a, lw_buf *out)
{
    char active[40];
    alerts_format_time(a->active_at_ns, active, sizeof(active));
    int rc = lw_buf_puts(out, "{\"labels\":");
    if (rc == 0)
        rc = kv_json(a->labels, a->n_labels, out);
    if (rc == 0)
        rc = lw_buf_puts(out, ",\"annotations\":");
    if (rc == 0)
        rc = kv_json(a->annotations, a->n_annotations, out);
    if (rc == 0)
        rc = lw_buf_printf(out, ",\"state\":\"%s\",\"activeAt\":\"%s\",\"value\":\"%.6g\"}",
                           alerts_state_name(a->state), active, a->value);
    return rc;
}

int alerts_state_json(const alert *a, lw_buf *out)
{
    return lw_buf_printf(out,
                         "{\"state\":\"%s\",\"active_at_ns\":%lld,\"fired_at_ns\":%lld,"
                         "\"resolved_at_ns\":%lld,\"last_sent_ns\":%lld,\"value\":%.17g}",
                         alerts_state_name(a->state), (long long)a->active_at_ns,
                         (long long)a->fired_at_ns, (long long)a->resolved_at_ns,
                         (long long)a->last_sent_ns, a->value);
}

/* The text right after "\"key\":" in json, or NULL. */
static const char *json_field(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? p + strlen(pat) : NULL;
}

static int json_i64(const char *json, const char *key, int64_t *out)
{
    const char *p = json_field(json, key);
    if (p == NULL)
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno != 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int alerts_state_parse(const char *json, alert *a)
{
    if (json == NULL || a == NULL)
        return -EINVAL;
    const char *st = json_field(json, "state");
    int state;
    if (st == NULL)
        return -EINVAL;
    if (strncmp(st, "\"pending\"", 9) == 0)
        state = ALERTS_PENDING;
    else if (strncmp(st, "\"firing\"", 8) == 0)
        state = ALERTS_FIRING;
    else if (strncmp(st, "\"inactive\"", 10) == 0)
        state = ALERTS_INACTIVE;
    else
        return -EINVAL;
    int64_t act, fired, resolved, sent;
    if (json_i64(json, "active_at_ns", &act) < 0 || json_i64(json, "fired_at_ns", &fired) < 0 ||
        json_i64(json, "resolved_at_ns", &resolved) < 0 || json_i64(json, "last_sent_ns", &sent) < 0)
        return -EINVAL;
    const char *vp = json_field(json, "value");
    double value = 0;
    if (vp != NULL) {
        char *end;
        value = strtod(vp, &end);
        if (end == vp)
            return -EINVAL;
    }
    a->state = state;
    a->active_at_ns = act;
    a->fired_at_ns = fired;
    a->resolved_at_ns = resolved;
    a->last_sent_ns = sent;
    a->value = value;
    return 0;
}

/* ---- notifier ----------------------------------------------------------- */

struct alerts_notifier {
    alerts_config cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **ring;     /* queue_capacity slots */
    size_t head;     /* index of the oldest payload */
    size_t count;    /* payloads waiting */
    bool in_flight;  /* the thread is posting one */
    bool stopping;
    alerts_notifier_stats stats;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* The password of basic auth entry i: inline, or the first line of its
 * file (read at each request, like Prometheus). */
static void auth_password(const alerts_config *c, size_t i, char *buf, size_t len)
{
    buf[0] = '\0';
    if (c->basic_auth[i].password_file[0] == '\0') {
        snprintf(buf, len, "%s", c->basic_auth[i].password);
        return;
    }
    FILE *f = fopen(c->basic_auth[i].password_file, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)len, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
}

/* One POST to Alertmanager i; 0 on a 2xx answer, -EIO otherwise. */
static int post_once(const alerts_config *c, size_t i, const char *payload)
{
    const char *base = c->alertmanagers[i];
    int rc = -EIO;
    struct curl_slist *hdr = NULL;
    char url[320];
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    snprintf(url, sizeof(url), "%.*s/api/v2/alerts", (int)bl, base);
    CURL *h = curl_easy_init();
    if (h == NULL)
        return -ENOMEM;
    hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (hdr == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    long timeout_ms = (long)(c->timeout_ns / 1000000LL);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "leakwatch/" LW_VERSION);
    char password[256];
    if (c->basic_auth[i].username[0] != '\0') {
        auth_password(c, i, password, sizeof(password));
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->basic_auth[i].username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, password);
    }
    if (curl_easy_perform(h) == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300)
            rc = 0;
    }
out:
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc;
}

/* Sleep delay_ns on the condition variable; returns true when stopping. The
 * mutex is held on entry and exit. */
static bool wait_or_stop(alerts_notifier *n, int64_t delay_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + delay_ns;
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    while (!n->stopping) {
        if (pthread_cond_timedwait(&n->cv, &n->mu, &ts) == ETIMEDOUT)
            break;
    }
    return n->stopping;
}

static void *notifier_main(void *arg)
{
    alerts_notifier *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        while (!n->stopping && n->count == 0)
            pthread_cond_wait(&n->cv, &n->mu);
        if (n->stopping)
            break;
        char *payload = n->ring[n->head];
        n->ring[n->head] = NULL;
        n->head = (n->head + 1) % n->cfg.queue_capacity;
        n->count--;
        n->in_flight = true;
        for (size_t i = 0; i < n->cfg.n_alertmanagers && !n->stopping; i++) {
            int64_t delay = n->cfg.backoff_initial_ns;
            bool ok = false;
            for (int attempt = 0; attempt < n->cfg.max_attempts; attempt++) {
                pthread_mutex_unlock(&n->mu);
                ok = post_once(&n->cfg, i, payload) == 0;
                pthread_mutex_lock(&n->mu);
                if (ok || attempt + 1 == n->cfg.max_attempts)
                    break;
                if (wait_or_stop(n, delay))
                    break;
                delay *= 2;
            }
            if (ok)
                n->stats.sent++;
            else
                n->stats.failed++;
        }
        free(payload);
        n->in_flight = false;
        pthread_cond_broadcast(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

int alerts_notifier_new(const alerts_config *c, alerts_notifier **out)
{
    int rc = 0;
    if (c == NULL || out == NULL)
        return -EINVAL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return -EIO;
    alerts_notifier *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    n->cfg = *c;
    if (n->cfg.queue_capacity == 0)
        n->cfg.queue_capacity = 64;
    if (n->cfg.max_attempts <= 0)
        n->cfg.max_attempts = 1;
    if (n->cfg.n_alertmanagers > ALERTS_MAX_AM)
        n->cfg.n_alertmanagers = ALERTS_MAX_AM;
    n->ring = calloc(n->cfg.queue_capacity, sizeof(*n->ring));
    if (n->ring == NULL) {
        rc = -ENOMEM;
        goto fail_ring;
    }
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    rc = -pthread_create(&n->thread, NULL, notifier_main, n);
    if (rc < 0)
        goto fail_thread;
    *out = n;
    return 0;
fail_thread:
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n->ring);
fail_ring:
    free(n);
    return rc;
}

void alerts_notifier_free(alerts_notifier *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    for (size_t i = 0; i < n->cfg.queue_capacity; i++)
        free(n->ring[i]);
    free(n->ring);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

int alerts_notifier_enqueue(alerts_notifier *n, char *payload)
{
    if (n == NULL || payload == NULL) {
        free(payload);
        return -EINVAL;
    }
    pthread_mutex_lock(&n->mu);
    size_t cap = n->cfg.queue_capacity;
    if (n->count == cap) {
        free(n->ring[n->head]);
        n->ring[n->head] = NULL;
        n->head = (n->head + 1) % cap;
        n->count--;
        n->stats.dropped++;
    }
    n->ring[(n->head + n->count) % cap] = payload;
    n->count++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

int alerts_notifier_flush(alerts_notifier *n, int64_t timeout_ns)
{
    if (n == NULL)
        return -EINVAL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + timeout_ns;
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    int rc = 0;
    pthread_mutex_lock(&n->mu);
    while (n->count > 0 || n->in_flight) {
        if (pthread_cond_timedwait(&n->cv, &n->mu, &ts) == ETIMEDOUT) {
            rc = (n->count > 0 || n->in_flight) ? -ETIMEDOUT : 0;
            break;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

void alerts_notifier_get_stats(alerts_notifier *n, alerts_notifier_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->mu);
    *out = n->stats;
    out->queued = n->count;
    pthread_mutex_unlock(&n->mu);
}
