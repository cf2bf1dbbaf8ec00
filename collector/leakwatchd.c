/* leakwatchd.c — the leakwatch daemon: flags, logging, signals, reload,
 * retention timer; wires the collector, the store, the leak detector and the
 * HTTP API together.
 *
 * Threads: the main thread runs the collector's event loop (the collector
 * decodes and stores on threads of its own) and applies reloads; a
 * retention thread enforces retention (retention_thread). A signal thread
 * waits for SIGHUP/SIGTERM/SIGINT with sigwait() (the signals are blocked
 * everywhere else), records them in atomics and wakes the loop. The HTTP API (api/) runs its own threads and
 * calls back into the collector and detector (both thread-safe) and into
 * daemon_reload(), which hands the request to the main thread and waits for
 * its result.
 *
 * Self-profiling: in plain builds leakwatchd links libleakwatch-agent
 * (LW_HAVE_AGENT). It is off by default: main() sets the heap sample rate
 * to 0 before anything else and starts no server; --agent.enable serves
 * leakwatchd's own /debug/pprof on --agent.listen-address with the agent's
 * default heap rate. An agent preloaded with LD_PRELOAD is left as its
 * LEAKWATCH_* variables configured it. Sanitizer builds cannot host the agent
 * (LW_AGENT_SANITIZED): --agent.enable is then an error.
 *
 * Exit codes: 0 after SIGTERM/SIGINT or --help/--version/valid
 * --config.check; 1 on any error (bad flags, bad config, storage locked by
 * another process, listen address in use, fatal loop error).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "coll.h"
#include "lw_util.h"
#include "config.h"
#include "lw_log.h"
#include "store.h"
#ifdef LW_HAVE_DETECT
#include "alerts.h"
#include "detect.h"
#endif
#ifdef LW_HAVE_API
#include "api.h"
#endif
#ifdef LW_HAVE_AGENT
#include <leakwatch/agent.h>
#endif

#define LOOP_STEP_MS 500

/* The daemon's state, shared with the signal thread and API callbacks. */
typedef struct daemon_state {
    lw_flags flags;
    lw_config *cfg; /* current configuration (main thread only) */
    store *store;
    coll *coll;
#ifdef LW_HAVE_DETECT
    detect_engine *detect;          /* NULL only if a restart failed twice */
    pthread_rwlock_t detect_lock;   /* write-held while the engine is replaced */
#endif
#ifdef LW_HAVE_API
    api_server *api;
#endif
    atomic_bool ready;
    atomic_int stop;   /* SIGTERM/SIGINT seen */
    atomic_int reload; /* SIGHUP seen */

    /* Reload requests from other threads (POST /-/reload). */
    pthread_mutex_t rl_mu;
    pthread_cond_t rl_cv;
    uint64_t rl_requested; /* tickets handed out */
    uint64_t rl_done;      /* tickets answered */
    bool rl_closed;        /* shutting down: answer at once */
    int rl_rc;
    char rl_err[LW_CONFIG_ERR_LEN];

    /* Wake-up of the loop from other threads; coll may go away. */
    pthread_mutex_t wake_mu;

    /* The retention thread's stop request (ret_cv uses CLOCK_MONOTONIC). */
    pthread_mutex_t ret_mu;
    pthread_cond_t ret_cv;
    bool ret_stop;
} daemon_state;

static void wake(daemon_state *d)
{
    pthread_mutex_lock(&d->wake_mu);
    coll_wakeup(d->coll);
    pthread_mutex_unlock(&d->wake_mu);
}

/* ---- signals ------------------------------------------------------------ */

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

static void *signal_thread(void *arg)
{
    daemon_state *d = arg;
    sigset_t set;
    signal_set(&set);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            atomic_store(&d->reload, 1);
        } else {
            atomic_store(&d->stop, sig);
            wake(d);
            return NULL;
        }
        wake(d);
    }
}

/* ---- reload ------------------------------------------------------------------ */

#ifdef LW_HAVE_DETECT
static void detect_reload(daemon_state *d, const lw_config *old_cfg);
#endif

