/* handlers_profiles.c — the endpoints over stored data: profile lists, one
 * profile, merges, diffs and scalar series.
 *
 * Flow of each handler: validate every parameter first (400 naming it),
 * resolve job/instance to stored targets (404 when none match), read
 * through store.h (422 when nothing is stored in the range), then render in
 * the requested format into the capped body. Merges load profiles in small
 * batches and fold them into an accumulator, so memory is bounded by the
 * distinct stacks rather than the number of profiles, and the request
 * deadline is checked between batches.
 */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MERGE_BATCH 16
#define DEFAULT_SPAN_NS (3600 * API_NS_PER_SECOND) /* from = to - 1h when from is absent */
#define MAX_TOP_ROWS 100000

/* Targets matching the job/instance/match= selection of a request. */
typedef struct target_sel {
    store_target *all; /* every stored target */
    size_t n_all;
    size_t *match;     /* indices into all */
    size_t n_match;
    const char *job;      /* the selection, NULL = any */
    const char *instance;
} target_sel;

static void target_sel_cleanup(target_sel *ts)
{
    store_targets_free(ts->all, ts->n_all);
    free(ts->match);
    memset(ts, 0, sizeof *ts);
}

static const char *target_job(const target_sel *ts, int64_t id)
{
    for (size_t i = 0; i < ts->n_all; i++) {
        if (ts->all[i].id == id)
            return ts->all[i].job;
    }
    return "";
}

static const char *target_instance(const target_sel *ts, int64_t id)
{
    for (size_t i = 0; i < ts->n_all; i++) {
        if (ts->all[i].id == id)
            return ts->all[i].instance;
    }
    return "";
}

/* Read job=, instance= and match={...}; check them; list the matching
 * targets. Returns 0 with *answered false to go on, 0 with *answered true
 * when an error answer was set, or a negative errno (storage). */
static int select_targets(api_request *r, target_sel *ts, api_selector *sel, bool *answered)
{
    char why[256];
    *answered = false;
    memset(ts, 0, sizeof *ts);
    ts->job = api__arg(r, "job");
    ts->instance = api__arg(r, "instance");
    const char *match = api__arg(r, "match");
    if (match) {
        if (api_parse_selector(match, sel, why, sizeof why)) {
            *answered = true;
            return api__bad_param(r, "match", why);
        }
        for (size_t i = 0; i < sel->n_matchers; i++) {
            const char *name = sel->matchers[i].name;
            const char *v = sel->matchers[i].value;
            const char **slot = strcmp(name, "job") == 0        ? &ts->job
                                : strcmp(name, "instance") == 0 ? &ts->instance
                                                                : NULL;
            if (!slot) {
                snprintf(why, sizeof why, "only job and instance can be matched, not \"%.64s\"", name);
                *answered = true;
                return api__bad_param(r, "match", why);
            }
            if (*slot && strcmp(*slot, v) != 0) {
                snprintf(why, sizeof why, "%s=\"%.64s\" contradicts the %s parameter", name, v, name);
                *answered = true;
                return api__bad_param(r, "match", why);
            }
            *slot = v;
        }
    }
    if (ts->job && api_check_label_value(ts->job, why, sizeof why)) {
        *answered = true;
        return api__bad_param(r, "job", why);
    }
    if (ts->instance && api_check_label_value(ts->instance, why, sizeof why)) {
        *answered = true;
        return api__bad_param(r, "instance", why);
    }
    int rc = store_targets_list(r->srv->src.store, &ts->all, &ts->n_all);
    if (rc)
        return rc;
    ts->match = calloc(ts->n_all ? ts->n_all : 1, sizeof *ts->match);
    if (!ts->match)
        return -ENOMEM;
    for (size_t i = 0; i < ts->n_all; i++) {
        if ((!ts->job || strcmp(ts->job, ts->all[i].job) == 0) &&
            (!ts->instance || strcmp(ts->instance, ts->all[i].instance) == 0))
            ts->match[ts->n_match++] = i;
    }
    if (!ts->n_match && (ts->job || ts->instance)) {
        *answered = true;
        if (ts->job && ts->instance)
            return api__error(r, 404, "not_found", "unknown target: job \"%.100s\", instance \"%.100s\"",
                              ts->job, ts->instance);
        return api__error(r, 404, "not_found", "unknown target: %s \"%.200s\"", ts->job ? "job" : "instance",
                          ts->job ? ts->job : ts->instance);
    }
    return 0;
}

