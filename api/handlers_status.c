/* handlers_status.c — /metrics, /-/healthy, /-/ready, /-/reload, and the
 * endpoints whose data comes from the daemon's callbacks (targets, leaks,
 * alerts).
 *
 * Callback output is appended between the envelope's parts without being
 * parsed: the daemon owns its JSON. When a callback fails, whatever it
 * appended is discarded with the rest of the body by api__error().
 */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int text_reply(api_request *r, unsigned status, const char *text)
{
    r->status = status;
    r->content_type = "text/plain; charset=utf-8";
    return lw_buf_puts(&r->body, text);
}

int api__h_healthy(api_request *r)
{
    return text_reply(r, 200, "leakwatchd is Healthy.\n");
}

int api__h_ready(api_request *r)
{
    if (api__ready(r->srv))
        return text_reply(r, 200, "leakwatchd is Ready.\n");
    return text_reply(r, 503, "leakwatchd is not ready.\n");
}

int api__h_reload(api_request *r)
{
    const api_sources *src = &r->srv->src;
    if (!src->reload)
        return text_reply(r, 200, "nothing to reload\n");
    char err[API_ERR_LEN] = "";
    int rc = src->reload(src->ctx, err, sizeof err);
    if (rc == 0)
        return text_reply(r, 200, "configuration reloaded\n");
    return api__error(r, rc == -EINVAL ? 400 : 503, rc == -EINVAL ? "bad_data" : "unavailable",
                      "failed to reload config: %s", err[0] ? err : strerror(-rc));
}

static int http_request_metrics(api_request *r)
{
    api_server *srv = r->srv;
    int rc = lw_buf_puts(&r->body, "# HELP leakwatch_http_requests_total HTTP requests answered by the API, "
                                   "by handler and status code.\n"
                                   "# TYPE leakwatch_http_requests_total counter\n");
    for (size_t i = 0; !rc && i <= api__n_routes; i++) {
        const char *handler = i < api__n_routes ? api__routes[i].path : "other";
        for (size_t c = 0; !rc && c < API__N_CODES; c++) {
            unsigned long long n = atomic_load_explicit(&srv->requests[i * API__N_CODES + c],
                                                        memory_order_relaxed);
            /* 200 is always shown so every handler's series exists from the start. */
            if (!n && api__codes[c] != 200)
                continue;
            char code[16];
            if (api__codes[c])
                snprintf(code, sizeof code, "%u", api__codes[c]);
            else
                snprintf(code, sizeof code, "other");
            rc = lw_buf_printf(&r->body, "leakwatch_http_requests_total{code=\"%s\",handler=\"%s\"} %llu\n",
                               code, handler, n);
        }
    }
    return rc;
}

int api__h_metrics(api_request *r)
{
    api_server *srv = r->srv;
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    int rc = lw_buf_printf(&r->body,
                           "# HELP leakwatch_build_info A metric with a constant '1' value labeled by the "
                           "version of leakwatch.\n"
                           "# TYPE leakwatch_build_info gauge\n"
                           "leakwatch_build_info{version=\"%s\"} 1\n",
                           LW_VERSION);
    if (!rc && srv->src.store) {
        int64_t n = 0, bytes = 0;
        if (store_profiles_count(srv->src.store, &n) == 0)
            rc = lw_buf_printf(&r->body,
                               "# HELP leakwatch_profiles_stored Profiles currently in the database.\n"
                               "# TYPE leakwatch_profiles_stored gauge\n"
                               "leakwatch_profiles_stored %lld\n",
                               (long long)n);
        if (!rc && store_size_bytes(srv->src.store, &bytes) == 0)
            rc = lw_buf_printf(&r->body,
                               "# HELP leakwatch_storage_bytes Size of the database files (main file and "
                               "WAL) in bytes.\n"
                               "# TYPE leakwatch_storage_bytes gauge\n"
                               "leakwatch_storage_bytes %lld\n",
                               (long long)bytes);
    }
    if (!rc)
        rc = http_request_metrics(r);
    if (!rc)
        rc = api__process_metrics(&r->body);
    if (!rc && srv->src.metrics_text) {
        rc = srv->src.metrics_text(srv->src.ctx, &r->body);
        if (rc && rc != -E2BIG && rc != -ENOMEM)
            return api__error(r, 503, "unavailable", "daemon metrics unavailable: %s", strerror(-rc));
    }
    return rc;
}

/* A JSON endpoint filled by a callback, or `fallback` when there is none. */
static int callback_json(api_request *r, int (*cb)(void *, lw_buf *), const char *fallback)
{
    int rc = api__json_begin(r);
    if (rc)
        return rc;
    if (cb) {
        rc = cb(r->srv->src.ctx, &r->body);
        if (rc && rc != -E2BIG && rc != -ENOMEM)
            return api__error(r, 503, "unavailable", "data unavailable: %s", strerror(-rc));
    } else {
        rc = lw_buf_puts(&r->body, fallback);
    }
    return rc ? rc : api__json_end(r);
}

/* The stored targets, for a daemon without a targets callback. */
static int stored_targets(api_request *r)
{
    store_target *t = NULL;
    size_t n = 0;
    int rc = api__json_begin(r);
    if (!rc)
        rc = lw_buf_puts(&r->body, "{\"activeTargets\":[");
    if (!rc && r->srv->src.store)
        rc = store_targets_list(r->srv->src.store, &t, &n);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = lw_buf_printf(&r->body, "%s{\"labels\":%s,\"health\":\"unknown\",\"lastError\":\"\",\"profiles\":[]}",
                           i ? "," : "", t[i].labels_json && t[i].labels_json[0] ? t[i].labels_json : "{}");
    }
    if (!rc)
        rc = lw_buf_puts(&r->body, "],\"droppedTargets\":[]}");
    if (!rc)
        rc = api__json_end(r);
    store_targets_free(t, n);
    return rc;
}

int api__h_targets(api_request *r)
{
    if (r->srv->src.targets_json)
        return callback_json(r, r->srv->src.targets_json, NULL);
    return stored_targets(r);
}

int api__h_leaks(api_request *r)
{
    return callback_json(r, r->srv->src.leaks_json, "[]");
}

int api__h_alerts(api_request *r)
{
    return callback_json(r, r->srv->src.alerts_json, "{\"alerts\":[]}");
}