/* Load the configuration again and apply it. Main thread only. */
static int do_reload(daemon_state *d, const char *why, char *err, size_t err_len)
{
    lw_config *cfg = NULL;
    int rc = lw_config_load(&d->flags, &cfg, err, err_len);
    if (rc) {
        lw_log(LW_LOG_ERROR, "reload failed, keeping the old configuration", "trigger", why, "err",
               err, NULL);
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    rc = coll_apply_config(d->coll, cfg, err, err_len);
    if (rc) {
        lw_log(LW_LOG_ERROR, "reload failed, keeping the old configuration", "trigger", why, "err",
               err, NULL);
        lw_config_free(cfg);
        return rc;
    }
    lw_config *old = d->cfg;
    d->cfg = cfg;
#ifdef LW_HAVE_DETECT
    detect_reload(d, old);
#endif
    lw_config_free(old);
    char n[32];
    snprintf(n, sizeof(n), "%zu", coll_n_targets(d->coll));
    lw_log(LW_LOG_INFO, "configuration reloaded", "trigger", why, "file",
           d->flags.config_file ? d->flags.config_file : "", "targets", n, NULL);
    return 0;
}

/* Thread-safe reload for the API (POST /-/reload): 0, -EINVAL with the
 * config error, or -ECANCELED while shutting down. Unused when api/ is not
 * built. */
__attribute__((unused)) static int daemon_reload(void *ctx, char *err, size_t err_len)
{
    daemon_state *d = ctx;
    pthread_mutex_lock(&d->rl_mu);
    if (d->rl_closed) {
        pthread_mutex_unlock(&d->rl_mu);
        snprintf(err, err_len, "shutting down");
        return -ECANCELED;
    }
    uint64_t ticket = ++d->rl_requested;
    pthread_mutex_unlock(&d->rl_mu);
    wake(d);
    pthread_mutex_lock(&d->rl_mu);
    while (d->rl_done < ticket && !d->rl_closed)
        pthread_cond_wait(&d->rl_cv, &d->rl_mu);
    int rc = d->rl_done >= ticket ? d->rl_rc : -ECANCELED;
    snprintf(err, err_len, "%s", rc == -ECANCELED ? "shutting down" : d->rl_err);
    pthread_mutex_unlock(&d->rl_mu);
    return rc;
}

/* Answer pending API reload requests (main thread). */
static void serve_reload_requests(daemon_state *d)
{
    pthread_mutex_lock(&d->rl_mu);
    uint64_t want = d->rl_requested;
    bool pending = want > d->rl_done;
    pthread_mutex_unlock(&d->rl_mu);
    if (!pending)
        return;
    char err[LW_CONFIG_ERR_LEN] = "";
    int rc = do_reload(d, "api", err, sizeof(err));
    pthread_mutex_lock(&d->rl_mu);
    d->rl_rc = rc;
    snprintf(d->rl_err, sizeof(d->rl_err), "%s", err);
    d->rl_done = want;
    pthread_cond_broadcast(&d->rl_cv);
    pthread_mutex_unlock(&d->rl_mu);
}

static void close_reload_requests(daemon_state *d)
{
    pthread_mutex_lock(&d->rl_mu);
    d->rl_closed = true;
    pthread_cond_broadcast(&d->rl_cv);
    pthread_mutex_unlock(&d->rl_mu);
}

/* ---- retention ------------------------------------------------------------ */

static void run_retention(daemon_state *d)
{
    if (d->flags.retention_time_ns == 0 && d->flags.retention_size_bytes == 0)
        return;
    int64_t n = 0, t0 = lw_mono_ns();
    int rc = store_retention_apply(d->store, d->flags.retention_time_ns,
                                   d->flags.retention_size_bytes, lw_wall_ns(), &n);
    if (rc) {
        lw_log(LW_LOG_ERROR, "retention failed", "err", strerror(-rc), NULL);
        return;
    }
    if (n > 0) {
        char buf[32], took[32];
        snprintf(buf, sizeof(buf), "%lld", (long long)n);
        snprintf(took, sizeof(took), "%.3fs", (double)(lw_mono_ns() - t0) / 1e9);
        lw_log(LW_LOG_INFO, "retention deleted old profiles", "profiles", buf, "duration", took,
               NULL);
    }
}

/* Retention runs on a thread of its own, once at start and then every
 * --storage.retention.interval: a full collection reads the whole database
 * (seconds on a big one). On the loop thread it stopped every scrape
 * meanwhile (at 1000 targets every 2 s: thousands of scrapes timed out per
 * collection); now scrapes go on and only their ingest waits for the
 * store's writer lock. After each run the memory kept after big profiles
 * goes back to the kernel (lw_util.h). */
static void *retention_thread(void *arg)
{
    daemon_state *d = arg;
    pthread_mutex_lock(&d->ret_mu);
    while (!d->ret_stop) {
        pthread_mutex_unlock(&d->ret_mu);
        run_retention(d);
        lw_malloc_release_freed();
        pthread_mutex_lock(&d->ret_mu);
        struct timespec until;
        int64_t due = lw_mono_ns() + d->flags.retention_interval_ns;
        until.tv_sec = (time_t)(due / LW_NS_PER_SECOND);
        until.tv_nsec = (long)(due % LW_NS_PER_SECOND);
        while (!d->ret_stop && pthread_cond_timedwait(&d->ret_cv, &d->ret_mu, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&d->ret_mu);
    return NULL;
}

static void stop_retention(daemon_state *d, pthread_t thread)
{
    pthread_mutex_lock(&d->ret_mu);
    d->ret_stop = true;
    pthread_cond_signal(&d->ret_cv);
    pthread_mutex_unlock(&d->ret_mu);
    pthread_join(thread, NULL);
}

/* ---- detector and API wiring -------------------------------------------------- */

#ifdef LW_HAVE_DETECT
static void on_ingest(void *ctx, int64_t target_id, const store_label *labels, size_t n_labels,
                      const char *profile_type, int64_t profile_id, int64_t time_ns)
{
    daemon_state *d = ctx;
    (void)profile_id;
    if (strcmp(profile_type, "goroutine") != 0 && strcmp(profile_type, "heap") != 0)
        return;
    pthread_rwlock_rdlock(&d->detect_lock);
    int rc = d->detect ? detect_evaluate_profile(d->detect, target_id,
                                                 (const struct store_label *)labels, n_labels,
                                                 profile_type, time_ns)
                       : 0;
    pthread_rwlock_unlock(&d->detect_lock);
    if (rc)
        lw_log(LW_LOG_WARN, "leak evaluation failed", "err", strerror(-rc), NULL);
}

static void on_target_removed(void *ctx, int64_t target_id)
{
    daemon_state *d = ctx;
    pthread_rwlock_rdlock(&d->detect_lock);
    int rc = d->detect ? detect_forget_target(d->detect, target_id, lw_wall_ns()) : 0;
    pthread_rwlock_unlock(&d->detect_lock);
    if (rc)
        lw_log(LW_LOG_WARN, "cannot forget target in the leak detector", NULL);
}

/* The detector's and notifier's settings from cfg (zeroed first, so two
 * results can be compared with memcmp). */
static void detect_settings(const daemon_state *d, const lw_config *cfg, detect_config *dc,
                            alerts_config *ac)
{
    memset(dc, 0, sizeof(*dc));
    memset(ac, 0, sizeof(*ac));
    detect_config_default(dc);
    dc->window_ns = cfg->leak.window_ns;
    dc->min_samples = (size_t)cfg->leak.min_samples;
    dc->evaluation_interval_ns = cfg->evaluation_interval_ns;
    for (int i = 0; i < LW_N_SIGNALS && i < DETECT_N_SIGNALS; i++) {
        dc->signals[i].enabled = cfg->leak.signals[i].enabled;
        dc->signals[i].min_growth = cfg->leak.signals[i].min_growth;
        dc->signals[i].min_relative_growth = cfg->leak.signals[i].min_relative_growth;
        snprintf(dc->signals[i].severity, sizeof(dc->signals[i].severity), "%s",
                 cfg->leak.signals[i].severity);
    }
    alerts_config_default(ac);
    ac->for_ns = cfg->leak.for_ns;
    snprintf(ac->severity, sizeof(ac->severity), "%s", cfg->leak.signals[0].severity);
    const char *ext = d->flags.web_external_url;
    if (ext && *ext) {
        size_t n = strlen(ext);
        while (n > 0 && ext[n - 1] == '/')
            n--;
        snprintf(ac->external_url, sizeof(ac->external_url), "%.*s", (int)n, ext);
    } else {
        snprintf(ac->external_url, sizeof(ac->external_url), "http://%s",
                 d->flags.web_listen_address);
    }
    ac->resend_delay_ns = cfg->alerting.resend_delay_ns;
    for (size_t i = 0; i < cfg->alerting.n_alertmanagers; i++) {
        const lw_alertmanager_config *am = &cfg->alerting.alertmanagers[i];
        if (am->timeout_ns)
            ac->timeout_ns = am->timeout_ns;
        for (size_t j = 0; j < am->n_targets && ac->n_alertmanagers < ALERTS_MAX_AM; j++) {
            size_t k = ac->n_alertmanagers++;
            snprintf(ac->alertmanagers[k], sizeof(ac->alertmanagers[0]), "%s://%s%s", am->scheme,
                     am->targets[j], am->path_prefix);
            if (am->basic_auth.set) {
                snprintf(ac->basic_auth[k].username, sizeof(ac->basic_auth[k].username), "%s",
                         am->basic_auth.username ? am->basic_auth.username : "");
                snprintf(ac->basic_auth[k].password, sizeof(ac->basic_auth[k].password), "%s",
                         am->basic_auth.password ? am->basic_auth.password : "");
                snprintf(ac->basic_auth[k].password_file, sizeof(ac->basic_auth[k].password_file),
                         "%s", am->basic_auth.password_file ? am->basic_auth.password_file : "");
            }
        }
    }
}

static int detect_setup(daemon_state *d, char *err, size_t err_len)
{
    detect_config dc;
    alerts_config ac;
    detect_settings(d, d->cfg, &dc, &ac);
    int rc = detect_engine_new(d->store, &dc, &ac, &d->detect);
    if (rc == -EIO)
        snprintf(err, err_len,
                 "cannot read the database %s: it is damaged (the leak detector's first read "
                 "failed); the file was left untouched: move it away or restore a backup",
                 d->flags.storage_path);
    else if (rc)
        snprintf(err, err_len, "cannot start the leak detector: %s", strerror(-rc));
    return rc;
}

/* After a reload: restart the detector if its settings changed. Alert
 * states and pending-since times live in the store, so the new engine picks
 * them up; hooks and API calls wait on the lock meanwhile. */
static void detect_reload(daemon_state *d, const lw_config *old_cfg)
{
    detect_config dc_old, dc_new;
    alerts_config ac_old, ac_new;
    detect_settings(d, old_cfg, &dc_old, &ac_old);
    detect_settings(d, d->cfg, &dc_new, &ac_new);
    if (memcmp(&dc_old, &dc_new, sizeof(dc_old)) == 0 && memcmp(&ac_old, &ac_new, sizeof(ac_old)) == 0)
        return;
    pthread_rwlock_wrlock(&d->detect_lock);
    detect_engine_free(d->detect);
    d->detect = NULL;
    int rc = detect_engine_new(d->store, &dc_new, &ac_new, &d->detect);
    if (rc) {
        lw_log(LW_LOG_ERROR, "cannot restart the leak detector with the new settings, keeping the old ones",
               "err", strerror(-rc), NULL);
        if (detect_engine_new(d->store, &dc_old, &ac_old, &d->detect) != 0)
            d->detect = NULL;
    } else {
        lw_log(LW_LOG_INFO, "leak detector restarted with new settings", NULL);
    }
    pthread_rwlock_unlock(&d->detect_lock);
}
#endif

#ifdef LW_HAVE_API
static int api_targets_json(void *ctx, lw_buf *out)
{
    daemon_state *d = ctx;
    return coll_targets_json(d->coll, out);
}

static int api_metrics_text(void *ctx, lw_buf *out)
{
    daemon_state *d = ctx;
    int rc = coll_metrics_text(d->coll, out);
#ifdef LW_HAVE_DETECT
    pthread_rwlock_rdlock(&d->detect_lock);
    if (!rc && d->detect)
        rc = detect_metrics_text(d->detect, out);
    pthread_rwlock_unlock(&d->detect_lock);
#endif
    return rc;
}

#ifdef LW_HAVE_DETECT
static int api_leaks_json(void *ctx, lw_buf *out)
{
    daemon_state *d = ctx;
    pthread_rwlock_rdlock(&d->detect_lock);
    int rc = d->detect ? detect_leaks_json(d->detect, out) : lw_buf_puts(out, "[]");
    pthread_rwlock_unlock(&d->detect_lock);
    return rc;
}

static int api_alerts_json(void *ctx, lw_buf *out)
{
    daemon_state *d = ctx;
    int rc = lw_buf_puts(out, "{\"alerts\":");
    pthread_rwlock_rdlock(&d->detect_lock);
    if (!rc)
        rc = d->detect ? detect_alerts_json(d->detect, out) : lw_buf_puts(out, "[]");
    pthread_rwlock_unlock(&d->detect_lock);
    if (!rc)
        rc = lw_buf_puts(out, "}");
    return rc;
}
#endif

static bool api_ready(void *ctx)
{
    daemon_state *d = ctx;
    return atomic_load(&d->ready);
}

static int api_setup(daemon_state *d, char *err, size_t err_len)
{
    api_sources src;
    memset(&src, 0, sizeof(src));
    src.store = d->store;
    src.ctx = d;
    src.targets_json = api_targets_json;
    src.metrics_text = api_metrics_text;
#ifdef LW_HAVE_DETECT
    src.leaks_json = api_leaks_json;
    src.alerts_json = api_alerts_json;
#endif
    src.reload = daemon_reload;
    src.ready = api_ready;
    api_options opt;
    memset(&opt, 0, sizeof(opt));
    opt.web_config_file = d->flags.web_config_file;
    return api_server_start(d->flags.web_listen_address, &opt, &src, &d->api, err, err_len);
}
#endif

/* ---- self-profiling ----------------------------------------------------- */

#ifdef LW_HAVE_AGENT
/* Whether the agent came in through LD_PRELOAD (then it is configured by
 * its LEAKWATCH_* variables and the --agent.* flags do not apply). */
static bool agent_preloaded(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "libleakwatch-agent") != NULL;
}
#endif

/* Start leakwatchd's own agent when --agent.enable is set. 0, or -1 with
 * err set (the agent is not built in, or its server cannot start). */
static int agent_setup(const daemon_state *d, char *err, size_t err_len)
{
    if (!d->flags.agent_enable)
        return 0;
#ifdef LW_HAVE_AGENT
    if (agent_preloaded()) {
        lw_log(LW_LOG_INFO, "agent preloaded (LD_PRELOAD): configured by its LEAKWATCH_* variables",
               NULL);
        return 0;
    }
    lw_agent_options o;
    lw_agent_options_init(&o);
    o.listen_addr = d->flags.agent_listen_address;
    char aerr[256] = "";
    int rc = lw_agent_start(&o, aerr, sizeof(aerr));
    if (rc) {
        snprintf(err, err_len, "--agent.enable: %s", aerr[0] ? aerr : strerror(-rc));
        return -1;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", lw_agent_port());
    lw_log(LW_LOG_INFO, "agent serving leakwatchd's own /debug/pprof", "listen",
           d->flags.agent_listen_address, "port", port, NULL);
    return 0;
#elif defined(LW_AGENT_SANITIZED)
    snprintf(err, err_len, "this leakwatchd was built with sanitizers; the agent is not available");
    return -1;
#else
    snprintf(err, err_len, "this leakwatchd was built without the agent (libleakwatch-agent)");
    return -1;
#endif
}

/* ---- main ------------------------------------------------------------------ */

static int print_usage(void)
{
    lw_buf b;
    lw_buf_init(&b, 1 << 16);
    int rc = lw_flags_usage(&b);
    if (!rc)
        fputs(b.data, stdout);
    lw_buf_cleanup(&b);
    return rc ? 1 : 0;
}

static int config_check(daemon_state *d)
{
    char err[LW_CONFIG_ERR_LEN] = "";
    lw_config *cfg = NULL;
    int rc = lw_config_load(&d->flags, &cfg, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "leakwatchd: config check failed: %s\n", err);
        return 1;
    }
    size_t n_static = 0, n_sd = 0;
    for (size_t i = 0; i < cfg->n_scrape_configs; i++) {
        for (size_t j = 0; j < cfg->scrape_configs[i].n_static_configs; j++)
            n_static += cfg->scrape_configs[i].static_configs[j].n_targets;
        n_sd += cfg->scrape_configs[i].n_file_sd_configs;
    }
    printf("%s: config OK: %zu scrape configs, %zu static targets, %zu file_sd configs\n",
           cfg->source, cfg->n_scrape_configs, n_static, n_sd);
    lw_config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    static daemon_state st;
    daemon_state *d = &st;
    int exit_code = 1;
    bool sig_thread_started = false, ret_thread_started = false;
    pthread_t sig_thread, ret_thread;
    char err[LW_CONFIG_ERR_LEN] = "";
    lw_malloc_keep_freed();
    pthread_mutex_init(&d->rl_mu, NULL);
    pthread_cond_init(&d->rl_cv, NULL);
    pthread_mutex_init(&d->wake_mu, NULL);
    pthread_mutex_init(&d->ret_mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&d->ret_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
#ifdef LW_HAVE_DETECT
    pthread_rwlock_init(&d->detect_lock, NULL);
#endif
#ifdef LW_HAVE_AGENT
    /* Off unless enabled: no heap sampling from here on. */
    if (!agent_preloaded())
        lw_agent_set_heap_rate(0);
#endif

    if (lw_flags_parse(argc, argv, &d->flags, err, sizeof(err)) != 0) {
        fprintf(stderr, "leakwatchd: %s\n", err);
        goto out;
    }
    if (d->flags.help) {
        exit_code = print_usage();
        goto out;
    }
    if (d->flags.version) {
        printf("leakwatchd version %s\n", LW_VERSION);
        exit_code = 0;
        goto out;
    }
    if (d->flags.config_check) {
        exit_code = config_check(d);
        goto out;
    }
    lw_log_level level = LW_LOG_INFO;
    lw_log_format format = LW_LOG_LOGFMT;
    if (lw_log_level_parse(d->flags.log_level, &level) != 0 ||
        lw_log_format_parse(d->flags.log_format, &format) != 0)
        goto out;
    lw_log_setup(level, format);
    if (agent_setup(d, err, sizeof(err)) != 0) {
        lw_log(LW_LOG_ERROR, "cannot start the agent", "err", err, NULL);
        goto out;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lw_log(LW_LOG_ERROR, "libcurl initialisation failed", NULL);
        goto out;
    }
    int rc = lw_config_load(&d->flags, &d->cfg, err, sizeof(err));
    if (rc) {
        lw_log(LW_LOG_ERROR, "invalid configuration", "err", err, NULL);
        goto out_curl;
    }
    lw_log(LW_LOG_INFO, "starting leakwatchd", "version", LW_VERSION, "config",
           d->cfg->source, "storage", d->flags.storage_path, "listen", d->flags.web_listen_address,
           NULL);

    /* Block the signals before any thread starts; the signal thread takes them. */
    sigset_t set;
    signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char serr[STORE_ERR_LEN] = "";
    store_options sopt = {.max_page_count = d->flags.storage_max_page_count};
    rc = store_open(d->flags.storage_path, &sopt, &d->store, serr, sizeof(serr));
    if (rc) {
        lw_log(LW_LOG_ERROR,
               rc == -EBUSY ? "cannot open storage: the database is in use by another leakwatchd"
                            : "cannot open storage",
               "path", d->flags.storage_path, "err", serr[0] ? serr : strerror(-rc), NULL);
        goto out_cfg;
    }

    coll_hooks hooks;
    memset(&hooks, 0, sizeof(hooks));
    hooks.ctx = d;
#ifdef LW_HAVE_DETECT
    if (detect_setup(d, err, sizeof(err)) != 0) {
        lw_log(LW_LOG_ERROR, "startup failed", "err", err, NULL);
        goto out_store;
    }
    hooks.on_ingest = on_ingest;
    hooks.on_target_removed = on_target_removed;
#endif
    coll *c = NULL;
    rc = coll_new(d->cfg, d->store, &hooks, NULL, &c, err, sizeof(err));
    if (rc) {
        lw_log(LW_LOG_ERROR, "cannot start the collector", "err", err, NULL);
        goto out_detect;
    }
    pthread_mutex_lock(&d->wake_mu);
    d->coll = c;
    pthread_mutex_unlock(&d->wake_mu);

    if (pthread_create(&sig_thread, NULL, signal_thread, d) != 0) {
        lw_log(LW_LOG_ERROR, "cannot start the signal thread", NULL);
        goto out_coll;
    }
    sig_thread_started = true;
#ifdef LW_HAVE_API
    if (api_setup(d, err, sizeof(err)) != 0) {
        lw_log(LW_LOG_ERROR, "cannot start the HTTP server", "err", err, NULL);
        goto out_coll;
    }
#endif
    atomic_store(&d->ready, true);
    {
        char n[32];
        snprintf(n, sizeof(n), "%zu", coll_n_targets(c));
        lw_log(LW_LOG_INFO, "leakwatchd ready", "targets", n, NULL);
    }

    if (pthread_create(&ret_thread, NULL, retention_thread, d) != 0) {
        lw_log(LW_LOG_ERROR, "cannot start the retention thread", NULL);
        goto out_coll;
    }
    ret_thread_started = true;
    exit_code = 0;
    while (!atomic_load(&d->stop)) {
        if (coll_run_once(c, LOOP_STEP_MS) != 0) {
            lw_log(LW_LOG_ERROR, "collector failed, exiting", NULL);
            exit_code = 1;
            break;
        }
        if (atomic_exchange(&d->reload, 0)) {
            char rerr[LW_CONFIG_ERR_LEN];
            (void)do_reload(d, "SIGHUP", rerr, sizeof(rerr));
        }
        serve_reload_requests(d);
    }
    int sig = atomic_load(&d->stop);
    lw_log(LW_LOG_INFO, "shutting down", "signal",
           sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "none", NULL);

out_coll:
    atomic_store(&d->ready, false);
    if (ret_thread_started)
        stop_retention(d, ret_thread);
    close_reload_requests(d);
#ifdef LW_HAVE_API
    api_server_stop(d->api);
    d->api = NULL;
#endif
    pthread_mutex_lock(&d->wake_mu);
    d->coll = NULL;
    pthread_mutex_unlock(&d->wake_mu);
    coll_free(c);
out_detect:
#ifdef LW_HAVE_DETECT
    detect_engine_free(d->detect);
    d->detect = NULL;
out_store:
#endif
    store_close(d->store);
    d->store = NULL;
    if (exit_code == 0)
        lw_log(LW_LOG_INFO, "stopped cleanly", NULL);
out_cfg:
    lw_config_free(d->cfg);
    d->cfg = NULL;
out_curl:
    curl_global_cleanup();
out:
    if (sig_thread_started) {
        if (!atomic_load(&d->stop))
            pthread_kill(sig_thread, SIGTERM);
        pthread_join(sig_thread, NULL);
    }
#ifdef LW_HAVE_AGENT
    if (d->flags.agent_enable && !agent_preloaded())
        lw_agent_stop();
#endif
    lw_flags_cleanup(&d->flags);
    pthread_mutex_destroy(&d->wake_mu);
    pthread_cond_destroy(&d->ret_cv);
    pthread_mutex_destroy(&d->ret_mu);
#ifdef LW_HAVE_DETECT
    pthread_rwlock_destroy(&d->detect_lock);
#endif
    pthread_cond_destroy(&d->rl_cv);
    pthread_mutex_destroy(&d->rl_mu);
    return exit_code;
}
