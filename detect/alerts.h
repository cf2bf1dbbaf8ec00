/* alerts.h — alert state machine (Prometheus rule semantics) and the Alertmanager notifier.
 *
 * State machine, per alertname and target, stepped at each evaluation with
 * "is the condition active now":
 *   inactive --active--> pending (activeAt = now)
 *   pending  --active for `for`--> firing (firedAt = now); for = 0 fires at once
 *   pending  --inactive--> inactive (never fired: nothing is sent)
 *   firing   --inactive--> inactive with resolvedAt = now: listed and re-sent
 *            as resolved for resolved_retention (15m), then dropped
 *   inactive (resolved) --active--> pending again with a new activeAt
 * The times are what the engine persists, so a restart keeps `for` timers.
 *
 * Sending follows Prometheus: a firing alert is sent when it was never sent
 * or its last send is older than resend_delay, with endsAt = now + 4 x
 * resend_delay (Alertmanager resolves it by itself if we die); a resolved one
 * is sent at once and then every resend_delay while retained, with endsAt =
 * resolvedAt. Payloads go to POST <alertmanager>/api/v2/alerts.
 *
 * The notifier owns one thread and a bounded queue of payloads (oldest
 * dropped when full, counted), so a down or slow Alertmanager never blocks
 * the caller. Each payload is posted to every configured Alertmanager with up
 * to max_attempts tries and exponential backoff; stopping interrupts the
 * backoff. Notifier functions are thread-safe; alert structs are not (the
 * engine guards them with its lock).
 *
 * Errors: 0 on success, negative errno codes.
 */
#ifndef LW_ALERTS_H
#define LW_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lw_buf.h"

#define ALERTS_MAX_AM 8

typedef struct alerts_config {
    int64_t for_ns;                /* pending time before firing, default 10 min */
    char severity[32];             /* "severity" label, default "warning" */
    char external_url[256];        /* base of links (diff, generatorURL), no trailing '/' */
    size_t n_alertmanagers;        /* used entries of alertmanagers */
    char alertmanagers[ALERTS_MAX_AM][256]; /* base URLs "http://host:port[/prefix]" */
    struct {
        char username[128];      /* "" = no basic auth for this Alertmanager */
        char password[256];      /* used when password_file is "" */
        char password_file[256]; /* read at each request when set */
    } basic_auth[ALERTS_MAX_AM]; /* same index as alertmanagers */
    int64_t resend_delay_ns;       /* default 1 min */
    int64_t resolved_retention_ns; /* keep and re-send resolved alerts, default 15 min */
    int64_t timeout_ns;            /* per HTTP request, default 10 s */
    size_t queue_capacity;         /* payloads waiting, default 64 */
    int max_attempts;              /* per payload and Alertmanager, default 5 */
    int64_t backoff_initial_ns;    /* first retry delay, doubled each time, default 500 ms */
} alerts_config;

enum alerts_state { ALERTS_INACTIVE = 0, ALERTS_PENDING, ALERTS_FIRING };

typedef struct alerts_kv {
    char *name;  /* owned */
    char *value; /* owned */
} alerts_kv;

typedef struct alert {
    char alertname[32];     /* "GoroutineLeak", "HeapLeak" */
    int64_t target_id;      /* store target id */
    int state;              /* enum alerts_state */
    int64_t active_at_ns;   /* pending since (0 when inactive and never active) */
    int64_t fired_at_ns;    /* when it started firing, 0 if not */
    int64_t resolved_at_ns; /* when a firing alert resolved, 0 if not resolved */
    int64_t last_sent_ns;   /* last time it was handed to the notifier */
    double value;           /* the alert's value (growth over the window) */
    alerts_kv *labels;      /* sorted by name, owned */
    size_t n_labels;
    alerts_kv *annotations; /* sorted by name, owned */
    size_t n_annotations;
    char *generator_url;    /* owned, may be NULL */
} alert;

/* Defaults as documented on alerts_config, external_url
 * "http://localhost:8080", no Alertmanagers. Cannot fail. */
