/* test_alerts.c — alert state machine, send decisions, payloads, persistence form, notifier.
 *
 * The notifier is tested against a tiny HTTP server on 127.0.0.1 run by a
 * thread of this test: it answers a scripted list of status codes and keeps
 * what it received, so retries and delivery are checked without a real
 * Alertmanager (tests/integration/test_alertmanager.py uses the real one).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "alerts.h"

#define S_NS 1000000000LL
#define MIN_NS (60 * S_NS)

static void show(const alert *a, const char *what)
{
    printf("  %-34s state=%-8s active_at=%lld fired_at=%lld resolved_at=%lld\n", what,
           alerts_state_name(a->state), (long long)(a->active_at_ns / S_NS),
           (long long)(a->fired_at_ns / S_NS), (long long)(a->resolved_at_ns / S_NS));
}

/* inactive -> pending -> firing after `for` -> resolved -> pending again;
 * pending that clears goes back to inactive without a resolution. */
static void state_machine(void **state)
{
    (void)state;
    alert a;
    memset(&a, 0, sizeof(a));
    const int64_t for_ns = 10 * MIN_NS, t0 = 1000 * S_NS;
    assert_false(alerts_step(&a, false, t0, for_ns));
    show(&a, "t0 inactive, condition false");
    assert_int_equal(a.state, ALERTS_INACTIVE);

    assert_true(alerts_step(&a, true, t0, for_ns));
    show(&a, "t0 condition true");
    assert_int_equal(a.state, ALERTS_PENDING);
    assert_int_equal(a.active_at_ns, t0);
    assert_false(alerts_needs_send(&a, t0, MIN_NS));

    assert_false(alerts_step(&a, true, t0 + 9 * MIN_NS, for_ns));
    show(&a, "t0+9m still true");
    assert_int_equal(a.state, ALERTS_PENDING);

    assert_true(alerts_step(&a, true, t0 + 10 * MIN_NS, for_ns));
    show(&a, "t0+10m true: for elapsed");
    assert_int_equal(a.state, ALERTS_FIRING);
    assert_int_equal(a.fired_at_ns, t0 + 10 * MIN_NS);
    assert_int_equal(a.active_at_ns, t0);
    assert_true(alerts_needs_send(&a, t0 + 10 * MIN_NS, MIN_NS));
    a.last_sent_ns = t0 + 10 * MIN_NS;
    assert_false(alerts_needs_send(&a, t0 + 10 * MIN_NS + 59 * S_NS, MIN_NS));
    assert_true(alerts_needs_send(&a, t0 + 11 * MIN_NS, MIN_NS));
    a.last_sent_ns = t0 + 11 * MIN_NS;

    assert_true(alerts_step(&a, false, t0 + 11 * MIN_NS + 30 * S_NS, for_ns));
    show(&a, "t0+11.5m false: resolved");
    assert_int_equal(a.state, ALERTS_INACTIVE);
    assert_int_equal(a.resolved_at_ns, t0 + 11 * MIN_NS + 30 * S_NS);
    /* Resolved after the last send: sent at once, then every resend delay. */
    assert_true(alerts_needs_send(&a, t0 + 11 * MIN_NS + 30 * S_NS, MIN_NS));
    a.last_sent_ns = t0 + 11 * MIN_NS + 30 * S_NS;
    assert_false(alerts_needs_send(&a, t0 + 12 * MIN_NS, MIN_NS));
    assert_true(alerts_needs_send(&a, t0 + 12 * MIN_NS + 30 * S_NS, MIN_NS));
    assert_false(alerts_expired(&a, t0 + 20 * MIN_NS, 15 * MIN_NS));
    assert_true(alerts_expired(&a, t0 + 26 * MIN_NS + 30 * S_NS, 15 * MIN_NS));

    assert_true(alerts_step(&a, true, t0 + 13 * MIN_NS, for_ns));
    show(&a, "t0+13m true again");
    assert_int_equal(a.state, ALERTS_PENDING);
    assert_int_equal(a.active_at_ns, t0 + 13 * MIN_NS);
    assert_int_equal(a.resolved_at_ns, 0);

    assert_true(alerts_step(&a, false, t0 + 14 * MIN_NS, for_ns));
    show(&a, "t0+14m false while pending");
    assert_int_equal(a.state, ALERTS_INACTIVE);
    assert_int_equal(a.resolved_at_ns, 0);
    assert_false(alerts_needs_send(&a, t0 + 14 * MIN_NS, MIN_NS));
    assert_true(alerts_expired(&a, t0 + 14 * MIN_NS, 15 * MIN_NS));

    /* for = 0 fires on the first active evaluation. */
    memset(&a, 0, sizeof(a));
    assert_true(alerts_step(&a, true, t0, 0));
    show(&a, "for=0");
    assert_int_equal(a.state, ALERTS_FIRING);
}

