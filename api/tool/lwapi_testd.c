/* lwapi_testd.c — a stand-in daemon for the API's integration tests: opens a
 * store file, optionally ingests given profiles as targets, and serves the
 * API with stub callbacks until SIGTERM/SIGINT.
 *
 * Usage:
 *   lwapi-testd --db FILE [--listen ADDR] [--ingest JOB,INSTANCE,TYPE,UNIXSEC,FILE]...
 *               [--exit-after-ingest] [--ready-after SECONDS] [--reload-fail]
 *               [--leaks-json TEXT] [--alerts-json TEXT] [--metrics-file FILE]
 *               [--max-merge N] [--max-response-bytes N] [--max-connections N]
 *               [--web-config FILE]
 *   lwapi-testd --hash-password PASSWORD   (prints a bcrypt hash for a web config)
 * Each ingest prints "ingested ID TYPE TIME_NS" on stdout. The stub
 * callbacks serve the given texts verbatim; reload counts calls (and fails
 * with -EINVAL under --reload-fail). The process exits 0 after a clean
 * stop, so sanitizers see every leak.
 */
#include <crypt.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "lw_util.h"
#include "pprof.h"
#include "store.h"

#define MAX_INGESTS 4096

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct testd {
    const char *leaks;
    const char *alerts;
    const char *metrics_file;
    bool reload_fail;
    int n_reloads;
    time_t ready_at;
} testd;

static int cb_leaks(void *ctx, lw_buf *out)
{
    return lw_buf_puts(out, ((testd *)ctx)->leaks);
}

static int cb_alerts(void *ctx, lw_buf *out)
{
    return lw_buf_puts(out, ((testd *)ctx)->alerts);
}

static int cb_metrics(void *ctx, lw_buf *out)
{
    testd *t = ctx;
    int rc = lw_buf_printf(out,
                           "# HELP lwapi_testd_reloads_total Reloads requested.\n"
                           "# TYPE lwapi_testd_reloads_total counter\n"
                           "lwapi_testd_reloads_total %d\n",
                           __atomic_load_n(&t->n_reloads, __ATOMIC_RELAXED));
    if (rc || !t->metrics_file)
        return rc;
    FILE *f = fopen(t->metrics_file, "re");
    if (!f)
        return -errno;
    char buf[4096];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0)
        rc = lw_buf_append(out, buf, n);
    fclose(f);
    return rc;
}

static int cb_reload(void *ctx, char *err, size_t err_len)
{
    testd *t = ctx;
    __atomic_add_fetch(&t->n_reloads, 1, __ATOMIC_RELAXED);
    if (t->reload_fail) {
        snprintf(err, err_len, "test.yml:1:1: reload refused on purpose");
        return -EINVAL;
    }
    return 0;
}

static bool cb_ready(void *ctx)
{
    return time(NULL) >= ((testd *)ctx)->ready_at;
}

static int read_file(const char *path, lw_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char buf[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0)
        rc = lw_buf_append(out, buf, n);
    fclose(f);
    return rc;
}

/* spec: JOB,INSTANCE,TYPE,UNIXSEC,FILE */
static int ingest(store *s, const char *spec)
{
    char copy[2048];
    char *f[5];
    int rc;
    snprintf(copy, sizeof copy, "%s", spec);
    char *p = copy;
    for (int i = 0; i < 5; i++) {
        f[i] = p;
        p = i < 4 ? strchr(p, ',') : NULL;
        if (i < 4 && !p) {
            fprintf(stderr, "lwapi-testd: --ingest %s: want JOB,INSTANCE,TYPE,UNIXSEC,FILE\n", spec);
            return -EINVAL;
        }
        if (p)
            *p++ = '\0';
    }
    lw_buf data;
    lw_buf_init(&data, (size_t)64 << 20);
    pprof_profile *prof = NULL;
    char err[256] = "";
    rc = read_file(f[4], &data);
    if (rc) {
        fprintf(stderr, "lwapi-testd: %s: %s\n", f[4], strerror(-rc));
        goto out;
    }
    rc = pprof_decode(data.data, data.len, NULL, &prof, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lwapi-testd: %s: %s\n", f[4], err);
        goto out;
    }
    store_label labels[2] = {{"job", f[0]}, {"instance", f[1]}};
    int64_t target, id;
    rc = store_target_upsert(s, labels, 2, &target);
    if (rc) {
        fprintf(stderr, "lwapi-testd: target upsert: %s\n", strerror(-rc));
        goto out;
    }
    int64_t t_ns = (int64_t)(strtod(f[3], NULL) * 1e9);
    rc = store_ingest(s, target, f[2], t_ns, prof, &id, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lwapi-testd: ingest %s: %s\n", f[4], err);
        goto out;
    }
    printf("ingested %lld %s %lld\n", (long long)id, f[2], (long long)t_ns);
    fflush(stdout);
out:
    pprof_free(prof);
    lw_buf_cleanup(&data);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: lwapi-testd --db FILE [--listen ADDR] [--ingest JOB,INSTANCE,TYPE,UNIXSEC,FILE]...\n"
                    "       [--exit-after-ingest] [--ready-after S] [--reload-fail] [--leaks-json T]\n"
                    "       [--alerts-json T] [--metrics-file F] [--max-merge N] [--max-response-bytes N]\n"
                    "       [--max-connections N] [--web-config FILE]\n");
}

