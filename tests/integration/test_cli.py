#!/usr/bin/env python3
"""test_cli.py — the `leakwatch` CLI against lwapi-testd serving real gosvc
profiles (see test_api_common.py): tables by default, --json parsed here,
-o writing a profile go tool pprof reads, and clear errors with non-zero
exits (server down, bad flag, API error)."""
import json
import os
import subprocess

import lwtest
from lwtest import check, check_eq
from test_api_common import CLI, setup

FX = None


def run(*args, url=True, want_rc=0):
    argv = [CLI, *(["--url", FX.base] if url else []), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    print(f"$ leakwatch {' '.join(args)} -> exit {r.returncode}")
    check(r.returncode == want_rc,
          f"exit {r.returncode} (want {want_rc}); stdout {r.stdout[-800:]!r}; stderr {r.stderr[-800:]!r}")
    if want_rc == 0:
        check("AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr,
              f"no sanitizer output: {r.stderr[-500:]}")
    return r


def test_targets():
    r = run("targets")
    lines = r.stdout.splitlines()
    check(lines[0].split()[:3] == ["JOB", "INSTANCE", "PROFILE"], f"table header: {lines[0]!r}")
    check(any(l.split()[:2] == ["svc", FX.instance] for l in lines[1:]), f"svc row in:\n{r.stdout}")
    check(any(l.split()[:2] == ["svc2", FX.instance] for l in lines[1:]), "svc2 row")
    data = json.loads(run("targets", "--json").stdout)
    jobs = sorted(t["labels"]["job"] for t in data["activeTargets"])
    check_eq(jobs, ["svc", "svc2"], "targets --json")


def test_profiles():
    r = run("profiles", "--instance", FX.instance, "--job", "svc", "--type", "goroutine", "--since", "4h")
    rows = [l.split() for l in r.stdout.splitlines()[1:]]
    check_eq([int(x[0]) for x in rows], [FX.ids["g1"], FX.ids["g2"], FX.ids["g3"]], "profile ids in the table")
    check(r.stdout.splitlines()[0].split()[:3] == ["ID", "TIME", "JOB"], "profiles header")
    check(f"goroutine={FX.totals[FX.ids['g2']][0]}" in r.stdout, "totals column shows goroutine=N")
    data = json.loads(run("--json", "profiles", "--type", "heap", "--job", "svc").stdout)
    check_eq([p["id"] for p in data], [FX.ids["h1"], FX.ids["h2"]], "profiles --json (global flag first)")
    r = run("profiles", "--type", "heap", "--since", "1m")
    check_eq(r.stdout.strip(), "no profiles", "empty listing")


def test_diff():
    g1, g2 = FX.ids["g1"], FX.ids["g2"]
    want = FX.totals[g2][0] - FX.totals[g1][0]
    base_args = ["diff", "--instance", FX.instance, "--job", "svc", "--type", "goroutine",
                 "--from", str(FX.t0), "--to", str(FX.t0 + 600)]
    r = run(*base_args, "--top", "5")
    check("runtime.gopark" in r.stdout and "flat%" in r.stdout, f"diff table:\n{r.stdout}")
    check_eq(r.stdout.splitlines()[0],
             f"Diff: profile {g2} minus base profile {g1} (leakwatch profiles lists them)", "diff names the profiles")
    rows = [l for l in r.stdout.splitlines() if "%" in l and "Showing" not in l and "flat%" not in l]
    check(0 < len(rows) <= 5, f"--top 5 rows: {len(rows)}")
    data = json.loads(run("--json", *base_args).stdout)
    check_eq(data["totals"], [want], "diff --json totals = g2 - g1")
    out = os.path.join(FX.dir, "diff.pb.gz")
    r = run(*base_args, "-o", out)
    check(os.path.exists(out) and open(out, "rb").read(2) == b"\x1f\x8b", f"-o wrote a gzip file: {r.stdout}")
    top = lwtest.go_tool_pprof("-top", out)
    check("runtime.gopark" in top, "go tool pprof reads the -o file")
    data = json.loads(run("--json", "diff", "--base-id", str(g1), "--id", str(g2)).stdout)
    check_eq(data["totals"], [want], "diff --base-id/--id")
    data = json.loads(run("--json", "merge", "--job", "svc", "--type", "goroutine",
                          "--from", str(FX.t0 - 1), "--to", str(FX.t0 + 1201)).stdout)
    check_eq(data["totals"], [sum(FX.totals[FX.ids[n]][0] for n in ("g1", "g2", "g3"))], "merge --json")


def test_series():
    r = run("series", "--job", "svc", "--signal", "goroutines", "--from", str(FX.t0 - 1), "--to", str(FX.t0 + 1201))
    rows = [l.split() for l in r.stdout.splitlines()[1:]]
    check_eq([float(x[3]) for x in rows], [float(FX.totals[FX.ids[n]][0]) for n in ("g1", "g2", "g3")],
             "series values")


def test_leaks_alerts():
    r = run("leaks")
    check("main.blockedForever (main.go:69)" in r.stdout and "goroutines" in r.stdout, f"leaks table:\n{r.stdout}")
    data = json.loads(run("leaks", "--json").stdout)
    check_eq(data[0]["growth"], 35, "leaks --json")
    r = run("alerts")
    line = [l for l in r.stdout.splitlines() if l.startswith("GoroutineLeak")]
    check(line and "firing" in line[0] and "svc" in line[0], f"alerts table:\n{r.stdout}")
    data = json.loads(run("alerts", "--json").stdout)
    check_eq(data["alerts"][0]["state"], "firing", "alerts --json")


def test_errors():
    port = lwtest.free_port()
    r = run("--url", f"http://127.0.0.1:{port}", "targets", url=False, want_rc=1)
    check_eq(r.stderr.strip(), f"leakwatch: cannot reach leakwatchd at http://127.0.0.1:{port}: connection refused",
             "server down message")
    r = run("profiles", "--bogus", "1", want_rc=2)
    check("unknown flag '--bogus'" in r.stderr, f"bad flag message: {r.stderr!r}")
    r = run("frobnicate", want_rc=2)
    check("unknown command 'frobnicate'" in r.stderr, f"bad command message: {r.stderr!r}")
    r = run("profiles", "--type", want_rc=2)
    check("flag --type needs a value" in r.stderr, f"missing value: {r.stderr!r}")
    r = run("--url", "ftp://x", "targets", url=False, want_rc=2)
    check("--url must start with http://" in r.stderr, f"bad url: {r.stderr!r}")
    r = run("profiles", "--since", "1h", "--from", "now", want_rc=2)
    check("--since and --from exclude each other" in r.stderr, r.stderr)
    r = run("diff", "--instance", FX.instance, "--job", "svc", "--type", "goroutine", "--from", "yesterday", want_rc=1)
    check_eq(r.stderr.strip(),
             'leakwatchd: invalid parameter "from": cannot parse "yesterday" as a time (want RFC3339, Unix '
             'seconds, "now" or "now-30m") (HTTP 400)', "API error message")
    r = run("profiles", "--instance", "nope:1", want_rc=1)
    check('unknown target: instance "nope:1" (HTTP 404)' in r.stderr, r.stderr)
    r = run("--help")
    check("usage: leakwatch" in r.stdout, "--help prints usage")
    r = run("check", "config", want_rc=2)
    check("usage: leakwatch check config FILE" in r.stderr, r.stderr)


def test_check_config():
    daemon = os.path.join(lwtest.BIN, "leakwatchd")
    if not os.path.exists(daemon):
        r = run("check", "config", "/nonexistent.yml", want_rc=1)
        check("cannot run" in r.stderr and "leakwatchd" in r.stderr, f"no daemon: {r.stderr!r}")
        return
    good = os.path.join(FX.dir, "good.yml")
    with open(good, "w") as f:
        f.write("scrape_configs:\n  - job_name: svc\n    static_configs:\n      - targets: ['127.0.0.1:1']\n")
    r = run("check", "config", good)
    bad = os.path.join(FX.dir, "bad.yml")
    with open(bad, "w") as f:
        f.write("global:\n  scrape_interval: 5x\n")
    r = subprocess.run([CLI, "check", "config", bad], capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and "scrape_interval" in (r.stdout + r.stderr),
          f"bad config -> exit {r.returncode}: {r.stdout}{r.stderr}")


def main():
    global FX
    FX = setup()
    lwtest.run_tests([test_targets, test_profiles, test_diff, test_series, test_leaks_alerts, test_errors,
                      test_check_config])


if __name__ == "__main__":
    main()
