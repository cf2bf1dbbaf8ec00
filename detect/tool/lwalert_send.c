/* lwalert_send.c — post one alert to Alertmanagers with leakwatch's payload builder and notifier.
 *
 * Usage: lwalert_send --am URL [--am URL ...] --alertname NAME
 *          [--label k=v ...] [--annotation k=v ...] [--generator-url URL]
 *          [--state firing|resolved] [--active-at UNIX_S] [--resolved-at UNIX_S]
 *          [--resend-delay S]
 * Builds the alert through the same state machine, alerts_payload_json()
 * and notifier thread the daemon uses, waits for delivery and exits 0 when
 * every Alertmanager answered 2xx (1 otherwise, 2 on usage errors). Used by
 * tests/integration/test_alertmanager.py and for manual checks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alerts.h"
#include "lw_util.h"

#define MAX_KV 32

static int split_kv(char *arg, alerts_kv *kv)
{
    char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg)
        return -EINVAL;
    *eq = '\0';
    kv->name = arg;
    kv->value = eq + 1;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: lwalert_send --am URL --alertname NAME [--label k=v] [--annotation k=v]\n"
                    "         [--generator-url URL] [--state firing|resolved] [--active-at UNIX_S]\n"
                    "         [--resolved-at UNIX_S] [--resend-delay S]\n");
}

int main(int argc, char **argv)
{
    int status = 2;
    alerts_config cfg;
    alerts_config_default(&cfg);
    cfg.max_attempts = 3;
    cfg.backoff_initial_ns = 200LL * 1000000LL;
    alerts_kv labels[MAX_KV], annotations[MAX_KV];
    size_t n_labels = 0, n_annotations = 0;
    const char *alertname = NULL, *state = "firing", *gen = NULL;
    int64_t now = lw_wall_ns(), active_at = now, resolved_at = now;
    alert a;
    memset(&a, 0, sizeof(a));
    lw_buf payload;
    lw_buf_init(&payload, 1 << 20);
    alerts_notifier *n = NULL;

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            usage();
            goto out;
        }
        i++;
        if (strcmp(opt, "--am") == 0 && cfg.n_alertmanagers < ALERTS_MAX_AM) {
            snprintf(cfg.alertmanagers[cfg.n_alertmanagers++], sizeof(cfg.alertmanagers[0]), "%s", val);
        } else if (strcmp(opt, "--alertname") == 0) {
            alertname = val;
        } else if (strcmp(opt, "--label") == 0 && n_labels < MAX_KV - 1) {
            if (split_kv(val, &labels[n_labels++]) < 0) {
                usage();
                goto out;
            }
        } else if (strcmp(opt, "--annotation") == 0 && n_annotations < MAX_KV) {
            if (split_kv(val, &annotations[n_annotations++]) < 0) {
                usage();
                goto out;
            }
        } else if (strcmp(opt, "--generator-url") == 0) {
            gen = val;
        } else if (strcmp(opt, "--state") == 0) {
            state = val;
        } else if (strcmp(opt, "--active-at") == 0) {
            active_at = (int64_t)(strtod(val, NULL) * 1e9);
        } else if (strcmp(opt, "--resolved-at") == 0) {
            resolved_at = (int64_t)(strtod(val, NULL) * 1e9);
        } else if (strcmp(opt, "--resend-delay") == 0) {
            cfg.resend_delay_ns = (int64_t)(strtod(val, NULL) * 1e9);
        } else {
            usage();
            goto out;
        }
    }
    if (alertname == NULL || cfg.n_alertmanagers == 0 ||
        (strcmp(state, "firing") != 0 && strcmp(state, "resolved") != 0)) {
        usage();
        goto out;
    }
    status = 1;
    labels[n_labels++] = (alerts_kv){"alertname", (char *)alertname};
    snprintf(a.alertname, sizeof(a.alertname), "%s", alertname);
    if (alerts_set_labels(&a, labels, n_labels) < 0 ||
        alerts_set_annotations(&a, annotations, n_annotations) < 0) {
        fprintf(stderr, "lwalert_send: out of memory\n");
        goto out;
    }
    if (gen != NULL && (a.generator_url = strdup(gen)) == NULL)
        goto out;
    /* Drive the state machine as the engine does: active -> firing (for 0),
     * then inactive -> resolved. */
    (void)alerts_step(&a, true, active_at, 0);
    if (strcmp(state, "resolved") == 0)
        (void)alerts_step(&a, false, resolved_at, 0);
    if (!alerts_needs_send(&a, now, cfg.resend_delay_ns)) {
        fprintf(stderr, "lwalert_send: alert would not be sent\n");
        goto out;
    }
    if (alerts_payload_json((alert *const[]){&a}, 1, now, cfg.resend_delay_ns, &payload) < 0) {
        fprintf(stderr, "lwalert_send: payload too large\n");
        goto out;
    }
    printf("%s\n", payload.data);
    int rc = alerts_notifier_new(&cfg, &n);
    if (rc < 0) {
        fprintf(stderr, "lwalert_send: notifier: %s\n", strerror(-rc));
        goto out;
    }
    if (alerts_notifier_enqueue(n, lw_buf_detach(&payload, NULL)) < 0)
        goto out;
    rc = alerts_notifier_flush(n, 60LL * 1000000000LL);
    alerts_notifier_stats st;
    alerts_notifier_get_stats(n, &st);
    printf("sent=%llu failed=%llu dropped=%llu\n", (unsigned long long)st.sent,
           (unsigned long long)st.failed, (unsigned long long)st.dropped);
    if (rc == 0 && st.sent == cfg.n_alertmanagers)
        status = 0;
out:
    alerts_notifier_free(n);
    alerts_clear(&a);
    lw_buf_cleanup(&payload);
    return status;
}
