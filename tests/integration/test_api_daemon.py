#!/usr/bin/env python3
"""test_api_daemon.py — the HTTP API and the CLI of a real leakwatchd that
scrapes a real Go service (tests/peers/gosvc) every second: readiness,
targets, /metrics through promtool and through a real Prometheus (a PromQL
query for leakwatch_goroutines returns the daemon's value), diffs between
timestamps checked with go tool pprof, 50 concurrent clients for 10 s while
scraping continues (no errors, no missed scrapes), and the CLI with --json."""
import http.client
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse

import lwtest
from lwtest import check, check_eq

DAEMON = os.path.join(lwtest.BIN, "leakwatchd")
CLI = os.path.join(lwtest.BIN, "leakwatch")
S = {}


def q(**params):
    return "?" + urllib.parse.urlencode(params)


def metrics():
    status, _, body = lwtest.http(S["base"] + "/metrics")
    check_eq(status, 200, "/metrics status")
    return body.decode()


def metric_value(text, name, **labels):
    """Value of the first sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, v = line.rsplit(" ", 1)
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series))
        if all(got.get(k) == str(val) for k, val in labels.items()):
            return float(v)
    return None


def setup():
    d = lwtest.tempdir("apid-")
    S["dir"] = d
    # No churn: the goroutine count then changes only when the test leaks.
    svc, svc_base = lwtest.start_gosvc(["-churn-every", "0"], log_dir=d)
    S["svc"] = svc_base
    S["instance"] = svc_base[len("http://"):]
    port = lwtest.free_port()
    S["base"] = f"http://127.0.0.1:{port}"
    cfg = os.path.join(d, "leakwatch.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: gosvc\n    static_configs:\n"
                f"      - targets: ['{S['instance']}']\n")
    S["cfg"] = cfg
    S["proc"] = lwtest.start([DAEMON, f"--config.file={cfg}", f"--storage.path={os.path.join(d, 'db', 'lw.db')}",
                              f"--web.listen-address=127.0.0.1:{port}"], log=os.path.join(d, "leakwatchd.log"))
    lwtest.wait_http(S["base"] + "/-/healthy", proc=S["proc"])
    lwtest.wait_until(lambda: lwtest.http(S["base"] + "/-/ready")[0] == 200, 30, "leakwatchd ready")


def goroutines_now():
    return metric_value(metrics(), "leakwatch_goroutines", job="gosvc", instance=S["instance"])


def n_goroutine_profiles():
    check(S["proc"].poll() is None, f"leakwatchd is running:\n{lwtest.log_tail(S['proc'], 60)}")
    status, doc = lwtest.http_json(S["base"] + "/api/v1/profiles" + q(instance=S["instance"], type="goroutine"))
    return len(doc["data"]) if status == 200 else 0


def test_scraping_and_targets():
    lwtest.wait_until(lambda: n_goroutine_profiles() >= 2, 30, "two goroutine profiles stored")
    status, doc = lwtest.http_json(S["base"] + "/api/v1/targets")
    check_eq(status, 200, "targets status")
    t = [t for t in doc["data"]["activeTargets"] if t["labels"]["instance"] == S["instance"]]
    check(len(t) == 1 and t[0]["health"] == "up", f"target up: {t}")


def accounting_for(text):
    m = re.search(r"Showing nodes accounting for (-?\d+)", text)
    check(m is not None, f"go tool pprof printed 'Showing nodes accounting for': {text[:200]}")
    return int(m.group(1))


def test_diff_between_timestamps():
    base = S["base"]
    before = time.time()
    lwtest.wait_until(lambda: n_goroutine_profiles() >= 3, 30, "goroutine profile before the leak")
    time.sleep(1.5)
    t_before = time.time()
    lwtest.http(S["svc"] + "/leak/goroutine?n=40")
    n0 = n_goroutine_profiles()
    lwtest.wait_until(lambda: n_goroutine_profiles() >= n0 + 2, 30, "profiles after the leak")
    t_after = time.time()  # fixed, so that every request below compares the same two profiles
    params = dict(instance=S["instance"], type="goroutine", **{"from": f"{t_before:.3f}", "to": f"{t_after:.3f}"})
    status, headers, body = lwtest.http(base + "/api/v1/diff" + q(format="json", **params))
    check_eq(status, 200, f"diff status ({body[:200]!r})")
    diff_total = json.loads(body)["data"]["totals"][0]
    b, c = int(headers["X-Leakwatch-Base-Profile"]), int(headers["X-Leakwatch-Profile"])
    status, doc = lwtest.http_json(base + "/api/v1/profiles" + q(instance=S["instance"], type="goroutine"))
    totals = {p["id"]: p["totals"][0] for p in doc["data"]}
    check_eq(diff_total, totals[c] - totals[b], f"diff total = total({c}) - total({b})")
    # 40 leaked, give or take the scraper's own connection goroutines (keep-alive readers).
    check(diff_total >= 37, f"diff shows the 40 leaked goroutines (got {diff_total})")
    url = base + "/api/v1/diff" + q(**params)
    out = lwtest.go_tool_pprof("-top", "-cum", "-nodefraction=0", url)
    check("main.blockedForever" in out, "go tool pprof on the diff URL names main.blockedForever")
    opts = ["-top", "-nodefraction=0", "-edgefraction=0"]
    d = accounting_for(lwtest.go_tool_pprof(*opts, url))
    cur = accounting_for(lwtest.go_tool_pprof(*opts, base + f"/api/v1/profiles/{c}"))
    old = accounting_for(lwtest.go_tool_pprof(*opts, base + f"/api/v1/profiles/{b}"))
    check_eq(d, cur - old, f"go tool pprof: diff URL accounts for profile {c} minus profile {b}")
    out = lwtest.go_tool_pprof("-top", base + f"/api/v1/profiles/{c}")
    check_eq(lwtest.pprof_top_total(out), str(totals[c]), "go tool pprof total of the profile URL")
    rng = {"from": f"{before - 60:.3f}", "to": f"{t_after:.3f}"}
    merge_url = base + "/api/v1/merge" + q(instance=S["instance"], type="goroutine", **rng)
    status, doc = lwtest.http_json(base + "/api/v1/profiles" + q(instance=S["instance"], type="goroutine", **rng))
    want = sum(p["totals"][0] for p in doc["data"])
    out = lwtest.go_tool_pprof("-top", merge_url)
    check_eq(lwtest.pprof_top_total(out), str(want),
             f"go tool pprof total of the merge URL = sum over the {len(doc['data'])} profiles in the range")
    S["t_before"] = t_before


def expect_error(path, status, error_type, needle):
    got, _, body = lwtest.http(S["base"] + path)
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    check(got == status and doc.get("errorType") == error_type and needle in doc.get("error", ""),
          f"GET {path[:100]} -> {got} {doc} (want {status} {error_type} containing {needle!r})")


def test_endpoints_and_errors():
    inst = S["instance"]
    for path in ["/-/healthy", "/-/ready", "/api/v1/leaks", "/api/v1/alerts",
                 "/api/v1/profiles" + q(instance=inst, type="heap"),
                 "/api/v1/series" + q(instance=inst, signal="goroutines", **{"from": "now-10m"}),
                 "/api/v1/series" + q(instance=inst, signal="heap_inuse_bytes", **{"from": "now-10m"}),
                 "/api/v1/merge" + q(instance=inst, type="heap", format="folded", sample_type="inuse_space")]:
        status, _, body = lwtest.http(S["base"] + path)
        check_eq(status, 200, f"GET {path[:90]} ({body[:120]!r})")
    status, doc = lwtest.http_json(S["base"] + "/api/v1/series" + q(instance=inst, signal="goroutines",
                                                                      **{"from": "now-10m"}))
    vals = [float(v) for _, v in doc["data"]["result"][0]["values"]]
    check(len(vals) >= 3 and max(vals) - min(vals) >= 37, f"goroutine series shows the leak: {vals[:3]}..{vals[-3:]}")
    status, doc = lwtest.http_json(S["base"] + "/api/v1/leaks")
    check(isinstance(doc["data"], list) and all(l.get("instance") == inst for l in doc["data"]),
          f"leak verdicts of the target: {str(doc['data'])[:300]}")
    expect_error("/api/v1/profiles" + q(**{"from": "tomorrow"}), 400, "bad_data", 'invalid parameter "from"')
    expect_error("/api/v1/diff" + q(instance=inst, type="goroutine"), 400, "bad_data", 'invalid parameter "from"')
    expect_error("/api/v1/series" + q(instance=inst, signal="threads"), 400, "bad_data", 'invalid parameter "signal"')
    expect_error("/api/v1/profiles/987654", 404, "not_found", "no profile with id 987654")
    expect_error("/api/v1/merge" + q(instance="10.9.9.9:1", type="heap"), 404, "not_found", "unknown target")
    expect_error("/api/v1/merge" + q(instance=inst, type="heap", **{"from": "1000000000", "to": "1000000100"}),
                 422, "execution", "no heap profiles stored")
    expect_error("/api/v1/diff" + q(instance=inst, type="goroutine", **{"from": "1000000000"}), 422, "execution",
                 "stored at or before from")
    expect_error("/api/v1/nothing", 404, "not_found", "no such endpoint")
    status, headers, _ = lwtest.http(S["base"] + "/api/v1/targets", method="POST", data=b"")
    check_eq(status, 405, "POST /api/v1/targets")


def test_metrics_promtool_and_prometheus():
    text = metrics()
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check(r.returncode == 0, f"promtool check metrics exit {r.returncode}: {r.stdout}{r.stderr}")
    for fam in ["leakwatch_target_up", "leakwatch_scrapes_total", "leakwatch_goroutines", "leakwatch_profiles_stored",
                "leakwatch_storage_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total",
                "process_open_fds", "process_start_time_seconds"]:
        check(f"# TYPE {fam} " in text, f"family {fam} present")
    d = lwtest.tempdir("prom-")
    pport = lwtest.free_port()
    cfg = os.path.join(d, "prom.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                # honor_labels keeps the scraped services' job/instance (as for a Pushgateway).
                "scrape_configs:\n  - job_name: leakwatchd\n    honor_labels: true\n    static_configs:\n"
                f"      - targets: ['{S['base'][len('http://'):]}']\n")
    prom = lwtest.start(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(d, 'tsdb')}",
                         f"--web.listen-address=127.0.0.1:{pport}"], log=os.path.join(d, "prometheus.log"))
    pbase = f"http://127.0.0.1:{pport}"
    lwtest.wait_http(pbase + "/-/ready", proc=prom, timeout=60)
    lwtest.wait_until(lambda: lwtest.http(pbase + "/-/ready")[0] == 200, 60, "Prometheus ready")
    query = f'leakwatch_goroutines{{instance="{S["instance"]}",job="gosvc"}}'

    def agree():
        status, doc = lwtest.http_json(pbase + "/api/v1/query" + q(query=query))
        res = doc.get("data", {}).get("result", []) if status == 200 else []
        if not res:
            return None
        prom_v = float(res[0]["value"][1])
        daemon_v = goroutines_now()
        print(f"PromQL {query} = {prom_v}, leakwatchd reports {daemon_v}")
        return prom_v == daemon_v and prom_v > 0

    lwtest.wait_until(agree, 60, "Prometheus' leakwatch_goroutines equal to leakwatchd's", interval=1.0)
    status, doc = lwtest.http_json(pbase + "/api/v1/targets")
    health = [t["health"] for t in doc["data"]["activeTargets"]]
    check_eq(health, ["up"], "Prometheus scrapes leakwatchd successfully")
    lwtest.stop(prom)


def test_concurrent_clients_while_scraping():
    base = S["base"]
    inst = S["instance"]
    before = metrics()
    ok0 = metric_value(before, "leakwatch_scrapes_total", instance=inst, profile="goroutine", result="success") or 0
    err0 = metric_value(before, "leakwatch_scrapes_total", instance=inst, profile="goroutine", result="error") or 0
    urls = [
        "/api/v1/diff" + q(instance=inst, type="goroutine", **{"from": f"{S['t_before']:.3f}", "to": "now"}),
        "/api/v1/merge" + q(instance=inst, type="goroutine", **{"from": "now-5m"}),
        "/api/v1/merge" + q(instance=inst, type="heap", format="text", **{"from": "now-5m"}),
        "/metrics",
    ]
    duration = 10.0
    errors = []
    counts = [0] * 50
    t_start = time.time()
    stop_at = t_start + duration
    host, port = base[len("http://"):].rsplit(":", 1)

    def client(i):
        k = i
        while time.time() < stop_at:
            url = urls[k % len(urls)]
            k += 1
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                conn.request("GET", url)
                r = conn.getresponse()
                body = r.read()
                conn.close()
                if r.status != 200 or not body:
                    errors.append((url, r.status, body[:200]))
                counts[i] += 1
            except Exception as e:
                errors.append((url, repr(e)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.time() - t_start
    after = metrics()
    ok1 = metric_value(after, "leakwatch_scrapes_total", instance=inst, profile="goroutine", result="success") or 0
    err1 = metric_value(after, "leakwatch_scrapes_total", instance=inst, profile="goroutine", result="error") or 0
    total = sum(counts)
    print(f"50 clients for {elapsed:.1f} s: {total} requests ({total / elapsed:.0f}/s), {len(errors)} errors; "
          f"goroutine scrapes {ok1 - ok0:.0f} ok, {err1 - err0:.0f} failed (interval 1 s)")
    check(not errors, f"no errors from 50 concurrent clients: {errors[:3]}")
    check_eq(err1 - err0, 0, "no failed scrapes meanwhile")
    # One scrape per second; allow for the first and last partial intervals.
    check(ok1 - ok0 >= int(elapsed) - 2, f"scrapes kept their schedule: {ok1 - ok0:.0f} in {elapsed:.1f} s")


def run_cli(*args):
    r = subprocess.run([CLI, "--url", S["base"], *args], capture_output=True, text=True, timeout=120)
    print(f"$ leakwatch {' '.join(args)} -> exit {r.returncode}")
    check(r.returncode == 0, f"exit {r.returncode}: {r.stderr[-500:]}")
    return r.stdout


def test_cli_json():
    data = json.loads(run_cli("targets", "--json"))
    t = [t for t in data["activeTargets"] if t["labels"]["instance"] == S["instance"]]
    check(len(t) == 1 and t[0]["health"] == "up", "targets --json: the target is up")
    table = run_cli("targets")
    check(any(l.split()[:2] == ["gosvc", S["instance"]] for l in table.splitlines()), f"targets table:\n{table}")
    profiles = json.loads(run_cli("profiles", "--instance", S["instance"], "--type", "goroutine", "--since", "1h",
                                  "--json"))
    check(len(profiles) >= 3, f"profiles --json lists {len(profiles)} goroutine profiles")
    diff = json.loads(run_cli("diff", "--instance", S["instance"], "--type", "goroutine",
                              "--from", f"{S['t_before']:.3f}", "--to", "now", "--json"))
    check(diff["totals"][0] >= 37, f"diff --json growth {diff['totals'][0]}")
    text = run_cli("diff", "--instance", S["instance"], "--type", "goroutine", "--from", f"{S['t_before']:.3f}",
                   "--top", "5")
    check("runtime.gopark" in text, f"diff table:\n{text}")
    leaks = json.loads(run_cli("leaks", "--json"))
    check(isinstance(leaks, (list, dict)), f"leaks --json parses: {str(leaks)[:200]}")
    alerts = json.loads(run_cli("alerts", "--json"))
    check("alerts" in alerts, f"alerts --json has alerts: {str(alerts)[:200]}")
    out = subprocess.run([CLI, "check", "config", S["cfg"]], capture_output=True, text=True, timeout=60)
    check(out.returncode == 0 and "config OK" in out.stdout, f"check config: {out.stdout}{out.stderr}")


def test_reload_and_shutdown():
    status, _, body = lwtest.http(S["base"] + "/-/reload", method="POST", data=b"")
    check_eq(status, 200, f"POST /-/reload ({body[:200]!r})")
    code = lwtest.stop(S["proc"])
    check_eq(code, 0, f"leakwatchd exits 0 on SIGTERM:\n{lwtest.log_tail(S['proc'])}")
    log = open(S["proc"].log_path, "rb").read().decode("utf-8", "replace")
    check("Sanitizer" not in log and "runtime error" not in log,
          f"no sanitizer reports in the daemon log:\n{log[-3000:]}")


def main():
    setup()
    lwtest.run_tests([test_scraping_and_targets, test_diff_between_timestamps, test_endpoints_and_errors,
                      test_metrics_promtool_and_prometheus,
                      test_concurrent_clients_while_scraping, test_cli_json, test_reload_and_shutdown])


if __name__ == "__main__":
    main()