/* A bcrypt hash of password, as basic_auth_users wants it. */
static int hash_password(const char *password)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    if (!crypt_gensalt_rn("$2b$", 10, NULL, 0, salt, sizeof salt))
        return 1;
    const char *h = crypt_r(password, salt, &cd);
    if (!h || h[0] == '*')
        return 1;
    printf("%s\n", h);
    return 0;
}

int main(int argc, char **argv)
{
    lw_malloc_keep_freed(); /* as leakwatchd, which serves this API */
    if (argc == 3 && strcmp(argv[1], "--hash-password") == 0)
        return hash_password(argv[2]);
    const char *db = NULL, *listen = "127.0.0.1:9475";
    const char *ingests[MAX_INGESTS];
    int n_ingests = 0;
    bool exit_after_ingest = false;
    testd t = {.leaks = "[]", .alerts = "{\"alerts\":[]}", .ready_at = 0};
    api_options opt;
    memset(&opt, 0, sizeof opt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--db") == 0 && v)
            db = v;
        else if (strcmp(a, "--listen") == 0 && v)
            listen = v;
        else if (strcmp(a, "--ingest") == 0 && v) {
            if (n_ingests == MAX_INGESTS) {
                fprintf(stderr, "lwapi-testd: more than %d --ingest\n", MAX_INGESTS);
                return 2;
            }
            ingests[n_ingests++] = v;
        }
        else if (strcmp(a, "--ready-after") == 0 && v)
            t.ready_at = time(NULL) + atoi(v);
        else if (strcmp(a, "--leaks-json") == 0 && v)
            t.leaks = v;
        else if (strcmp(a, "--alerts-json") == 0 && v)
            t.alerts = v;
        else if (strcmp(a, "--metrics-file") == 0 && v)
            t.metrics_file = v;
        else if (strcmp(a, "--max-merge") == 0 && v)
            opt.max_merge_profiles = (size_t)atol(v);
        else if (strcmp(a, "--max-response-bytes") == 0 && v)
            opt.max_response_bytes = (size_t)atol(v);
        else if (strcmp(a, "--max-connections") == 0 && v)
            opt.max_connections = (unsigned)atoi(v);
        else if (strcmp(a, "--web-config") == 0 && v)
            opt.web_config_file = v;
        else {
            takes = false;
            if (strcmp(a, "--exit-after-ingest") == 0)
                exit_after_ingest = true;
            else if (strcmp(a, "--reload-fail") == 0)
                t.reload_fail = true;
            else {
                usage();
                return 2;
            }
        }
        if (takes)
            i++;
    }
    if (!db) {
        usage();
        return 2;
    }
    store *s = NULL;
    api_server *srv = NULL;
    char err[API_ERR_LEN];
    int rc = store_open(db, NULL, &s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lwapi-testd: %s\n", err);
        return 1;
    }
    for (int i = 0; i < n_ingests && !rc; i++)
        rc = ingest(s, ingests[i]);
    if (rc || exit_after_ingest)
        goto out;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    api_sources src = {
        .store = s,
        .ctx = &t,
        .metrics_text = cb_metrics,
        .leaks_json = cb_leaks,
        .alerts_json = cb_alerts,
        .reload = cb_reload,
        .ready = cb_ready,
    };
    rc = api_server_start(listen, &opt, &src, &srv, err, sizeof err);
    if (rc) {
        fprintf(stderr, "lwapi-testd: %s\n", err);
        goto out;
    }
    fprintf(stderr, "lwapi-testd: listening on port %d\n", api_server_port(srv));
    while (!g_stop)
        usleep(50 * 1000);
    api_server_stop(srv);
out:
    store_close(s);
    return rc ? 1 : 0;
}