/* The one target a diff needs: the selection must match exactly one. */
static int single_target(api_request *r, const target_sel *ts, int64_t *id, bool *answered)
{
    *answered = true;
    if (!ts->job && !ts->instance)
        return api__error(r, 400, "bad_data", "invalid parameter \"instance\": missing (or give base_id and id)");
    if (ts->n_match > 1) {
        char jobs[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < ts->n_match && used + 2 < sizeof jobs; i++) {
            int w = snprintf(jobs + used, sizeof jobs - used, "%s%s", i ? ", " : "", ts->all[ts->match[i]].job);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        return api__error(r, 400, "bad_data",
                          "invalid parameter \"instance\": matches %zu targets (jobs %s); add job=", ts->n_match,
                          jobs);
    }
    *id = ts->all[ts->match[0]].id;
    *answered = false;
    return 0;
}

/* from=/to= of a request. to defaults to now; from to `to - default_span`
 * (0 = unbounded). When check_range, to - from must not exceed the limit. */
static int parse_range(api_request *r, int64_t default_span_ns, bool check_range, int64_t *from, int64_t *to,
                       bool *answered)
{
    char why[256];
    *answered = true;
    const char *s_to = api__arg(r, "to");
    const char *s_from = api__arg(r, "from");
    *to = r->now_ns;
    if (s_to && api_parse_time(s_to, r->now_ns, to, why, sizeof why))
        return api__bad_param(r, "to", why);
    *from = default_span_ns && *to > default_span_ns ? *to - default_span_ns : 0;
    if (s_from && api_parse_time(s_from, r->now_ns, from, why, sizeof why))
        return api__bad_param(r, "from", why);
    if (*from > *to)
        return api__bad_param(r, "to", "end time is before the start time (from)");
    int64_t max = r->srv->opt.max_range_seconds * API_NS_PER_SECOND;
    if (check_range && *to - *from > max) {
        snprintf(why, sizeof why, "range from..to of %.0f s exceeds the limit of %lld s",
                 (double)(*to - *from) / 1e9, (long long)r->srv->opt.max_range_seconds);
        return api__bad_param(r, "from", why);
    }
    *answered = false;
    return 0;
}

static int check_type(api_request *r, const char **type, bool required, bool *answered)
{
    char why[256];
    *type = api__arg(r, "type");
    *answered = true;
    if (!*type && required)
        return api__bad_param(r, "type", "missing (e.g. type=goroutine or type=heap)");
    if (*type && api_check_profile_type(*type, why, sizeof why))
        return api__bad_param(r, "type", why);
    *answered = false;
    return 0;
}

/* Append one profile's metadata as a JSON object. */
static int info_json(lw_buf *b, const store_profile_info *pi, const char *job, const char *instance)
{
    char t[48];
    int rc = lw_buf_printf(b, "{\"id\":%lld,\"job\":", (long long)pi->id);
    if (!rc)
        rc = lw_buf_json_str(b, job);
    if (!rc)
        rc = lw_buf_puts(b, ",\"instance\":");
    if (!rc)
        rc = lw_buf_json_str(b, instance);
    if (!rc)
        rc = lw_buf_puts(b, ",\"type\":");
    if (!rc)
        rc = lw_buf_json_str(b, pi->profile_type);
    if (!rc)
        rc = lw_buf_printf(b, ",\"time\":\"%s\",\"timestamp\":%lld.%09lld,\"duration_seconds\":%.9g,\"samples\":%lld,"
                              "\"sample_types\":[",
                           api_format_time_buf(pi->time_ns, t, sizeof t), (long long)(pi->time_ns / API_NS_PER_SECOND),
                           (long long)(pi->time_ns % API_NS_PER_SECOND), (double)pi->duration_ns / 1e9,
                           (long long)pi->n_samples);
    /* sample_types is "type/unit,type/unit,..." */
    const char *p = pi->sample_types;
    for (int i = 0; !rc && i < pi->n_sample_types && *p; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *slash = memchr(p, '/', len);
        size_t tl = slash ? (size_t)(slash - p) : len;
        char type[128], unit[128];
        snprintf(type, sizeof type, "%.*s", (int)tl, p);
        snprintf(unit, sizeof unit, "%.*s", slash ? (int)(len - tl - 1) : 0, slash ? slash + 1 : "");
        rc = lw_buf_printf(b, "%s{\"type\":", i ? "," : "");
        if (!rc)
            rc = lw_buf_json_str(b, type);
        if (!rc)
            rc = lw_buf_puts(b, ",\"unit\":");
        if (!rc)
            rc = lw_buf_json_str(b, unit);
        if (!rc)
            rc = lw_buf_puts(b, "}");
        p = end ? end + 1 : p + len;
    }
    if (!rc)
        rc = lw_buf_puts(b, "],\"totals\":[");
    for (int i = 0; !rc && i < pi->n_sample_types && i < 8; i++)
        rc = lw_buf_printf(b, "%s%lld", i ? "," : "", (long long)pi->totals[i]);
    if (!rc)
        rc = lw_buf_puts(b, "]}");
    return rc;
}

int api__h_profiles(api_request *r)
{
    char why[256];
    target_sel ts;
    api_selector sel;
    bool answered;
    store_profile_info *infos = NULL;
    size_t n = 0;
    const char *type;
    int64_t from, to;
    int rc = select_targets(r, &ts, &sel, &answered);
    if (rc || answered)
        goto out;
    rc = check_type(r, &type, false, &answered);
    if (rc || answered)
        goto out;
    rc = parse_range(r, 0, false, &from, &to, &answered);
    if (rc || answered)
        goto out;
    uint64_t limit = r->srv->opt.max_list_profiles;
    const char *s_limit = api__arg(r, "limit");
    if (s_limit && api_parse_uint(s_limit, 1, r->srv->opt.max_list_profiles, &limit, why, sizeof why)) {
        rc = api__bad_param(r, "limit", why);
        goto out;
    }
    store_profile_query q = {
        .job = ts.job, .instance = ts.instance, .profile_type = type,
        .from_ns = from, .to_ns = to, .limit = (size_t)limit,
    };
    rc = store_profiles_list(r->srv->src.store, &q, &infos, &n);
    if (rc)
        goto out;
    rc = api__json_begin(r);
    if (!rc)
        rc = lw_buf_puts(&r->body, "[");
    /* A limited list comes newest first; answer oldest first either way. */
    bool reversed = n > 1 && infos[0].time_ns > infos[n - 1].time_ns;
    for (size_t i = 0; !rc && i < n; i++) {
        const store_profile_info *pi = &infos[reversed ? n - 1 - i : i];
        if (i)
            rc = lw_buf_puts(&r->body, ",");
        if (!rc)
            rc = info_json(&r->body, pi, target_job(&ts, pi->target_id), target_instance(&ts, pi->target_id));
    }
    if (!rc)
        rc = lw_buf_puts(&r->body, "]");
    if (!rc)
        rc = api__json_end(r);
out:
    free(infos);
    target_sel_cleanup(&ts);
    return rc;
}

/* Render p as format= asks (default pprof), named `stem` when downloaded. */
static int reply_profile(api_request *r, const pprof_profile *p, const char *stem)
{
    char why[256];
    api_format fmt = API_FORMAT_PPROF;
    const char *s_fmt = api__arg(r, "format");
    if (s_fmt && api_parse_format(s_fmt, &fmt, why, sizeof why))
        return api__bad_param(r, "format", why);
    const char *st = api__arg(r, "sample_type");
    int index = pprof_sample_type_index(p, st);
    if (index < 0) {
        size_t used = (size_t)snprintf(why, sizeof why, "profile has no sample type \"%.64s\" (has", st ? st : "");
        for (size_t i = 0; i < p->n_sample_types && used + 2 < sizeof why; i++) {
            int64_t ti = p->sample_types[i].type;
            int w = snprintf(why + used, sizeof why - used, " %.40s",
                             ti >= 0 && (size_t)ti < p->n_strings ? p->strings[ti] : "?");
            if (w < 0)
                break;
            used += (size_t)w;
        }
        if (used + 2 < sizeof why)
            snprintf(why + used, sizeof why - used, ")");
        return api__bad_param(r, "sample_type", why);
    }
    uint64_t top = 0;
    const char *s_top = api__arg(r, "top");
    if (s_top && api_parse_uint(s_top, 0, MAX_TOP_ROWS, &top, why, sizeof why))
        return api__bad_param(r, "top", why);
    int rc;
    switch (fmt) {
    case API_FORMAT_PPROF:
        r->status = 200;
        r->content_type = "application/octet-stream";
        snprintf(r->filename, sizeof r->filename, "%s.pb.gz", stem);
        /* The stem holds a stored profile type: keep the header value plain. */
        for (char *c = r->filename; *c; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                  *c == '-' || *c == '_'))
                *c = '_';
        }
        return pprof_encode(p, true, &r->body);
    case API_FORMAT_JSON:
        rc = api__json_begin(r);
        if (!rc)
            rc = pprof_render_json(p, &r->body);
        return rc ? rc : api__json_end(r);
    case API_FORMAT_TEXT:
        r->status = 200;
        r->content_type = "text/plain; charset=utf-8";
        return pprof_render_top(p, index, (size_t)top, &r->body);
    case API_FORMAT_FOLDED:
        r->status = 200;
        r->content_type = "text/plain; charset=utf-8";
        return pprof_render_folded(p, index, &r->body);
    }
    return -EINVAL;
}