static void payload_and_api_json(void **state)
{
    (void)state;
    alert a;
    memset(&a, 0, sizeof(a));
    snprintf(a.alertname, sizeof(a.alertname), "GoroutineLeak");
    const alerts_kv labels[] = {{"job", "api"},           {"instance", "127.0.0.1:6061"},
                                {"alertname", "GoroutineLeak"}, {"severity", "warning"},
                                {"job", "api2"}};
    const alerts_kv ann[] = {{"summary", "Goroutine leak in api2/127.0.0.1:6061: +120 \"g\""}};
    assert_int_equal(alerts_set_labels(&a, labels, 5), 0);
    assert_int_equal(alerts_set_annotations(&a, ann, 1), 0);
    assert_string_equal(alerts_label(&a, "job"), "api2");
    a.generator_url = strdup("http://h:8080/api/v1/diff?x=1&y=2");
    assert_non_null(a.generator_url);
    const int64_t t0 = 1764106200LL * S_NS; /* 2025-11-25T21:30:00Z */
    (void)alerts_step(&a, true, t0, 0);
    a.value = 120;

    lw_buf b;
    lw_buf_init(&b, 1 << 16);
    alert *list[] = {&a};
    assert_int_equal(alerts_payload_json(list, 1, t0 + 30 * S_NS, MIN_NS, &b), 0);
    printf("firing payload: %s\n", b.data);
    const char *want_firing =
        "[{\"labels\":{\"alertname\":\"GoroutineLeak\",\"instance\":\"127.0.0.1:6061\","
        "\"job\":\"api2\",\"severity\":\"warning\"},\"annotations\":{\"summary\":\"Goroutine leak "
        "in api2/127.0.0.1:6061: +120 \\\"g\\\"\"},\"startsAt\":\"2025-11-25T21:30:00.000Z\","
        "\"endsAt\":\"2025-11-25T21:34:30.000Z\",\"generatorURL\":\"http://h:8080/api/v1/diff?x=1&y=2\"}]";
    assert_string_equal(b.data, want_firing);

    (void)alerts_step(&a, false, t0 + 5 * MIN_NS + 250 * 1000000LL, 0);
    lw_buf_reset(&b);
    assert_int_equal(alerts_payload_json(list, 1, t0 + 6 * MIN_NS, MIN_NS, &b), 0);
    printf("resolved payload: %s\n", b.data);
    assert_non_null(strstr(b.data, "\"endsAt\":\"2025-11-25T21:35:00.250Z\""));

    lw_buf_reset(&b);
    assert_int_equal(alerts_api_json(&a, &b), 0);
    printf("api: %s\n", b.data);
    assert_non_null(strstr(b.data, "\"state\":\"inactive\",\"activeAt\":\"2025-11-25T21:30:00.000Z\",\"value\":\"120\""));

    /* Persisted form round trip. */
    lw_buf_reset(&b);
    assert_int_equal(alerts_state_json(&a, &b), 0);
    printf("state: %s\n", b.data);
    alert r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(alerts_state_parse(b.data, &r), 0);
    assert_int_equal(r.state, a.state);
    assert_int_equal(r.active_at_ns, a.active_at_ns);
    assert_int_equal(r.fired_at_ns, a.fired_at_ns);
    assert_int_equal(r.resolved_at_ns, a.resolved_at_ns);
    assert_true(r.value == a.value);
    assert_int_equal(alerts_state_parse("{\"state\":\"bogus\"}", &r), -EINVAL);
    assert_int_equal(alerts_state_parse("{}", &r), -EINVAL);

    /* A cap that is too small is reported, not overrun. */
    lw_buf small;
    lw_buf_init(&small, 64);
    assert_int_equal(alerts_payload_json(list, 1, t0, MIN_NS, &small), -E2BIG);
    lw_buf_cleanup(&small);
    lw_buf_cleanup(&b);
    alerts_clear(&a);
}

