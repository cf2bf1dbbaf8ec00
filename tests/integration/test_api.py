#!/usr/bin/env python3
"""test_api.py — every endpoint and error class of the HTTP API against
lwapi-testd serving real gosvc profiles (see test_api_common.py), go tool
pprof on profile/merge/diff URLs, promtool on /metrics, request limits,
IPv6, and 50 concurrent clients."""
import base64
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import lwtest
from lwtest import check, check_eq
from test_api_common import TESTD, q, setup, start_testd

FX = None


def get(path, **kw):
    return lwtest.http(FX.base + path, **kw)


def get_json(path, **kw):
    status, headers, body = get(path, **kw)
    try:
        doc = json.loads(body.decode("utf-8"))
    except ValueError:
        raise lwtest.TestFailure(f"{path}: not JSON ({status}): {body[:300]!r}")
    return status, doc


def expect_error(path, status, error_type, needle, method=None, data=None, headers=None):
    got, _, body = get(path, method=method, data=data, headers=headers)
    try:
        doc = json.loads(body.decode("utf-8"))
    except ValueError:
        doc = {}
    msg = doc.get("error", "")
    check(got == status and doc.get("status") == "error" and doc.get("errorType") == error_type
          and needle in msg,
          f"{method or 'GET'} {path[:90]} -> {got} {doc.get('errorType')} {msg!r} "
          f"(want {status} {error_type} containing {needle!r})")


def top_total(text):
    """Numeric "of N total" of a go tool pprof -top output."""
    return float(lwtest.pprof_top_total(text).replace("kB", "e3").replace("MB", "e6").replace("B", ""))


def accounting_for(text):
    m = re.search(r"Showing nodes accounting for (-?[\d.]+)", text)
    check(m is not None, "go tool pprof printed 'Showing nodes accounting for'")
    return float(m.group(1))


def test_health_ready_reload():
    status, _, body = get("/-/healthy")
    check_eq((status, body.strip()), (200, b"leakwatchd is Healthy."), "/-/healthy")
    status, _, body = get("/-/ready")
    check_eq(status, 200, "/-/ready when ready")
    status, _, body = get("/-/reload", method="POST", data=b"")
    check_eq(status, 200, "POST /-/reload")
    expect_error("/-/reload", 405, "bad_data", "method GET not allowed")
    status, _, _ = get("/-/ready", method="HEAD")
    check_eq(status, 200, "HEAD /-/ready")
    # Reload callback failing with -EINVAL answers 400 with its message.
    p, base = start_testd(FX.db + ".reload-fail", ["--reload-fail"], log_dir=FX.dir)
    status, _, body = lwtest.http(base + "/-/reload", method="POST", data=b"")
    doc = json.loads(body)
    check(status == 400 and "reload refused on purpose" in doc["error"],
          f"failing reload -> {status} {doc}")
    lwtest.stop(p)


def test_not_ready():
    p, base = start_testd(FX.db + ".notready", ["--ready-after", "3600"], log_dir=FX.dir)
    for path in ["/-/ready", "/api/v1/profiles", "/api/v1/merge?type=heap", "/api/v1/diff?base_id=1&id=2",
                 "/api/v1/series?signal=goroutines", "/api/v1/profiles/1"]:
        status, _, body = lwtest.http(base + path)
        check_eq(status, 503, f"{path} before ready")
    status, doc = lwtest.http_json(base + "/api/v1/profiles")
    check_eq((doc["status"], doc["errorType"]), ("error", "unavailable"), "not-ready envelope")
    for path in ["/-/healthy", "/metrics", "/api/v1/targets", "/api/v1/leaks", "/api/v1/alerts"]:
        status, _, _ = lwtest.http(base + path)
        check_eq(status, 200, f"{path} before ready")
    lwtest.stop(p)


def test_targets():
    status, doc = get_json("/api/v1/targets")
    check_eq(status, 200, "targets status")
    labels = sorted((t["labels"]["job"], t["labels"]["instance"]) for t in doc["data"]["activeTargets"])
    check_eq(labels, [("svc", FX.instance), ("svc2", FX.instance)], "stored targets")


