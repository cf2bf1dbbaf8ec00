"""test_api_common.py — shared fixture of the API and CLI integration tests.

Fetches real profiles from the shared Go service (tests/peers/gosvc) while
it leaks goroutines and retains heap, ingests them into a fresh store at
chosen times through lwapi-testd --exit-after-ingest, and starts
lwapi-testd serving that store. Profiles (times relative to T0 = now - 3h):

  job svc,  goroutine: g1 at T0, g2 at T0+600 (25 more goroutines), g3 at T0+1200 (10 more)
  job svc,  heap:      h1 at T0, h2 at T0+600 (after retaining 100 x 10000 bytes)
  job svc2 (same instance), goroutine: g1 at T0   -> an instance shared by two jobs
"""
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request

import lwtest

TESTD = os.path.join(lwtest.BIN, "lwapi-testd")
CLI = os.path.join(lwtest.BIN, "leakwatch")


class Fixture:
    pass


def fetch(url, path):
    with urllib.request.urlopen(url, timeout=30) as r:
        data = r.read()
    with open(path, "wb") as f:
        f.write(data)
    return path


def start_testd(db, extra=(), log_dir=None, listen=None):
    port = lwtest.free_port()
    listen = listen or f"127.0.0.1:{port}"
    log = os.path.join(log_dir or lwtest.tempdir(), f"testd-{port}.log")
    p = lwtest.start([TESTD, "--db", db, "--listen", listen, *extra], log=log)
    base = "http://" + listen
    lwtest.wait_http(base + "/-/healthy", proc=p)
    return p, base


def setup():
    fx = Fixture()
    fx.dir = lwtest.tempdir("api-")
    # No background churn: goroutine counts then change only when the fixture leaks.
    svc, svc_base = lwtest.start_gosvc(["-churn-every", "0"], log_dir=fx.dir)
    fx.instance = svc_base[len("http://"):]
    d = fx.dir
    g1 = fetch(svc_base + "/debug/pprof/goroutine", os.path.join(d, "g1.pb.gz"))
    h1 = fetch(svc_base + "/debug/pprof/heap?gc=1", os.path.join(d, "h1.pb.gz"))
    fetch(svc_base + "/leak/goroutine?n=25", os.path.join(d, "leak1.txt"))
    g2 = fetch(svc_base + "/debug/pprof/goroutine", os.path.join(d, "g2.pb.gz"))
    fetch(svc_base + "/retain?n=100&size=10000", os.path.join(d, "retain.txt"))
    h2 = fetch(svc_base + "/debug/pprof/heap?gc=1", os.path.join(d, "h2.pb.gz"))
    fetch(svc_base + "/leak/goroutine?n=10", os.path.join(d, "leak2.txt"))
    g3 = fetch(svc_base + "/debug/pprof/goroutine", os.path.join(d, "g3.pb.gz"))
    lwtest.stop(svc)

    fx.t0 = int(time.time()) - 3 * 3600
    t0 = fx.t0
    fx.db = os.path.join(d, "db", "leakwatch.db")
    inst = fx.instance
    specs = [
        ("svc", "goroutine", t0, g1, "g1"),
        ("svc", "heap", t0, h1, "h1"),
        ("svc", "goroutine", t0 + 600, g2, "g2"),
        ("svc", "heap", t0 + 600, h2, "h2"),
        ("svc", "goroutine", t0 + 1200, g3, "g3"),
        ("svc2", "goroutine", t0, g1, "svc2_g1"),
    ]
    args = [TESTD, "--db", fx.db, "--exit-after-ingest"]
    for job, typ, t, path, _ in specs:
        args += ["--ingest", f"{job},{inst},{typ},{t},{path}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    lwtest.check(r.returncode == 0, f"lwapi-testd ingest exit {r.returncode}: {r.stderr.strip()[-500:]}")
    ids = [int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("ingested ")]
    lwtest.check_eq(len(ids), len(specs), "profiles ingested")
    fx.ids = {name: i for (_, _, _, _, name), i in zip(specs, ids)}
    fx.paths = {"g1": g1, "g2": g2, "g3": g3, "h1": h1, "h2": h2}
    fx.proc, fx.base = start_testd(
        fx.db, ["--leaks-json", LEAKS_JSON, "--alerts-json", ALERTS_JSON], log_dir=d)
    # Totals per stored profile, as the API reports them.
    status, body = lwtest.http_json(fx.base + "/api/v1/profiles")
    lwtest.check_eq(status, 200, "GET /api/v1/profiles status")
    fx.totals = {p["id"]: p["totals"] for p in body["data"]}
    fx.infos = {p["id"]: p for p in body["data"]}
    return fx


LEAKS_JSON = json.dumps([{
    "labels": {"job": "svc", "instance": "127.0.0.1:1"}, "signal": "goroutines", "suspected": True,
    "score": 0.97, "slope_per_second": 0.04, "growth": 35, "window_seconds": 1200,
    "top_stacks": [{"function": "main.blockedForever", "location": "main.go:69", "growth": 35}]}])
ALERTS_JSON = json.dumps({"alerts": [{
    "labels": {"alertname": "GoroutineLeak", "job": "svc", "instance": "127.0.0.1:1", "severity": "warning"},
    "annotations": {"summary": "goroutines grow 0.04/s in main.blockedForever"},
    "state": "firing", "activeAt": "2026-01-01T00:00:00Z", "value": "35"}]})


def q(**params):
    return "?" + urllib.parse.urlencode(params)