/* Parse a profile id from text; answers 400 naming `param` when bad. */
static int parse_id(api_request *r, const char *param, const char *s, int64_t *id, bool *answered)
{
    char why[256];
    uint64_t v;
    *answered = false;
    if (!s) {
        *answered = true;
        return api__bad_param(r, param, "missing");
    }
    if (api_parse_uint(s, 1, INT64_MAX, &v, why, sizeof why)) {
        *answered = true;
        return api__bad_param(r, param, why);
    }
    *id = (int64_t)v;
    return 0;
}

/* Load profile id, answering 404 when it does not exist. */
static int load_profile(api_request *r, int64_t id, pprof_profile **p, store_profile_info *info, bool *answered)
{
    *answered = false;
    int rc = store_profile_load(r->srv->src.store, id, p, info);
    if (rc == -ENOENT) {
        *answered = true;
        return api__error(r, 404, "not_found", "no profile with id %lld", (long long)id);
    }
    return rc;
}

int api__h_profile(api_request *r)
{
    const char *s_id = r->path + strlen("/api/v1/profiles/");
    int64_t id;
    bool answered;
    pprof_profile *p = NULL;
    store_profile_info info;
    int rc = parse_id(r, "id", s_id, &id, &answered);
    if (rc || answered)
        goto out;
    rc = load_profile(r, id, &p, &info, &answered);
    if (rc || answered)
        goto out;
    char stem[96];
    snprintf(stem, sizeof stem, "%s-%lld", info.profile_type, (long long)id);
    rc = reply_profile(r, p, stem);
out:
    pprof_free(p);
    return rc;
}