void alerts_config_default(alerts_config *c);

/* Free an alert's owned members and zero it. Safe on a zeroed alert. */
void alerts_clear(alert *a);

/* Replace the alert's labels (or annotations) with copies of kv[0..n),
 * sorted by name; a later duplicate name wins. -ENOMEM leaves the old set. */
int alerts_set_labels(alert *a, const alerts_kv *kv, size_t n) LW_WUR;
int alerts_set_annotations(alert *a, const alerts_kv *kv, size_t n) LW_WUR;

/* Value of a label / annotation, NULL if absent. */
const char *alerts_label(const alert *a, const char *name);

/* Advance the state machine (see top) given whether the condition holds at
 * now_ns. Returns true when the state or its times changed (persist it). */
bool alerts_step(alert *a, bool active, int64_t now_ns, int64_t for_ns);

/* True when a resolved alert is past retention and should be forgotten. */
bool alerts_expired(const alert *a, int64_t now_ns, int64_t retention_ns);

/* True when the alert should be sent to Alertmanager now (see top). */
bool alerts_needs_send(const alert *a, int64_t now_ns, int64_t resend_delay_ns);

/* Append the Alertmanager v2 payload for alerts[0..n) to out: a JSON array
 * of {labels, annotations, startsAt, endsAt, generatorURL}. */
int alerts_payload_json(alert *const *alerts, size_t n, int64_t now_ns, int64_t resend_delay_ns,
                        lw_buf *out) LW_WUR;

/* Append one alert as an element of Prometheus /api/v1/alerts: {labels,
 * annotations, state, activeAt, value}. */
int alerts_api_json(const alert *a, lw_buf *out) LW_WUR;

/* Persisted form: {"state":..,"active_at_ns":..,"fired_at_ns":..,
 * "resolved_at_ns":..,"last_sent_ns":..,"value":..}. */
int alerts_state_json(const alert *a, lw_buf *out) LW_WUR;

/* Parse the persisted form into a's state and times (labels untouched).
 * -EINVAL if json is not in that form. */
int alerts_state_parse(const char *json, alert *a) LW_WUR;

/* RFC 3339 UTC with milliseconds ("2026-11-25T21:30:00.123Z"). Cannot fail
 * for len >= 32. */
void alerts_format_time(int64_t ns, char *buf, size_t len);

/* "pending", "firing", "inactive". */
const char *alerts_state_name(int state);

/* ---- notifier ----------------------------------------------------------- */

typedef struct alerts_notifier alerts_notifier;

typedef struct alerts_notifier_stats {
    uint64_t sent;    /* payload x Alertmanager deliveries answered 2xx */
    uint64_t failed;  /* deliveries given up after max_attempts */
    uint64_t dropped; /* payloads dropped because the queue was full */
    uint64_t queued;  /* payloads waiting now */
} alerts_notifier_stats;

/* Start the notifier thread for the Alertmanagers in c (copied). */
int alerts_notifier_new(const alerts_config *c, alerts_notifier **out) LW_WUR;

/* Stop the thread (interrupting retries; queued payloads are dropped) and
 * free. alerts_notifier_free(NULL) is safe. */
void alerts_notifier_free(alerts_notifier *n);

/* Queue payload (a JSON array from alerts_payload_json) for sending; takes
 * ownership of the malloc'ed string in every case. When the queue is full
 * the oldest payload is dropped. Returns 0, or -EINVAL for NULL. */
int alerts_notifier_enqueue(alerts_notifier *n, char *payload) LW_WUR;

/* Wait until the queue is empty and nothing is in flight, up to timeout_ns.
 * 0 when drained, -ETIMEDOUT otherwise. */
int alerts_notifier_flush(alerts_notifier *n, int64_t timeout_ns) LW_WUR;

/* Counters so far. Cannot fail. */
void alerts_notifier_get_stats(alerts_notifier *n, alerts_notifier_stats *out);

#endif
