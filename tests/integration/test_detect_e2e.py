#!/usr/bin/env python3
"""test_detect_e2e.py — leak detection end to end: real Go services, leakwatchd, Alertmanager.

One leakwatchd (short windows: --detection.window=40s --detection.for=30s,
scrapes every 1 s) watches three instances of tests/peers/gosvc:
- goroutine leak: -leak-every 50ms -leak goroutine (the seed's handler leak:
  a goroutine blocked on a channel nobody sends to);
- substring leak: -leak-every 500ms -leak substring (50-byte substrings
  pinning 1 MiB strings);
- churn only: allocates and frees, goroutines come and go.
and sends to a real prometheus-alertmanager on loopback. Checks:
- GoroutineLeak goes pending; restarting leakwatchd keeps its activeAt;
- GoroutineLeak fires and reaches Alertmanager with our labels and
  annotations, naming main.blockedForever (file:line) in the description;
- HeapLeak fires naming the allocating function (main.makeBigString or its
  caller main.leakSubstring);
- the churning service gets no alert and no suspected signal;
- after the leaking service is replaced by a healthy one on the same port,
  Alertmanager receives the resolution.
A second test does the same for the C agent's leaky-demo (thread leak and
substring leak; skipped when build/bin/leaky-demo is not built).
Times are printed, not asserted beyond generous deadlines.
"""
import json
import os
import signal
import time

import lwtest
from lwtest import check, check_eq

LEAKWATCHD = os.path.join(lwtest.BIN, "leakwatchd")
WINDOW_S, FOR_S = 40, 30


def read_log(p):
    with open(p.log_path, "r", errors="replace") as f:
        return f.read()


def start_leakwatchd(work, args):
    log = os.path.join(work, "leakwatchd-%d.log" % len(os.listdir(work)))
    p = lwtest.start([LEAKWATCHD, *args], log=log)
    lwtest.wait_until(lambda: "leakwatchd ready" in read_log(p) or p.poll() is not None, 60,
                      "leakwatchd to start")
    check(p.poll() is None, "leakwatchd running:\n" + lwtest.log_tail(p))
    return p