def test_profiles_list():
    status, doc = get_json("/api/v1/profiles")
    check_eq(status, 200, "profiles status")
    check_eq(doc["status"], "success", "envelope status")
    check_eq(len(doc["data"]), 6, "number of stored profiles")
    times = [p["timestamp"] for p in doc["data"]]
    check_eq(times, sorted(times), "profiles oldest first")
    status, doc = get_json("/api/v1/profiles" + q(job="svc", type="heap"))
    check_eq([p["id"] for p in doc["data"]], [FX.ids["h1"], FX.ids["h2"]], "heap profiles of svc")
    h = doc["data"][0]
    check_eq([t["type"] for t in h["sample_types"]],
             ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"], "heap sample types")
    status, doc = get_json("/api/v1/profiles" + q(job="svc", type="goroutine", **{"from": FX.t0 + 300}))
    check_eq([p["id"] for p in doc["data"]], [FX.ids["g2"], FX.ids["g3"]], "goroutine profiles from T0+300")
    status, doc = get_json("/api/v1/profiles" + q(job="svc", type="goroutine", **{"from": "now-4h", "to": "now"}))
    check_eq(len(doc["data"]), 3, "goroutine profiles from now-4h")
    status, doc = get_json("/api/v1/profiles" + q(job="svc", type="goroutine", limit=1))
    check_eq([p["id"] for p in doc["data"]], [FX.ids["g3"]], "limit=1 gives the newest")
    status, doc = get_json("/api/v1/profiles" + q(match='{job="svc2"}'))
    check_eq([p["id"] for p in doc["data"]], [FX.ids["svc2_g1"]], "match={job=\"svc2\"}")
    expect_error("/api/v1/profiles" + q(instance="nope:1"), 404, "not_found", 'unknown target: instance "nope:1"')
    expect_error("/api/v1/profiles" + q(job="svc", instance="nope:1"), 404, "not_found", "unknown target")
    expect_error("/api/v1/profiles" + q(**{"from": "yesterday"}), 400, "bad_data",
                 'invalid parameter "from": cannot parse "yesterday" as a time')
    expect_error("/api/v1/profiles" + q(to="2023-13-01T00:00:00Z"), 400, "bad_data", 'invalid parameter "to"')
    expect_error("/api/v1/profiles" + q(**{"from": "now", "to": "now-1h"}), 400, "bad_data",
                 'invalid parameter "to": end time is before the start time')
    expect_error("/api/v1/profiles" + q(type="heap profile"), 400, "bad_data", 'invalid parameter "type"')
    expect_error("/api/v1/profiles" + q(limit="0"), 400, "bad_data", 'invalid parameter "limit"')
    expect_error("/api/v1/profiles" + q(match='{job=~"s.*"}'), 400, "bad_data",
                 'invalid parameter "match": selector: only \'=\' matchers are supported')
    expect_error("/api/v1/profiles" + q(match='{env="x"}'), 400, "bad_data", "only job and instance")
    expect_error("/api/v1/profiles" + q(job="a\nb"), 400, "bad_data", 'invalid parameter "job": control character')


def test_profile_formats():
    gid = FX.ids["g2"]
    status, headers, body = get(f"/api/v1/profiles/{gid}")
    check_eq(status, 200, "profile status")
    check_eq(body[:2], b"\x1f\x8b", "default format is gzipped pprof")
    check_eq(headers.get("Content-Type"), "application/octet-stream", "pprof content type")
    check(f'filename="goroutine-{gid}.pb.gz"' in headers.get("Content-Disposition", ""),
          f"Content-Disposition names a file: {headers.get('Content-Disposition')}")
    out = lwtest.go_tool_pprof("-top", FX.base + f"/api/v1/profiles/{gid}")
    check_eq(top_total(out), float(FX.totals[gid][0]), "go tool pprof total of the profile URL")
    # The heap profile: inuse_space total as go tool pprof prints it in bytes.
    hid = FX.ids["h2"]
    out = lwtest.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", FX.base + f"/api/v1/profiles/{hid}")
    check_eq(top_total(out), float(FX.totals[hid][3]), "go tool pprof inuse_space total of the heap URL")
    status, doc = get_json(f"/api/v1/profiles/{gid}?format=json")
    check_eq(doc["data"]["totals"], FX.totals[gid], "format=json totals")
    funcs = {f["function"] for s in doc["data"]["samples"] for f in s["stack"]}
    check("main.blockedForever" in funcs, "format=json stacks contain main.blockedForever")
    status, headers, body = get(f"/api/v1/profiles/{gid}?format=text&top=5")
    text = body.decode()
    check(status == 200 and "flat%" in text and headers["Content-Type"].startswith("text/plain"),
          f"format=text is a top table: {text[:200]!r}")
    rows = [l for l in text.splitlines() if l.strip() and "%" in l and "Showing" not in l and "flat%" not in l]
    check(len(rows) <= 5, f"top=5 gives at most 5 rows (got {len(rows)})")
    status, _, body = get(f"/api/v1/profiles/{gid}?format=folded")
    folded = body.decode()
    total = sum(int(l.rsplit(" ", 1)[1]) for l in folded.splitlines() if l.strip())
    check("main.blockedForever;runtime.chanrecv1;runtime.chanrecv;runtime.gopark 25" in folded,
          "folded stacks: root first, main.blockedForever ... runtime.gopark 25")
    check(total <= FX.totals[gid][0], f"folded values sum {total} <= total {FX.totals[gid][0]}")
    status, _, body = get(f"/api/v1/profiles/{hid}?format=folded&sample_type=alloc_space")
    check_eq(status, 200, "folded with sample_type=alloc_space")
    expect_error(f"/api/v1/profiles/{hid}?format=text&sample_type=bogus", 400, "bad_data",
                 'invalid parameter "sample_type": profile has no sample type "bogus" (has alloc_objects')
    expect_error(f"/api/v1/profiles/{gid}?format=xml", 400, "bad_data", 'invalid parameter "format": unknown format')
    expect_error(f"/api/v1/profiles/{gid}?format=text&top=x", 400, "bad_data", 'invalid parameter "top"')
    expect_error("/api/v1/profiles/999999", 404, "not_found", "no profile with id 999999")
    expect_error("/api/v1/profiles/abc", 400, "bad_data", 'invalid parameter "id"')
    expect_error("/api/v1/profiles/0", 400, "bad_data", 'invalid parameter "id"')
    expect_error("/api/v1/profiles/99999999999999999999999", 400, "bad_data", 'invalid parameter "id"')


def test_merge():
    inst = FX.instance
    rng = {"from": FX.t0 - 1, "to": FX.t0 + 1201}
    want = sum(FX.totals[FX.ids[n]][0] for n in ("g1", "g2", "g3"))
    status, headers, body = get("/api/v1/merge" + q(job="svc", instance=inst, type="goroutine", format="json", **rng))
    doc = json.loads(body)
    check_eq(status, 200, "merge status")
    check_eq(doc["data"]["totals"], [want], "merged goroutine total = sum of the three")
    check_eq(headers.get("X-Leakwatch-Merged-Profiles"), "3", "merged profile count header")
    out = lwtest.go_tool_pprof("-top", FX.base + "/api/v1/merge" + q(job="svc", instance=inst, type="goroutine", **rng))
    check_eq(top_total(out), float(want), "go tool pprof total of the merge URL")
    # g2 and g3 both hold a sample with an empty stack (Go reports one); they must merge.
    status, doc = get_json("/api/v1/merge" + q(job="svc", type="goroutine", format="json",
                                               **{"from": FX.t0 + 1, "to": FX.t0 + 1201}))
    check_eq(doc["data"]["totals"], [FX.totals[FX.ids["g2"]][0] + FX.totals[FX.ids["g3"]][0]], "merge of g2 and g3")
    # Across both jobs (no job): 4 goroutine profiles.
    status, doc = get_json("/api/v1/merge" + q(instance=inst, type="goroutine", format="json", **rng))
    check_eq(doc["data"]["totals"], [want + FX.totals[FX.ids["svc2_g1"]][0]], "merge across jobs")
    # heap, inuse_space in a top table
    status, _, body = get("/api/v1/merge" + q(job="svc", type="heap", format="text", sample_type="inuse_space", **rng))
    check(status == 200 and b"inuse_space" in body, f"heap merge text names inuse_space ({status})")
    expect_error("/api/v1/merge" + q(job="svc", type="goroutine"), 422, "execution",
                 "no goroutine profiles stored between from and to")
    expect_error("/api/v1/merge" + q(job="svc", **rng), 400, "bad_data", 'invalid parameter "type": missing')
    expect_error("/api/v1/merge" + q(job="svc", type="goroutine", **{"from": "0", "to": "now"}), 400, "bad_data",
                 'invalid parameter "from": range from..to of')
    expect_error("/api/v1/merge" + q(job="nojob", type="goroutine", **rng), 404, "not_found",
                 'unknown target: job "nojob"')


def test_diff():
    inst = FX.instance
    g1, g2 = FX.ids["g1"], FX.ids["g2"]
    want = FX.totals[g2][0] - FX.totals[g1][0]
    params = dict(job="svc", instance=inst, type="goroutine", **{"from": FX.t0, "to": FX.t0 + 600})
    status, headers, body = get("/api/v1/diff" + q(format="json", **params))
    doc = json.loads(body)
    check_eq(status, 200, "diff status")
    check_eq(doc["data"]["totals"], [want], "diff total = total(g2) - total(g1)")
    check_eq((headers.get("X-Leakwatch-Base-Profile"), headers.get("X-Leakwatch-Profile")),
             (str(g1), str(g2)), "diff names the profiles it compared")
    # "at or nearest before": times between the stored ones pick the earlier profile.
    status, headers, _ = get("/api/v1/diff" + q(job="svc", instance=inst, type="goroutine", format="json",
                                                **{"from": FX.t0 + 599, "to": FX.t0 + 1199}))
    check_eq((headers.get("X-Leakwatch-Base-Profile"), headers.get("X-Leakwatch-Profile")),
             (str(g1), str(g2)), "diff picks profiles at or before from/to")
    status, doc = get_json("/api/v1/diff" + q(base_id=g1, id=g2, format="json"))
    check_eq(doc["data"]["totals"], [want], "diff by base_id/id")
    # go tool pprof on the pprof diff URL shows the growth directly.
    url = FX.base + "/api/v1/diff" + q(**params)
    out = lwtest.go_tool_pprof("-top", "-nodefraction=0", "-edgefraction=0", url)
    cur = lwtest.go_tool_pprof("-top", "-nodefraction=0", "-edgefraction=0", FX.base + f"/api/v1/profiles/{g2}")
    base = lwtest.go_tool_pprof("-top", "-nodefraction=0", "-edgefraction=0", FX.base + f"/api/v1/profiles/{g1}")
    check_eq(accounting_for(out), accounting_for(cur) - accounting_for(base),
             "go tool pprof diff URL: nodes account for cur - base")
    rows = lwtest.pprof_top_functions(out, 3)
    check(rows and rows[0] == "runtime.gopark", f"top growing frame is runtime.gopark: {rows}")
    # The flat gopark row may differ from 25 by goroutines of the server that
    # were parked in one snapshot and running in the other; the leaking
    # function's cumulative value is exactly the 25 leaked goroutines.
    cum = lwtest.go_tool_pprof("-top", "-cum", "-nodefraction=0", url)
    m = re.search(r"^\s*(-?\d+)\s+\S+\s+\S+\s+(-?\d+)\s+\S+\s+main\.blockedForever$", cum, re.M)
    check(m is not None and int(m.group(2)) == 25,
          f"cum view: main.blockedForever grows by the 25 leaked goroutines: {m and m.group(0)}")
    status, _, body = get("/api/v1/diff" + q(format="text", top=5, **params))
    check(status == 200 and b"runtime.gopark" in body, "diff format=text shows runtime.gopark")
    status, _, body = get("/api/v1/diff" + q(format="folded", **params))
    leak_lines = [l for l in body.decode().splitlines() if "main.blockedForever" in l]
    check(len(leak_lines) == 1 and leak_lines[0].endswith(" 25"), f"folded diff: blockedForever stack +25: {leak_lines}")
    # Errors.
    expect_error("/api/v1/diff" + q(instance=inst, type="goroutine", **{"from": FX.t0}), 400, "bad_data",
                 'invalid parameter "instance": matches 2 targets')
    expect_error("/api/v1/diff" + q(job="svc", instance=inst, type="goroutine"), 400, "bad_data",
                 'invalid parameter "from": missing')
    expect_error("/api/v1/diff" + q(job="svc", instance=inst, **{"from": FX.t0}), 400, "bad_data",
                 'invalid parameter "type": missing')
    expect_error("/api/v1/diff" + q(type="goroutine", **{"from": FX.t0}), 400, "bad_data",
                 'invalid parameter "instance": missing')
    expect_error("/api/v1/diff" + q(job="svc", instance=inst, type="goroutine", **{"from": FX.t0 - 10}), 422,
                 "execution", "stored at or before from")
    expect_error("/api/v1/diff" + q(job="svc", instance=inst, type="block", **{"from": FX.t0}), 422,
                 "execution", "no block profile")
    expect_error("/api/v1/diff" + q(instance="nope:1", type="goroutine", **{"from": FX.t0}), 404, "not_found",
                 "unknown target")
    expect_error("/api/v1/diff" + q(base_id=g1, id=FX.ids["h1"]), 400, "bad_data",
                 'invalid parameter "base_id": profile')
    expect_error("/api/v1/diff" + q(base_id=g1), 400, "bad_data", 'invalid parameter "id": missing')
    expect_error("/api/v1/diff" + q(base_id="x", id=g1), 400, "bad_data", 'invalid parameter "base_id"')
    expect_error("/api/v1/diff" + q(base_id=g1, id=424242), 404, "not_found", "no profile with id 424242")


def test_series():
    inst = FX.instance
    rng = {"from": FX.t0 - 1, "to": FX.t0 + 1201}
    status, doc = get_json("/api/v1/series" + q(job="svc", instance=inst, signal="goroutines", **rng))
    check_eq(status, 200, "series status")
    res = doc["data"]["result"]
    check_eq(len(res), 1, "one series")
    check_eq(res[0]["metric"], {"__name__": "leakwatch_goroutines", "instance": inst, "job": "svc"}, "series labels")
    got = [(round(t), float(v)) for t, v in res[0]["values"]]
    want = [(FX.t0 + 600 * i, float(FX.totals[FX.ids[n]][0])) for i, n in enumerate(("g1", "g2", "g3"))]
    check_eq(got, want, "goroutine series = profile totals at their times")
    status, doc = get_json("/api/v1/series" + q(job="svc", signal="heap_inuse_bytes", **rng))
    vals = [float(v) for _, v in doc["data"]["result"][0]["values"]]
    check_eq(vals, [float(FX.totals[FX.ids["h1"]][3]), float(FX.totals[FX.ids["h2"]][3])],
             "heap_inuse_bytes series = inuse_space totals")
    expect_error("/api/v1/series" + q(signal="threads"), 400, "bad_data", 'invalid parameter "signal": unknown signal')
    expect_error("/api/v1/series", 400, "bad_data", 'invalid parameter "signal": missing')
    expect_error("/api/v1/series" + q(signal="goroutines"), 422, "execution", "no goroutines points stored")
    expect_error("/api/v1/series" + q(signal="goroutines", **{"from": "1970-01-01T00:00:00Z"}), 400, "bad_data",
                 'invalid parameter "from": range')


def test_leaks_alerts():
    status, doc = get_json("/api/v1/leaks")
    check_eq((status, doc["data"][0]["signal"], doc["data"][0]["top_stacks"][0]["function"]),
             (200, "goroutines", "main.blockedForever"), "leaks from the callback")
    status, doc = get_json("/api/v1/alerts")
    check_eq((status, doc["data"]["alerts"][0]["labels"]["alertname"], doc["data"]["alerts"][0]["state"]),
             (200, "GoroutineLeak", "firing"), "alerts from the callback")


def test_metrics():
    status, headers, body = get("/metrics")
    check_eq(status, 200, "/metrics status")
    check(headers["Content-Type"].startswith("text/plain; version=0.0.4"), f"content type {headers['Content-Type']}")
    text = body.decode()
    path = os.path.join(FX.dir, "metrics.txt")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check(r.returncode == 0, f"promtool check metrics exit {r.returncode}: {r.stdout}{r.stderr}")
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, v = line.rsplit(" ", 1)
            values[name] = float(v)
    check_eq(values.get("leakwatch_profiles_stored"), 6.0, "leakwatch_profiles_stored")
    check(values.get("leakwatch_storage_bytes", 0) > 0, f"leakwatch_storage_bytes {values.get('leakwatch_storage_bytes')}")
    for fam in ["process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
                "process_open_fds", "process_max_fds", "process_start_time_seconds", "lwapi_testd_reloads_total"]:
        check(fam in values, f"{fam} present ({values.get(fam)})")
    check(abs(values["process_start_time_seconds"] - time.time()) < 3600,
          f"process_start_time_seconds {values['process_start_time_seconds']} is recent")
    check('leakwatch_build_info{version="' in text, "leakwatch_build_info labelled by version")
    check('leakwatch_http_requests_total{code="200",handler="/api/v1/diff"}' in text, "requests counted per handler")


def raw_request(base, data):
    host, port = base[len("http://"):].rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    return b"".join(chunks)


def test_limits_and_methods():
    expect_error("/nope", 404, "not_found", "no such endpoint: /nope")
    expect_error("/api/v1/targets", 405, "bad_data", "method POST not allowed", method="POST", data=b"")
    status, headers, _ = get("/api/v1/targets", method="DELETE")
    check_eq((status, headers.get("Allow")), (405, "GET, HEAD"), "DELETE -> 405 with Allow")
    expect_error("/api/v1/profiles?job=" + "x" * 9000, 414, "bad_data", "URL longer than 8192 bytes")
    expect_error("/api/v1/profiles?" + "&".join(f"a{i}=1" for i in range(70)), 414, "bad_data",
                 "more than 64 query parameters")
    # A body larger than the limit is refused from its Content-Length.
    resp = raw_request(FX.base, b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    check(resp.startswith(b"HTTP/1.1 413"), f"100 kB body -> {resp[:40]!r}")
    # Headers over the connection memory limit.
    resp = raw_request(FX.base, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
    check(resp[:12] in (b"HTTP/1.1 431", b"HTTP/1.1 413", b"HTTP/1.1 414") or resp == b"",
          f"100 kB header -> {resp[:40]!r}")


def copy_db(name):
    """The store file is locked by the serving testd, so other servers serve a copy."""
    db2 = os.path.join(FX.dir, name, "leakwatch.db")
    os.makedirs(os.path.dirname(db2), exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(FX.db + suffix):
            shutil.copy(FX.db + suffix, db2 + suffix)
    return db2


def test_server_limits():
    db2 = copy_db("copy")
    p, base = start_testd(db2, ["--max-merge", "2", "--max-response-bytes", "3000"], log_dir=FX.dir)
    rng = {"from": FX.t0 - 1, "to": FX.t0 + 1201}
    status, _, body = lwtest.http(base + "/api/v1/merge" + q(job="svc", type="goroutine", format="json", **rng))
    doc = json.loads(body)
    check(status == 400 and 'invalid parameter "from": the range holds more than 2 profiles' in doc["error"],
          f"merge over the limit -> {status} {doc}")
    status, _, body = lwtest.http(base + "/api/v1/merge" + q(job="svc", type="goroutine", format="text", top=2,
                                                              **{"from": FX.t0 + 1, "to": FX.t0 + 1201}))
    check(status == 200, f"merge of 2 profiles within the limit: {status} {body[:200]!r}")
    status, _, body = lwtest.http(base + f"/api/v1/profiles/{FX.ids['g2']}?format=json")
    doc = json.loads(body)
    check(status == 422 and "response exceeds the limit of 3000 bytes" in doc["error"],
          f"over-size answer -> {status} {doc}")
    lwtest.stop(p)


def https(url, ctx, user=None, password=None):
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_web_config_tls_and_basic_auth():
    d = lwtest.tempdir("web-")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"openssl made a certificate: {r.stderr[-300:]}")
    h = subprocess.run([TESTD, "--hash-password", "s3cret"], capture_output=True, text=True).stdout.strip()
    check(h.startswith("$2b$10$"), f"bcrypt hash {h}")
    web = os.path.join(d, "web.yml")
    with open(web, "w") as f:
        f.write(f"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                f"basic_auth_users:\n  alice: '{h}'\n")
    bad = os.path.join(d, "bad.yml")
    with open(bad, "w") as f:
        f.write("basic_auth_users:\n  bob: plaintext\n")
    r = subprocess.run([TESTD, "--db", copy_db("web-bad"), "--listen", f"127.0.0.1:{lwtest.free_port()}",
                        "--web-config", bad], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "bad.yml:2: basic_auth_users: the password must be a bcrypt hash" in r.stderr,
          f"bad web config refused: {r.returncode} {r.stderr.strip()}")
    port = lwtest.free_port()
    p = lwtest.start([TESTD, "--db", copy_db("web"), "--listen", f"127.0.0.1:{port}", "--web-config", web],
                     log=os.path.join(d, "testd.log"))
    base = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))

    def up():
        try:
            return https(base + "/-/healthy", ctx)[0] == 200
        except (OSError, urllib.error.URLError):
            check(p.poll() is None, f"testd running:\n{lwtest.log_tail(p)}")
            return False

    lwtest.wait_until(up, 30, "HTTPS /-/healthy without credentials")
    status, headers, _ = https(base + "/metrics", ctx)
    check(status == 401 and 'Basic realm="leakwatch"' in headers.get("WWW-Authenticate", ""),
          f"/metrics without credentials -> {status} {headers.get('WWW-Authenticate')}")
    status, _, _ = https(base + "/api/v1/profiles", ctx, "alice", "wrong")
    check_eq(status, 401, "wrong password")
    status, _, _ = https(base + "/api/v1/profiles", ctx, "mallory", "s3cret")
    check_eq(status, 401, "unknown user")
    status, _, body = https(base + "/api/v1/profiles", ctx, "alice", "s3cret")
    check(status == 200 and len(json.loads(body)["data"]) == 6, f"alice gets the profiles ({status})")
    r = subprocess.run(["curl", "-sS", "--cacert", os.path.join(d, "cert.pem"), "-u", "alice:s3cret", "-o", "/dev/null",
                        "-w", "%{http_code}", base + "/api/v1/targets"], capture_output=True, text=True, timeout=60)
    check_eq(r.stdout, "200", f"curl over TLS with basic auth ({r.stderr.strip()})")
    cli = [os.path.join(lwtest.BIN, "leakwatch"), "--url", base, "--cacert", os.path.join(d, "cert.pem")]
    r = subprocess.run(cli + ["--user", "alice:s3cret", "--json", "profiles"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and len(json.loads(r.stdout)) == 6, f"leakwatch --user over TLS: {r.returncode} {r.stderr}")
    r = subprocess.run(cli + ["profiles"], capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "authentication required (HTTP 401)" in r.stderr,
          f"leakwatch without --user: {r.returncode} {r.stderr.strip()}")
    try:
        plain = lwtest.http(f"http://127.0.0.1:{port}/-/healthy", timeout=5)[0]
    except Exception as e:  # the TLS server drops a plain HTTP request
        plain = repr(e)
    check(plain != 200, f"plain HTTP is not served on the TLS port ({plain})")
    # A real Prometheus scrapes it over HTTPS with basic auth.
    pport = lwtest.free_port()
    cfg = os.path.join(d, "prom.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lw\n    scheme: https\n"
                f"    tls_config:\n      ca_file: {os.path.join(d, 'cert.pem')}\n"
                "    basic_auth:\n      username: alice\n      password: s3cret\n"
                f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    prom = lwtest.start(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(d, 'tsdb')}",
                         f"--web.listen-address=127.0.0.1:{pport}"], log=os.path.join(d, "prometheus.log"))
    pbase = f"http://127.0.0.1:{pport}"
    lwtest.wait_http(pbase + "/-/ready", proc=prom, timeout=60)
    lwtest.wait_until(lambda: lwtest.http(pbase + "/-/ready")[0] == 200, 60, "Prometheus ready")

    def scraped():
        status, doc = lwtest.http_json(pbase + "/api/v1/query?query=leakwatch_profiles_stored")
        res = doc.get("data", {}).get("result", []) if status == 200 else []
        return res and float(res[0]["value"][1])

    got = lwtest.wait_until(scraped, 60, "Prometheus scraped leakwatch_profiles_stored over HTTPS", interval=1.0)
    check_eq(got, 6.0, "leakwatch_profiles_stored via Prometheus over HTTPS + basic auth")
    lwtest.stop(prom)
    check_eq(lwtest.stop(p), 0, "TLS testd exits 0")


def test_listen_errors():
    busy = FX.base[len("http://"):]
    cases = [(busy, "Address already in use"), ("127.0.0.1", "missing port"), ("127.0.0.1:99999", "bad host or port"),
             ("::1:80", "IPv6 addresses need brackets"), ("[::1:80", "want [IPv6]:port"),
             ("no-such-host.invalid:80", "no-such-host.invalid:80")]
    for addr, msg in cases:
        r = subprocess.run([TESTD, "--db", os.path.join(FX.dir, "listen", "lw.db"), "--listen", addr],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and msg in r.stderr, f"--listen {addr} -> exit {r.returncode}: {r.stderr.strip()}")


def test_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        print(f"skip: no IPv6 loopback ({e})")
        return
    port = lwtest.free_port()
    p, base = start_testd(FX.db + ".v6", [], log_dir=FX.dir, listen=f"[::1]:{port}")
    status, _, body = lwtest.http(base + "/-/healthy")
    check_eq(status, 200, f"/-/healthy over {base}")
    lwtest.stop(p)


def test_bad_input_never_500():
    weird = ["", "%00", "%ff%fe", "now-", "9" * 40, "-1", "{", '{job="', "1e400", "NaN", "..", "/", "%2F..%2F",
             "2023-02-30T00:00:00Z", "\u00e9", "x" * 1000]
    params = ["from", "to", "type", "instance", "job", "format", "sample_type", "top", "limit", "match",
              "signal", "base_id", "id"]
    paths = ["/api/v1/profiles", "/api/v1/merge", "/api/v1/diff", "/api/v1/series", f"/api/v1/profiles/{FX.ids['g1']}"]
    n = 0
    bad = []
    for path in paths:
        for param in params:
            for w in weird:
                url = path + "?" + urllib.parse.urlencode({param: w})
                if path == "/api/v1/diff" and param not in ("base_id", "id"):
                    url += "&" + urllib.parse.urlencode({"job": "svc", "instance": FX.instance,
                                                         "type": "goroutine", "from": FX.t0})
                status, _, body = get(url)
                n += 1
                if status >= 500:
                    bad.append((url, status, body[:200]))
    check(not bad, f"{n} requests with odd parameters, none answered 5xx: {bad[:3]}")
    status, _, _ = get("/api/v1/profiles/1/extra")
    check(status in (400, 404), f"/api/v1/profiles/1/extra -> {status}")


def test_concurrent_clients():
    inst = FX.instance
    rng = {"from": FX.t0 - 1, "to": FX.t0 + 1201}
    urls = [
        "/api/v1/diff" + q(job="svc", instance=inst, type="goroutine", **{"from": FX.t0, "to": FX.t0 + 600}),
        "/api/v1/merge" + q(job="svc", instance=inst, type="goroutine", **rng),
        "/api/v1/merge" + q(job="svc", type="heap", format="text", **rng),
        "/metrics",
        "/api/v1/profiles",
    ]
    duration = 5.0
    errors = []
    counts = [0] * 50
    stop_at = time.time() + duration

    def client(i):
        # Half the clients keep their connection alive, half open one per request.
        host, port = FX.base[len("http://"):].rsplit(":", 1)
        k = i
        conn = None
        while time.time() < stop_at:
            url = urls[k % len(urls)]
            k += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, int(port), timeout=60)
                conn.request("GET", url)
                r = conn.getresponse()
                body = r.read()
                if i % 2 or r.will_close:
                    conn.close()
                    conn = None
                if r.status != 200 or not body:
                    errors.append((url, r.status, body[:100]))
                counts[i] += 1
            except Exception as e:  # a refused or dropped connection is an error
                errors.append((url, repr(e)))
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    t = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.time() - t
    total = sum(counts)
    print(f"50 clients, {elapsed:.1f} s: {total} requests ({total / elapsed:.0f}/s), {len(errors)} errors")
    check(not errors, f"no errors from 50 concurrent clients: {errors[:3]}")
    check(min(counts) > 0, f"every client got answers (min {min(counts)})")
    status, _, _ = get("/-/healthy")
    check_eq(status, 200, "server healthy afterwards")


def test_clean_shutdown():
    check(FX.proc.poll() is None, f"lwapi-testd still running:\n{lwtest.log_tail(FX.proc)}")
    code = lwtest.stop(FX.proc)
    check_eq(code, 0, "lwapi-testd exits 0 on SIGTERM (sanitizers found no leak)")
    log = open(FX.proc.log_path, "rb").read().decode("utf-8", "replace")
    check("ERROR: AddressSanitizer" not in log and "runtime error" not in log and "ThreadSanitizer" not in log,
          f"no sanitizer reports in the server log:\n{log[-2000:]}")


def main():
    global FX
    FX = setup()
    lwtest.run_tests([
        test_health_ready_reload, test_not_ready, test_targets, test_profiles_list, test_profile_formats,
        test_merge, test_diff, test_series, test_leaks_alerts, test_metrics, test_limits_and_methods,
        test_server_limits, test_web_config_tls_and_basic_auth, test_listen_errors,
        test_ipv6, test_bad_input_never_500, test_concurrent_clients, test_clean_shutdown,
    ])


if __name__ == "__main__":
    main()