/* Fold batch[0..n) into *acc (which may be NULL at first). */
static int merge_into(api_request *r, pprof_profile **acc, pprof_profile **batch, size_t n, bool *answered)
{
    const pprof_profile *in[MERGE_BATCH + 1];
    size_t k = 0;
    if (*acc)
        in[k++] = *acc;
    for (size_t i = 0; i < n; i++)
        in[k++] = batch[i];
    pprof_profile *merged = NULL;
    char err[PPROF_ERR_LEN] = "";
    int rc = pprof_merge(in, k, &merged, err, sizeof err);
    if (rc == -EINVAL) {
        *answered = true;
        return api__error(r, 422, "execution", "cannot merge the profiles in the range: %s", err);
    }
    if (rc)
        return rc;
    pprof_free(*acc);
    *acc = merged;
    return 0;
}

int api__h_merge(api_request *r)
{
    char why[256];
    target_sel ts;
    api_selector sel;
    bool answered;
    const char *type;
    int64_t from, to;
    store_profile_info *infos = NULL;
    size_t n = 0;
    pprof_profile *acc = NULL;
    pprof_profile *batch[MERGE_BATCH] = {0};
    size_t n_batch = 0;
    int rc = select_targets(r, &ts, &sel, &answered);
    if (rc || answered)
        goto out;
    rc = check_type(r, &type, true, &answered);
    if (rc || answered)
        goto out;
    rc = parse_range(r, DEFAULT_SPAN_NS, true, &from, &to, &answered);
    if (rc || answered)
        goto out;
    size_t max = r->srv->opt.max_merge_profiles;
    store_profile_query q = {
        .job = ts.job, .instance = ts.instance, .profile_type = type,
        .from_ns = from, .to_ns = to, .limit = max + 1,
    };
    rc = store_profiles_list(r->srv->src.store, &q, &infos, &n);
    if (rc)
        goto out;
    if (n == 0) {
        rc = api__error(r, 422, "execution", "no %s profiles stored between from and to", type);
        goto out;
    }
    if (n > max) {
        snprintf(why, sizeof why, "the range holds more than %zu profiles (the merge limit); narrow from..to",
                 max);
        rc = api__bad_param(r, "from", why);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = load_profile(r, infos[i].id, &batch[n_batch], NULL, &answered);
        if (rc == 0 && answered) { /* deleted by retention meanwhile: skip it */
            lw_buf_reset(&r->body);
            answered = false;
            continue;
        }
        if (rc)
            goto out;
        n_batch++;
        if (n_batch == MERGE_BATCH || i + 1 == n) {
            rc = merge_into(r, &acc, batch, n_batch, &answered);
            for (size_t k = 0; k < n_batch; k++) {
                pprof_free(batch[k]);
                batch[k] = NULL;
            }
            n_batch = 0;
            if (rc || answered)
                goto out;
            if (lw_wall_ns() > r->deadline_ns || atomic_load(&r->srv->stopping)) {
                rc = -ETIMEDOUT;
                goto out;
            }
        }
    }
    if (n_batch) {
        rc = merge_into(r, &acc, batch, n_batch, &answered);
        if (rc || answered)
            goto out;
    }
    if (!acc) {
        rc = api__error(r, 422, "execution", "no %s profiles stored between from and to", type);
        goto out;
    }
    char stem[96], count[24];
    snprintf(stem, sizeof stem, "merge-%s-%zu", type, n);
    snprintf(count, sizeof count, "%zu", n);
    api__set_header(r, "X-Leakwatch-Merged-Profiles", count);
    rc = reply_profile(r, acc, stem);
out:
    for (size_t k = 0; k < n_batch; k++)
        pprof_free(batch[k]);
    pprof_free(acc);
    free(infos);
    target_sel_cleanup(&ts);
    return rc;
}