/* ---- scripted HTTP server ------------------------------------------------ */

typedef struct fake_am {
    int fd;
    int port;
    int codes[8];    /* status to answer, in order; the last repeats */
    int n_codes;
    int n_requests;  /* handled so far */
    char path[128];  /* of the last request */
    char body[4096]; /* of the last request */
    char auth[256];  /* its Authorization header value, "" if none */
    pthread_t thread;
} fake_am;

static void *fake_am_main(void *arg)
{
    fake_am *f = arg;
    for (;;) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[8192];
        size_t len = 0;
        for (;;) {
            ssize_t r = read(c, req + len, sizeof(req) - 1 - len);
            if (r <= 0)
                break;
            len += (size_t)r;
            req[len] = '\0';
            char *hdr_end = strstr(req, "\r\n\r\n");
            const char *cl = strcasestr(req, "Content-Length:");
            if (hdr_end != NULL && cl != NULL && len >= (size_t)(hdr_end + 4 - req) + (size_t)atoi(cl + 15))
                break;
        }
        req[len] = '\0';
        int code = f->codes[f->n_requests < f->n_codes ? f->n_requests : f->n_codes - 1];
        sscanf(req, "POST %127s", f->path);
        f->auth[0] = '\0';
        const char *au = strcasestr(req, "\r\nAuthorization: ");
        if (au != NULL)
            sscanf(au + 17, "%255[^\r]", f->auth);
        char *body = strstr(req, "\r\n\r\n");
        snprintf(f->body, sizeof(f->body), "%s", body ? body + 4 : "");
        f->n_requests++;
        char resp[128];
        int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", code);
        if (write(c, resp, (size_t)n) < 0)
            perror("write");
        close(c);
    }
}

static void fake_am_start(fake_am *f)
{
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->fd, 8), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_am_main, f), 0);
}

static void fake_am_stop(fake_am *f)
{
    shutdown(f->fd, SHUT_RDWR);
    close(f->fd);
    pthread_join(f->thread, NULL);
}

/* A 503 then 200: delivered on the second attempt. */
static void notifier_retries(void **state)
{
    (void)state;
    fake_am f = {.codes = {503, 200}, .n_codes = 2};
    fake_am_start(&f);
    alerts_config c;
    alerts_config_default(&c);
    c.backoff_initial_ns = 50 * 1000000LL;
    c.n_alertmanagers = 1;
    snprintf(c.alertmanagers[0], sizeof(c.alertmanagers[0]), "http://127.0.0.1:%d/", f.port);
    alerts_notifier *n = NULL;
    assert_int_equal(alerts_notifier_new(&c, &n), 0);
    char *p = strdup("[{\"labels\":{\"alertname\":\"X\"}}]");
    assert_non_null(p);
    assert_int_equal(alerts_notifier_enqueue(n, p), 0);
    assert_int_equal(alerts_notifier_flush(n, 30 * S_NS), 0);
    alerts_notifier_stats st;
    alerts_notifier_get_stats(n, &st);
    printf("requests=%d path=%s body=%s sent=%llu failed=%llu\n", f.n_requests, f.path, f.body,
           (unsigned long long)st.sent, (unsigned long long)st.failed);
    assert_int_equal(f.n_requests, 2);
    assert_string_equal(f.path, "/api/v2/alerts");
    assert_string_equal(f.body, "[{\"labels\":{\"alertname\":\"X\"}}]");
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.failed, 0);
    assert_string_equal(f.auth, "");
    alerts_notifier_free(n);
    fake_am_stop(&f);
}

