/* lwcoll_dump.c — print what leakwatchd stored, as one JSON document, through
 * the storage contract (store.h) rather than the SQLite schema. Used by the
 * collector's integration tests.
 *
 *   lwcoll-dump DB    {"targets":[{id,job,instance,labels}],
 *                      "profiles":[{id,target_id,type,time_ns,sample_types,totals}],
 *                      "series":[{target_id,signal,points:[[time_ns,value],...]}],
 *                      "integrity":"ok"|"<problem>"}
 *
 * Exit status: 0 success, 1 failure (message on stderr), 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static const char *const signals[] = {"goroutines", "heap_inuse_bytes", "heap_inuse_objects",
                                      "heap_alloc_bytes", "heap_alloc_objects"};

static int dump(store *s, lw_buf *o)
{
    store_target *t = NULL;
    size_t nt = 0;
    store_profile_info *p = NULL;
    size_t np = 0;
    int rc = store_targets_list(s, &t, &nt);
    if (rc)
        return rc;
    rc = lw_buf_puts(o, "{\"targets\":[");
    for (size_t i = 0; i < nt && !rc; i++)
        rc = lw_buf_printf(o, "%s{\"id\":%" PRId64 ",\"job\":", i ? "," : "", t[i].id) ||
             lw_buf_json_str(o, t[i].job) || lw_buf_puts(o, ",\"instance\":") ||
             lw_buf_json_str(o, t[i].instance) || lw_buf_printf(o, ",\"labels\":%s}", t[i].labels_json);
    store_profile_query q;
    memset(&q, 0, sizeof(q));
    if (!rc)
        rc = store_profiles_list(s, &q, &p, &np);
    rc = rc || lw_buf_puts(o, "],\"profiles\":[");
    for (size_t i = 0; i < np && !rc; i++) {
        rc = lw_buf_printf(o, "%s{\"id\":%" PRId64 ",\"target_id\":%" PRId64 ",\"type\":", i ? "," : "",
                           p[i].id, p[i].target_id) ||
             lw_buf_json_str(o, p[i].profile_type) ||
             lw_buf_printf(o, ",\"time_ns\":%" PRId64 ",\"sample_types\":", p[i].time_ns) ||
             lw_buf_json_str(o, p[i].sample_types) || lw_buf_puts(o, ",\"totals\":[");
        for (int k = 0; k < p[i].n_sample_types && k < 8 && !rc; k++)
            rc = lw_buf_printf(o, "%s%" PRId64, k ? "," : "", p[i].totals[k]);
        rc = rc || lw_buf_puts(o, "]}");
    }
    rc = rc || lw_buf_puts(o, "],\"series\":[");
    bool first = true;
    for (size_t i = 0; i < nt && !rc; i++) {
        for (size_t k = 0; k < sizeof(signals) / sizeof(signals[0]) && !rc; k++) {
            store_point *pts = NULL;
            size_t n = 0;
            if (store_series_get(s, t[i].id, signals[k], 0, INT64_MAX, &pts, &n) != 0 || n == 0) {
                free(pts);
                continue;
            }
            rc = lw_buf_printf(o, "%s{\"target_id\":%" PRId64 ",\"signal\":\"%s\",\"points\":[",
                               first ? "" : ",", t[i].id, signals[k]);
            first = false;
            for (size_t j = 0; j < n && !rc; j++)
                rc = lw_buf_printf(o, "%s[%" PRId64 ",%.17g]", j ? "," : "", pts[j].time_ns, pts[j].value);
            rc = rc || lw_buf_puts(o, "]}");
            free(pts);
        }
    }
    char err[STORE_ERR_LEN] = "";
    int irc = store_integrity_check(s, err, sizeof(err));
    rc = rc || lw_buf_puts(o, "],\"integrity\":") || lw_buf_json_str(o, irc ? err : "ok") ||
         lw_buf_puts(o, "}\n");
    store_targets_free(t, nt);
    free(p);
    return rc ? -E2BIG : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: lwcoll-dump DB\n");
        return 2;
    }
    store_options opt = {.read_only = true};
    store *s = NULL;
    char err[STORE_ERR_LEN] = "";
    int rc = store_open(argv[1], &opt, &s, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "lwcoll-dump: %s: %s\n", argv[1], err[0] ? err : strerror(-rc));
        return 1;
    }
    lw_buf o;
    lw_buf_init(&o, (size_t)1 << 30);
    rc = dump(s, &o);
    if (!rc)
        fputs(o.data, stdout);
    else
        fprintf(stderr, "lwcoll-dump: %s\n", strerror(-rc));
    lw_buf_cleanup(&o);
    store_close(s);
    return rc ? 1 : 0;
}