/* The ids of a diff: base_id=&id=, or the profiles at from and to. */
static int diff_ids(api_request *r, int64_t *base_id, int64_t *id, bool *answered)
{
    const char *s_base = api__arg(r, "base_id");
    const char *s_id = api__arg(r, "id");
    if (s_base || s_id) {
        int rc = parse_id(r, "base_id", s_base, base_id, answered);
        if (rc || *answered)
            return rc;
        return parse_id(r, "id", s_id, id, answered);
    }
    target_sel ts;
    api_selector sel;
    const char *type;
    int64_t from, to, target = 0;
    store_profile_info bi, ci;
    char t[48];
    int rc = select_targets(r, &ts, &sel, answered);
    if (rc || *answered)
        goto out;
    rc = check_type(r, &type, true, answered);
    if (rc || *answered)
        goto out;
    if (!api__arg(r, "from")) {
        *answered = true;
        rc = api__bad_param(r, "from", "missing (e.g. from=now-30m, or give base_id and id)");
        goto out;
    }
    rc = parse_range(r, 0, false, &from, &to, answered);
    if (rc || *answered)
        goto out;
    rc = single_target(r, &ts, &target, answered);
    if (rc || *answered)
        goto out;
    rc = store_profile_at(r->srv->src.store, target, type, from, &bi);
    if (rc == -ENOENT) {
        *answered = true;
        rc = api__error(r, 422, "execution", "no %s profile of %s stored at or before from (%s)", type,
                        ts.all[ts.match[0]].instance, api_format_time_buf(from, t, sizeof t));
        goto out;
    }
    if (rc)
        goto out;
    rc = store_profile_at(r->srv->src.store, target, type, to, &ci);
    if (rc == -ENOENT) {
        *answered = true;
        rc = api__error(r, 422, "execution", "no %s profile of %s stored at or before to (%s)", type,
                        ts.all[ts.match[0]].instance, api_format_time_buf(to, t, sizeof t));
        goto out;
    }
    if (rc)
        goto out;
    *base_id = bi.id;
    *id = ci.id;
out:
    target_sel_cleanup(&ts);
    return rc;
}

