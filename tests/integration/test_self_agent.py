#!/usr/bin/env python3
"""test_self_agent.py — leakwatchd's own agent (--agent.enable).

Sanitized builds (LW_SANITIZE=ON, as in CI) cannot host the agent:
- sanitized_refuses: --agent.enable exits 1 with "this leakwatchd was built
  with sanitizers; the agent is not available"; --help lists the flags.

Plain builds (leakwatchd links libleakwatch-agent):
- off_by_default: without --agent.enable nothing listens on
  --agent.listen-address.
- self_scrape: with --agent.enable leakwatchd serves its own /debug/pprof on
  --agent.listen-address; its goroutine profile lists leakwatchd's threads
  (main in coll_run_once's loop, the signal thread, scrape workers) and
  leakwatchd scrapes itself (--target=its own agent): goroutine and heap
  profiles stored; the heap profile has samples of leakwatchd's allocations.
- bad_address: an unusable --agent.listen-address is a clear error, exit 1.
"""
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

LEAKWATCHD = os.path.join(t.BIN, "leakwatchd")


def linked_agent():
    out = subprocess.run(["ldd", LEAKWATCHD], capture_output=True, text=True).stdout
    return "libleakwatch-agent" in out


def run_once(args, timeout=60):
    r = subprocess.run([LEAKWATCHD, *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def test_help_lists_flags():
    rc, out = run_once(["--help"])
    t.check_eq(rc, 0, "--help exit code")
    for flag in ("--agent.enable", "--agent.listen-address", "127.0.0.1:6061"):
        t.check(flag in out, f"--help mentions {flag}")


def test_sanitized_refuses():
    d = t.tempdir("self-agent-")
    rc, out = run_once(["--agent.enable", f"--storage.path={os.path.join(d, 'lw.db')}",
                        f"--web.listen-address=127.0.0.1:{t.free_port()}"])
    print(f"--agent.enable in a sanitized build: exit {rc}: {out.strip()}")
    t.check_eq(rc, 1, "exit code")
    t.check("this leakwatchd was built with sanitizers; the agent is not available" in out,
            "the error names the reason")
    t.check(not os.path.exists(os.path.join(d, "lw.db")), "nothing was opened or created")


def start(args, d, name):
    log = os.path.join(d, name + ".log")
    p = t.start([LEAKWATCHD, "--log.level=debug", f"--storage.path={os.path.join(d, name + '.db')}",
                 f"--web.listen-address=127.0.0.1:{t.free_port()}", *args], log=log)
    t.wait_until(lambda: p.poll() is not None or "leakwatchd ready" in open(log, errors="replace").read(),
                 60, "leakwatchd to start")
    if p.poll() is not None:
        raise t.TestFailure(f"leakwatchd exited ({p.returncode}):\n{t.log_tail(p)}")
    return p


def test_off_by_default():
    d = t.tempdir("self-agent-")
    port = t.free_port()
    p = start([f"--agent.listen-address=127.0.0.1:{port}", "--target=http://127.0.0.1:1"], d, "off")
    t.check(t.connection_refused(f"http://127.0.0.1:{port}/debug/pprof/"), "no agent server without --agent.enable")
    t.check_eq(t.stop(p, signal.SIGTERM, timeout=30), 0, "exit code")


def test_self_scrape():
    d = t.tempdir("self-agent-")
    port = t.free_port()
    base = f"http://127.0.0.1:{port}"
    p = start(["--agent.enable", f"--agent.listen-address=127.0.0.1:{port}", f"--target={base}",
               "--scrape.interval=1s"], d, "self")
    log = p.log_path
    text = open(log, errors="replace").read()
    t.check("agent serving leakwatchd's own /debug/pprof" in text, "startup logs the agent")
    status, _, body = t.http(base + "/debug/pprof/goroutine?debug=2")
    t.check_eq(status, 200, "own goroutine?debug=2 status")
    dump = body.decode("utf-8", "replace")
    threads = len(re.findall(r"^goroutine \d+", dump, re.M))
    print(f"leakwatchd's own thread dump: {threads} threads")
    for fn in ("main", "signal_thread"):
        t.check(re.search(r"\b%s\b" % fn, dump) is not None, f"thread dump shows {fn}")
    t.check(threads >= 3, f"several threads ({threads})")
    top = t.go_tool_pprof("-top", base + "/debug/pprof/goroutine")
    names = {r["name"] for r in t.pprof_top_rows(top)}
    print("goroutine profile functions:", sorted(names)[:20])
    t.check("main" in names and "signal_thread" in names, "go tool pprof: leakwatchd's functions")

    instance = f"127.0.0.1:{port}"

    def scraped():
        if p.poll() is not None:
            raise t.TestFailure("leakwatchd exited:\n" + t.log_tail(p))
        lines = open(log, errors="replace").read().splitlines()
        ok = {m.group(1) for ln in lines if 'msg="scrape ok"' in ln and f"instance={instance}" in ln
              for m in [re.search(r"profile=(\w+)", ln)] if m}
        return {"goroutine", "heap"} <= ok
    t.wait_until(scraped, 60, "leakwatchd to scrape itself")
    status, _, body = t.http(base + "/debug/pprof/heap")
    t.check_eq(status, 200, "own heap profile status")
    path = os.path.join(d, "heap.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    top = t.go_tool_pprof("-top", "-unit=B", "-sample_index=alloc_space", path)
    total = t.pprof_top_total(top)
    print(f"leakwatchd's own heap: alloc_space total {total}")
    t.check(t.pprof_value(total) > 0, "heap sampling is on with --agent.enable")
    failed = [ln for ln in open(log, errors="replace").read().splitlines()
              if 'msg="scrape failed"' in ln and f"instance={instance}" in ln]
    t.check_eq(failed, [], "no failed self-scrapes")
    t.check_eq(t.stop(p, signal.SIGTERM, timeout=60), 0, "exit code after SIGTERM")
    t.check(t.connection_refused(base + "/debug/pprof/"), "the agent's server is gone after exit")


def test_bad_address():
    d = t.tempdir("self-agent-")
    rc, out = run_once(["--agent.enable", "--agent.listen-address=nonsense",
                        f"--storage.path={os.path.join(d, 'lw.db')}",
                        f"--web.listen-address=127.0.0.1:{t.free_port()}"])
    print(f"bad address: exit {rc}: {out.strip()}")
    t.check_eq(rc, 1, "exit code")
    t.check('invalid listen address \\"nonsense\\"' in out or 'invalid listen address "nonsense"' in out,
            "the error names the address")


if __name__ == "__main__":
    if t.SANITIZED or not linked_agent():
        print("sanitized build (or no agent linked): leakwatchd cannot host the agent; checking the "
              "refusal. The plain path runs in a plain build (LW_SANITIZE=OFF).")
        t.run_tests([test_help_lists_flags, test_sanitized_refuses] if t.SANITIZED else [test_help_lists_flags])
    else:
        t.run_tests([test_help_lists_flags, test_off_by_default, test_self_scrape, test_bad_address])