/* Basic auth from an inline password and from a password file (first line). */
static void notifier_basic_auth(void **state)
{
    (void)state;
    fake_am f = {.codes = {200}, .n_codes = 1};
    fake_am_start(&f);
    alerts_config c;
    alerts_config_default(&c);
    c.n_alertmanagers = 1;
    snprintf(c.alertmanagers[0], sizeof(c.alertmanagers[0]), "http://127.0.0.1:%d", f.port);
    snprintf(c.basic_auth[0].username, sizeof(c.basic_auth[0].username), "lw");
    snprintf(c.basic_auth[0].password, sizeof(c.basic_auth[0].password), "s3cret");
    alerts_notifier *n = NULL;
    assert_int_equal(alerts_notifier_new(&c, &n), 0);
    char *p = strdup("[]");
    assert_non_null(p);
    assert_int_equal(alerts_notifier_enqueue(n, p), 0);
    assert_int_equal(alerts_notifier_flush(n, 30 * S_NS), 0);
    alerts_notifier_free(n);
    printf("inline password: Authorization: %s\n", f.auth);
    /* base64("lw:s3cret") = bHc6czNjcmV0 */
    assert_string_equal(f.auth, "Basic bHc6czNjcmV0");

    char path[200];
    snprintf(path, sizeof(path), "%s/test-work", LW_BINARY_DIR);
    (void)mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/test-work/lw-am-pass-XXXXXX", LW_BINARY_DIR);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "fromfile\n", 9), 9);
    close(fd);
    snprintf(c.basic_auth[0].password_file, sizeof(c.basic_auth[0].password_file), "%s", path);
    assert_int_equal(alerts_notifier_new(&c, &n), 0);
    p = strdup("[]");
    assert_non_null(p);
    assert_int_equal(alerts_notifier_enqueue(n, p), 0);
    assert_int_equal(alerts_notifier_flush(n, 30 * S_NS), 0);
    alerts_notifier_free(n);
    unlink(path);
    printf("password file: Authorization: %s\n", f.auth);
    /* base64("lw:fromfile") = bHc6ZnJvbWZpbGU= */
    assert_string_equal(f.auth, "Basic bHc6ZnJvbWZpbGU=");
    fake_am_stop(&f);
}

/* Nobody listening: enqueue never blocks, the queue drops the oldest beyond
 * its capacity, and freeing interrupts the backoff. */
static void notifier_down_alertmanager(void **state)
{
    (void)state;
    fake_am f = {.codes = {200}, .n_codes = 1};
    fake_am_start(&f);
    int port = f.port;
    fake_am_stop(&f); /* the port is now closed */
    alerts_config c;
    alerts_config_default(&c);
    c.queue_capacity = 4;
    c.max_attempts = 100;
    c.backoff_initial_ns = 10 * S_NS;
    c.n_alertmanagers = 1;
    snprintf(c.alertmanagers[0], sizeof(c.alertmanagers[0]), "http://127.0.0.1:%d", port);
    alerts_notifier *n = NULL;
    assert_int_equal(alerts_notifier_new(&c, &n), 0);
    for (int i = 0; i < 20; i++) {
        char *p = strdup("[]");
        assert_non_null(p);
        assert_int_equal(alerts_notifier_enqueue(n, p), 0);
    }
    alerts_notifier_stats st;
    alerts_notifier_get_stats(n, &st);
    printf("after 20 enqueues: queued=%llu dropped=%llu\n", (unsigned long long)st.queued,
           (unsigned long long)st.dropped);
    assert_true(st.queued <= 4);
    assert_true(st.dropped >= 15);
    assert_int_equal(alerts_notifier_flush(n, 100 * 1000000LL), -ETIMEDOUT);
    alerts_notifier_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_machine),
        cmocka_unit_test(payload_and_api_json),
        cmocka_unit_test(notifier_retries),
        cmocka_unit_test(notifier_basic_auth),
        cmocka_unit_test(notifier_down_alertmanager),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