int api__h_diff(api_request *r)
{
    int64_t base_id = 0, id = 0;
    bool answered = false;
    pprof_profile *base = NULL, *cur = NULL, *diff = NULL;
    store_profile_info bi, ci;
    int rc = diff_ids(r, &base_id, &id, &answered);
    if (rc || answered)
        goto out;
    /* Both profiles at once (one reader connection and thread each); on
     * failure fall back to one by one so a missing id gets its own 404. */
    {
        const int64_t ids[2] = {base_id, id};
        pprof_profile *loaded[2] = {NULL, NULL};
        store_profile_info infos[2];
        rc = store_profiles_load(r->srv->src.store, ids, 2, loaded, infos);
        if (rc == 0) {
            base = loaded[0];
            cur = loaded[1];
            bi = infos[0];
            ci = infos[1];
        }
    }
    if (rc == -ENOENT) {
        rc = load_profile(r, base_id, &base, &bi, &answered);
        if (rc || answered)
            goto out;
        rc = load_profile(r, id, &cur, &ci, &answered);
        if (rc || answered)
            goto out;
    }
    if (rc)
        goto out;
    if (strcmp(bi.profile_type, ci.profile_type) != 0) {
        rc = api__error(r, 400, "bad_data", "invalid parameter \"base_id\": profile %lld is %s but profile %lld is %s",
                        (long long)base_id, bi.profile_type, (long long)id, ci.profile_type);
        goto out;
    }
    char err[PPROF_ERR_LEN] = "";
    rc = pprof_diff(base, cur, &diff, err, sizeof err);
    if (rc == -EINVAL) {
        rc = api__error(r, 422, "execution", "cannot diff profiles %lld and %lld: %s", (long long)base_id,
                        (long long)id, err);
        goto out;
    }
    if (rc)
        goto out;
    char stem[96], v[32];
    snprintf(stem, sizeof stem, "diff-%s-%lld-%lld", ci.profile_type, (long long)base_id, (long long)id);
    snprintf(v, sizeof v, "%lld", (long long)base_id);
    api__set_header(r, "X-Leakwatch-Base-Profile", v);
    snprintf(v, sizeof v, "%lld", (long long)id);
    api__set_header(r, "X-Leakwatch-Profile", v);
    rc = reply_profile(r, diff, stem);
out:
    pprof_free(diff);
    pprof_free(cur);
    pprof_free(base);
    return rc;
}

int api__h_series(api_request *r)
{
    char why[256];
    target_sel ts;
    api_selector sel;
    bool answered;
    int64_t from, to;
    store_point *pts = NULL;
    size_t n_series = 0;
    int rc = select_targets(r, &ts, &sel, &answered);
    if (rc || answered)
        goto out;
    const char *signal = api__arg(r, "signal");
    if (!signal) {
        rc = api__bad_param(r, "signal", "missing (e.g. signal=goroutines)");
        goto out;
    }
    if (api_check_signal(signal, why, sizeof why)) {
        rc = api__bad_param(r, "signal", why);
        goto out;
    }
    rc = parse_range(r, DEFAULT_SPAN_NS, true, &from, &to, &answered);
    if (rc || answered)
        goto out;
    rc = api__json_begin(r);
    if (!rc)
        rc = lw_buf_puts(&r->body, "{\"resultType\":\"matrix\",\"result\":[");
    for (size_t i = 0; !rc && i < ts.n_match; i++) {
        const store_target *t = &ts.all[ts.match[i]];
        size_t n = 0;
        free(pts);
        pts = NULL;
        rc = store_series_get(r->srv->src.store, t->id, signal, from, to, &pts, &n);
        if (rc || !n)
            continue;
        rc = lw_buf_printf(&r->body, "%s{\"metric\":{\"__name__\":\"leakwatch_%s\",\"instance\":",
                           n_series ? "," : "", signal);
        if (!rc)
            rc = lw_buf_json_str(&r->body, t->instance);
        if (!rc)
            rc = lw_buf_puts(&r->body, ",\"job\":");
        if (!rc)
            rc = lw_buf_json_str(&r->body, t->job);
        if (!rc)
            rc = lw_buf_puts(&r->body, "},\"values\":[");
        for (size_t k = 0; !rc && k < n; k++)
            rc = lw_buf_printf(&r->body, "%s[%lld.%03lld,\"%.17g\"]", k ? "," : "",
                               (long long)(pts[k].time_ns / API_NS_PER_SECOND),
                               (long long)(pts[k].time_ns % API_NS_PER_SECOND / 1000000), pts[k].value);
        if (!rc)
            rc = lw_buf_puts(&r->body, "]}");
        n_series++;
    }
    if (rc)
        goto out;
    if (!n_series) {
        rc = api__error(r, 422, "execution", "no %s points stored between from and to", signal);
        goto out;
    }
    rc = lw_buf_puts(&r->body, "]}");
    if (!rc)
        rc = api__json_end(r);
out:
    free(pts);
    target_sel_cleanup(&ts);
    return rc;
}