def start_alertmanager(work):
    cfg = os.path.join(work, "am.yml")
    with open(cfg, "w") as f:
        f.write('route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n  - name: "null"\n')
    port = lwtest.free_port()
    p = lwtest.start(["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={work}/am",
                      f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                     log=os.path.join(work, "am.log"))
    url = f"http://127.0.0.1:{port}"
    lwtest.wait_http(url + "/api/v2/status", proc=p)
    return p, url


def am_active(am_url, alertname, instance):
    status, alerts = lwtest.http_json(am_url + "/api/v2/alerts?active=true")
    if status != 200:
        return []
    return [a for a in alerts if a["labels"].get("alertname") == alertname
            and a["labels"].get("instance") == instance and a["status"]["state"] == "active"]


def api_data(base, path):
    try:
        status, body = lwtest.http_json(base + path, timeout=10)
    except Exception:
        return None
    if status != 200 or body is None:
        return None
    return body.get("data", body) if isinstance(body, dict) else body


def api_alerts(base, alertname=None, instance=None):
    d = api_data(base, "/api/v1/alerts")
    if d is None:
        return []
    alerts = d.get("alerts", []) if isinstance(d, dict) else d
    return [a for a in alerts if (alertname is None or a["labels"].get("alertname") == alertname)
            and (instance is None or a["labels"].get("instance") == instance)]


def api_leaks(base, instance):
    d = api_data(base, "/api/v1/leaks") or []
    return [v for v in d if v.get("instance") == instance]


def test_leaks_end_to_end():
    work = lwtest.tempdir("detect-e2e-")
    am, am_url = start_alertmanager(work)
    gsvc, gbase = lwtest.start_gosvc(["-leak-every", "50ms", "-leak", "goroutine"], log_dir=work)
    hsvc, hbase = lwtest.start_gosvc(["-leak-every", "500ms", "-leak", "substring"], log_dir=work)
    csvc, cbase = lwtest.start_gosvc([], log_dir=work)
    ginst, hinst, cinst = (b.split("//")[1] for b in (gbase, hbase, cbase))
    t_start = time.time()
    api_port = lwtest.free_port()
    base = f"http://127.0.0.1:{api_port}"
    # Per-signal severities: HeapLeak takes heap_inuse_bytes' (critical),
    # GoroutineLeak goroutines' (default warning).
    severity_cfg = os.path.join(work, "severity.yml")
    with open(severity_cfg, "w") as f:
        f.write("leak_detection:\n  signals:\n    heap_inuse_bytes: {severity: critical}\n")
    args = ["--log.level=info", f"--web.listen-address=127.0.0.1:{api_port}",
            f"--storage.path={work}/leakwatch.db", "--scrape.interval=1s", "--scrape.timeout=900ms",
            f"--detection.window={WINDOW_S}s", f"--detection.for={FOR_S}s", "--detection.min-samples=10",
            "--detection.evaluation-interval=1s",
            f"--alertmanager.url={am_url}", f"--web.external-url=http://localhost:{api_port}/",
            f"--config.file={severity_cfg}",
            "--target", gbase, "--target", hbase, "--target", cbase]
    lw = start_leakwatchd(work, args)

    # Churn traffic on the third service for the whole test.
    def churn():
        lwtest.http(cbase + "/churn", timeout=5)

    # 1. Pending, then a restart of leakwatchd keeps activeAt.
    def pending():
        churn()
        a = api_alerts(base, "GoroutineLeak", ginst)
        return a[0] if a and a[0]["state"] == "pending" else None
    a = lwtest.wait_until(pending, 90, "GoroutineLeak pending in /api/v1/alerts", interval=0.5)
    active_at = a["activeAt"]
    print(f"GoroutineLeak pending after {time.time() - t_start:.1f}s, activeAt {active_at}")
    check_eq(lwtest.stop(lw, signal.SIGTERM, timeout=30), 0, "leakwatchd exit code after SIGTERM")
    lw = start_leakwatchd(work, args)
    a = lwtest.wait_until(lambda: api_alerts(base, "GoroutineLeak", ginst), 30,
                          "GoroutineLeak listed again after restart", interval=0.5)
    print(f"after restart: state {a[0]['state']}, activeAt {a[0]['activeAt']}")
    check_eq(a[0]["activeAt"], active_at, "activeAt kept across a leakwatchd restart")

    # 2. Firing at Alertmanager, naming the leaking function.
    def fired():
        churn()
        return am_active(am_url, "GoroutineLeak", ginst)
    got = lwtest.wait_until(fired, WINDOW_S + FOR_S + 60, "GoroutineLeak at Alertmanager", interval=0.5)
    print(f"GoroutineLeak at Alertmanager after {time.time() - t_start:.1f}s "
          f"(window {WINDOW_S}s + for {FOR_S}s): {json.dumps(got[0])}")
    g = got[0]
    check_eq(g["labels"].get("job"), "leakwatch", "job label")
    check_eq(g["labels"].get("severity"), "warning", "severity label")
    check(g["annotations"]["summary"].startswith(f"Goroutine leak in leakwatch/{ginst}: +"), "summary")
    check("main.blockedForever (" in g["annotations"]["description"], "description names main.blockedForever")
    check("main.go:" in g["annotations"]["description"], "description has file:line")
    check("/api/v1/diff?" in g["annotations"].get("diff_url", "") and "type=goroutine" in g["annotations"]["diff_url"],
          "diff_url annotation")
    check(g["annotations"]["diff_url"].startswith(f"http://localhost:{api_port}/api/v1/diff?"),
          f"diff_url uses --web.external-url: {g['annotations']['diff_url']}")
    st, _, _ = lwtest.http(g["annotations"]["diff_url"])
    check_eq(st, 200, "the diff link answers")
    leaks = [v for v in api_leaks(base, ginst) if v["signal"] == "goroutines"]
    print("goroutines verdict:", json.dumps(leaks))
    check(leaks and leaks[0]["suspected"], "goroutines suspected in /api/v1/leaks")
    check_eq(leaks[0]["top_stacks"][0]["function"], "main.blockedForever", "top stack function")

    # 3. HeapLeak for the substring leak.
    def heap_fired():
        churn()
        return am_active(am_url, "HeapLeak", hinst)
    got = lwtest.wait_until(heap_fired, WINDOW_S + FOR_S + 60, "HeapLeak at Alertmanager", interval=0.5)
    print(f"HeapLeak at Alertmanager after {time.time() - t_start:.1f}s: {json.dumps(got[0])}")
    desc = got[0]["annotations"]["description"]
    check_eq(got[0]["labels"].get("severity"), "critical", "HeapLeak severity from leak_detection.signals")
    check("main.makeBigString (" in desc or "main.leakSubstring (" in desc,
          "HeapLeak description names the allocating function")

    # 4. The churning service: nothing suspected, no alert anywhere.
    cl = api_leaks(base, cinst)
    print("churn verdicts:", [(v["signal"], v["suspected"], v["reason"]) for v in cl])
    check(len(cl) > 0, "churn target evaluated")
    check(not any(v["suspected"] for v in cl), "no signal of the churning service suspected")
    check_eq(api_alerts(base, None, cinst), [], "no alert for the churning service in /api/v1/alerts")
    check_eq(am_active(am_url, "GoroutineLeak", cinst) + am_active(am_url, "HeapLeak", cinst), [],
             "no alert for the churning service at Alertmanager")

    # 5. The leak stops: a healthy service on the same port. Resolution reaches Alertmanager.
    t_fix = time.time()
    lwtest.stop(gsvc)
    port = ginst.split(":")[1]
    gsvc = lwtest.start([lwtest.go_peer("gosvc"), "-addr", f"127.0.0.1:{port}"],
                        log=os.path.join(work, "gosvc-restarted.log"))
    lwtest.wait_http(gbase + "/debug/pprof/", proc=gsvc)
    lwtest.wait_until(lambda: not am_active(am_url, "GoroutineLeak", ginst), 90,
                      "GoroutineLeak resolved at Alertmanager", interval=0.5)
    print(f"resolved at Alertmanager {time.time() - t_fix:.1f}s after the leaking service was stopped")
    a = api_alerts(base, "GoroutineLeak", ginst)
    print("API after resolution:", json.dumps(a))
    check(a and a[0]["state"] == "inactive", "resolved alert listed as inactive by /api/v1/alerts")
    check_eq(lwtest.stop(lw, signal.SIGTERM, timeout=30), 0, "leakwatchd exit code after SIGTERM")
    for p in (gsvc, hsvc, csvc, am):
        lwtest.stop(p)


def start_demo(work, leak, every):
    port, pport = lwtest.free_port(), lwtest.free_port()
    p = lwtest.start([os.path.join(lwtest.BIN, "leaky-demo"), f"--listen=127.0.0.1:{port}",
                      f"--pprof-addr=127.0.0.1:{pport}", f"--leak-every={every}", f"--leak={leak}"],
                     log=os.path.join(work, f"demo-{leak}.log"))
    base = f"http://127.0.0.1:{pport}"
    lwtest.wait_http(base + "/debug/pprof/goroutine", proc=p)
    return p, base


def test_c_leaky_demo():
    if not os.path.exists(os.path.join(lwtest.BIN, "leaky-demo")):
        print("SKIP: build/bin/leaky-demo not built")
        return
    work = lwtest.tempdir("detect-e2e-c-")
    am, am_url = start_alertmanager(work)
    tsvc, tbase = start_demo(work, "thread", "100ms")
    ssvc, sbase = start_demo(work, "substring", "300ms")
    tinst, sinst = (b.split("//")[1] for b in (tbase, sbase))
    t_start = time.time()
    api_port = lwtest.free_port()
    base = f"http://127.0.0.1:{api_port}"
    lw = start_leakwatchd(work, ["--log.level=info", f"--web.listen-address=127.0.0.1:{api_port}",
                                 f"--storage.path={work}/leakwatch.db", "--scrape.interval=1s",
                                 "--scrape.timeout=900ms", f"--detection.window={WINDOW_S}s",
                                 "--detection.for=10s", "--detection.min-samples=10",
                                 "--detection.evaluation-interval=1s",
                                 f"--alertmanager.url={am_url}", "--target", tbase, "--target", sbase])
    got = lwtest.wait_until(lambda: am_active(am_url, "GoroutineLeak", tinst), WINDOW_S + 10 + 60,
                            "thread leak alert at Alertmanager", interval=0.5)
    print(f"GoroutineLeak (threads) after {time.time() - t_start:.1f}s: {json.dumps(got[0]['annotations'])}")
    leaks = [v for v in api_leaks(base, tinst) if v["signal"] == "goroutines"]
    print("thread verdict top stacks:", json.dumps(leaks[0]["top_stacks"] if leaks else None))
    check("leak_thread" in got[0]["annotations"]["description"], "description names the leaking thread function")
    got = lwtest.wait_until(lambda: am_active(am_url, "HeapLeak", sinst), WINDOW_S + 10 + 60,
                            "substring leak alert at Alertmanager", interval=0.5)
    print(f"HeapLeak after {time.time() - t_start:.1f}s: {json.dumps(got[0]['annotations'])}")
    check("leak_substring_retain" in got[0]["annotations"]["description"],
          "description names leak_substring_retain")
    check_eq(lwtest.stop(lw, signal.SIGTERM, timeout=30), 0, "leakwatchd exit code after SIGTERM")
    for p in (tsvc, ssvc, am):
        lwtest.stop(p)


if __name__ == "__main__":
    lwtest.run_tests([test_leaks_end_to_end, test_c_leaky_demo])
