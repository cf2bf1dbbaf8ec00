#!/usr/bin/env python3
"""test_agent_preload.py — LD_PRELOAD=libleakwatch-agent.so into an unmodified
C program (tests/agent_programs/plain_service.c, built without the agent):
every endpoint is served, configured only by LEAKWATCH_* variables; "off"
disables the server; the program still shuts down cleanly.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

AGENT = os.path.join(t.LIB, "libleakwatch-agent.so")
PROG = os.path.join(t.BIN, "agent_plain_service")
MIB = 1 << 20


def rows_by_name(top):
    return {r["name"]: r for r in t.pprof_top_rows(top)}


def test_all_endpoints():
    out = subprocess.run(["ldd", PROG], capture_output=True, text=True).stdout
    t.check("leakwatch" not in out, "the test program is not linked with the agent")
    port = t.free_port()
    d = t.tempdir()
    p = t.start([PROG, "6", "8"], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}",
                                        "LEAKWATCH_HEAP_RATE": "1"}, log=os.path.join(d, "plain.log"))
    base = f"http://127.0.0.1:{port}/debug/pprof/"
    t.wait_http(base, proc=p)
    t.wait_until(lambda: "ready" in open(p.log_path).read(), 30, "the program to be ready")

    top = t.go_tool_pprof("-top", base + "goroutine")
    rows = rows_by_name(top)
    t.check("plain_blocked_worker" in rows and t.pprof_value(rows["plain_blocked_worker"]["cum"]) == 6,
            f"6 threads in plain_blocked_worker ({rows.get('plain_blocked_worker')})")
    t.check("main" in rows, "main thread present")

    top = t.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", base + "heap")
    rows = rows_by_name(top)
    want = 8 * MIB + 8 * 8  # 8 buffers + the calloc'd pointer array, exact at rate 1
    t.check_eq(t.pprof_value(rows["plain_retain_memory"]["flat"]), float(want),
               "plain_retain_memory inuse_space at rate 1")

    top = t.go_tool_pprof("-top", base + "threadcreate")
    rows = rows_by_name(top)
    t.check(t.pprof_value(rows["main"]["cum"]) == 6, "threadcreate: main created 6 threads")
    top = t.go_tool_pprof("-top", base + "allocs")
    t.check("Type: alloc_space" in top, "allocs served")

    status, _, body = t.http(base + "profile?seconds=1", timeout=60)
    t.check_eq(status, 200, "CPU profile status")
    path = os.path.join(d, "cpu.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    t.check("Type: cpu" in t.go_tool_pprof("-top", path), "CPU profile parses")

    for ep, want_start in (("", "<html>"), ("goroutine?debug=1", "goroutine profile: total "),
                           ("goroutine?debug=2", "goroutine "), ("heap?debug=1", "heap profile: "),
                           ("threadcreate?debug=1", "threadcreate profile: total 6"),
                           ("symbol", "num_symbols: 1"), ("cmdline", PROG)):
        status, _, body = t.http(base + ep)
        t.check(status == 200 and body.decode().startswith(want_start),
                f"/debug/pprof/{ep}: {status} {body[:40]!r} starts with {want_start!r}")
    # The agent's threads must not take the host's SIGTERM (the program
    # sigwait()s for it): they block it.
    agent_threads = 0
    for tid in os.listdir(f"/proc/{p.pid}/task"):
        try:
            with open(f"/proc/{p.pid}/task/{tid}/status") as f:
                st = dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)
        except (FileNotFoundError, ProcessLookupError):
            continue  # a connection thread of the agent's server that has just ended
        if st["Name"].startswith("MHD"):
            agent_threads += 1
            t.check(int(st["SigBlk"], 16) & (1 << (15 - 1)) != 0, f"agent thread {tid} blocks SIGTERM")
    t.check(agent_threads >= 1, f"{agent_threads} agent threads checked")
    status, hdr, _ = t.http(base + "goroutine?seconds=x")
    t.check_eq((status, hdr.get("X-Go-Pprof")), (400, "1"), "bad seconds")
    t.check_eq(t.stop(p), 0, "the program exits 0 on SIGTERM with the agent loaded")


def test_off_and_bad_env():
    d = t.tempdir()
    log = os.path.join(d, "off.log")
    p = t.start([PROG, "2", "1"], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": "off",
                                        "LEAKWATCH_HEAP_RATE": "lots"}, log=log)
    t.wait_until(lambda: "ready" in open(log).read(), 30, "the program to be ready")
    time.sleep(0.3)
    text = open(log).read()
    print(text)
    t.check("ignoring LEAKWATCH_HEAP_RATE=lots" in text, "a bad rate is reported, not fatal")
    t.check(p.poll() is None, "the program keeps running")
    t.check_eq(t.stop(p), 0, "exit code")
    # LEAKWATCH_CPU_PROFILE=0 refuses CPU profiles like an unavailable profiler.
    port = t.free_port()
    p = t.start([PROG, "1", "1"], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}",
                                        "LEAKWATCH_CPU_PROFILE": "0"}, log=os.path.join(d, "nocpu.log"))
    base = f"http://127.0.0.1:{port}/debug/pprof/"
    t.wait_http(base, proc=p)
    status, hdr, body = t.http(base + "profile?seconds=1")
    t.check_eq((status, hdr.get("X-Go-Pprof"), body.decode()),
               (500, "1", "Could not enable CPU profiling: cpu profiling disabled\n"), "CPU profiling off")
    t.check_eq(t.stop(p), 0, "exit code")
    # Default address taken by someone else: the host must not die.
    port = t.free_port()
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        log2 = os.path.join(d, "busy.log")
        p = t.start([PROG, "1", "1"], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}"},
                    log=log2)
        t.wait_until(lambda: "ready" in open(log2).read(), 30, "the program to be ready")
        text = open(log2).read()
        t.check("Address already in use" in text, f"bind failure reported: {text.strip()!r}")
        t.check_eq(t.stop(p), 0, "exit code with the address in use")


def test_many_descriptors():
    """A busy server has more than FD_SETSIZE (1024) descriptors open, so
    the agent's connections get descriptors past it: select(2) cannot
    watch those and libmicrohttpd reset every connection (seen when
    leakwatchd, scraping 1000 targets, served its own profiles). The
    agent's server polls instead."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        print(f"skipped: RLIMIT_NOFILE hard limit {hard} keeps descriptors under 1300")
        return
    port = t.free_port()
    d = t.tempdir()
    log = os.path.join(d, "fds.log")
    p = t.start([PROG, "1", "1", "0", "1200"], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}"},
                log=log)
    t.wait_until(lambda: "ready" in open(log).read(), 30, "the program to be ready")
    text = open(log).read()
    t.check("descriptors up to" in text and int(text.split("descriptors up to ")[1].split()[0]) >= 1200,
            f"the program holds descriptors past 1200: {text.strip()!r}")
    base = f"http://127.0.0.1:{port}/debug/pprof/"
    for ep in ("", "heap", "goroutine?debug=1"):
        status, _, body = t.http(base + ep, timeout=30)
        t.check_eq(status, 200, f"/debug/pprof/{ep} with 1200 descriptors open")
    t.check("plain_retain_memory" in t.go_tool_pprof("-top", base + "heap"), "heap profile readable")
    t.check_eq(t.stop(p), 0, "exit code")


def test_thousands_of_threads():
    port = t.free_port()
    d = t.tempdir()
    p = t.start([PROG, "1500", "1"], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}"},
                log=os.path.join(d, "many.log"))
    base = f"http://127.0.0.1:{port}/debug/pprof/"
    t.wait_http(base, proc=p)
    t.wait_until(lambda: "ready" in open(p.log_path).read(), 60, "1500 threads started")

    def blocked():
        rows = rows_by_name(t.go_tool_pprof("-top", base + "goroutine"))
        n = t.pprof_value(rows["plain_blocked_worker"]["cum"]) if "plain_blocked_worker" in rows else 0
        print(f"threads in plain_blocked_worker: {n}")
        return n == 1500.0
    # "ready" comes once the threads are created; on a loaded machine some
    # are still on their way into read(2): wait for all 1500.
    t.wait_until(blocked, 60, "1500 threads in plain_blocked_worker", interval=1)
    status, _, body = t.http(base + "goroutine?debug=2", timeout=60)
    text = body.decode()
    t.check_eq(text.count("plain_blocked_worker(...)"), 1500, "debug=2 stacks of the 1500 threads")
    t.check_eq(text.count("stack unavailable"), 0, "every thread answered the capture signal")
    t.check_eq(t.stop(p), 0, "exit code")


def test_sleeping_threads_grouped():
    """Sleeping threads are not signalled (nanosleep would return early) but
    scanned; identical sleepers still group under one stack."""
    port = t.free_port()
    p = t.start([PROG, "0", "0", "6"], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}"},
                log=os.path.join(t.tempdir(), "sleepers.log"))
    base = f"http://127.0.0.1:{port}/debug/pprof/"
    t.wait_http(base, proc=p)
    t.wait_until(lambda: "ready" in open(p.log_path).read(), 30, "the program to be ready")

    def asleep():
        rows = rows_by_name(t.go_tool_pprof("-top", base + "goroutine"))
        print(f"plain_sleeping_worker: {rows.get('plain_sleeping_worker')}")
        return "plain_sleeping_worker" in rows and t.pprof_value(rows["plain_sleeping_worker"]["cum"]) == 6
    # The sleepers are created before "ready" but may not be in sleep(3) yet.
    t.wait_until(asleep, 30, "6 threads in plain_sleeping_worker", interval=0.5)
    status, _, body = t.http(base + "goroutine?debug=1")
    records = body.decode().split("\n", 1)[1].split("\n\n")
    groups = [g for g in records if "plain_sleeping_worker" in g]
    heads = [g.strip().splitlines()[0] for g in groups]
    print(heads)
    t.check(len(groups) == 1 and heads[0].startswith("6 @"), "the 6 sleepers form one group")
    t.check('"stack":"scanned"' in groups[0], "their stacks are labelled scanned")
    t.check_eq(t.stop(p), 0, "exit code")


def test_cxx_program():
    prog = os.path.join(t.BIN, "agent_cxx_service")
    if not os.path.exists(prog):
        print("skip: no C++ compiler, agent_cxx_service not built")
        return
    port = t.free_port()
    p = t.start([prog], env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}",
                             "LEAKWATCH_HEAP_RATE": "1"}, log=os.path.join(t.tempdir(), "cxx.log"))
    base = f"http://127.0.0.1:{port}/debug/pprof/"
    t.wait_http(base, proc=p)
    t.wait_until(lambda: "ready" in open(p.log_path).read(), 30, "the C++ program to be ready")
    top = t.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", base + "heap")
    print(top)
    rows = rows_by_name(top)
    t.check("operator new(unsigned long)" in rows, "operator new is the allocating frame, demangled")
    fill = rows.get("cxx::Cache::fill(int)")
    t.check(fill is not None and t.pprof_value(fill["cum"]) >= 4 * MIB,
            f"cxx::Cache::fill(int) holds >= 4 MiB ({fill})")
    top = t.go_tool_pprof("-top", "-sample_index=alloc_objects", base + "heap")
    rows = rows_by_name(top)
    t.check("cxx_churn()" in rows and t.pprof_value(rows["cxx_churn()"]["cum"]) == 10000,
            "10000 new[] in cxx_churn() counted at rate 1")
    top = t.go_tool_pprof("-top", "-sample_index=inuse_objects", base + "heap")
    t.check("cxx_churn()" not in rows_by_name(top), "delete[] freed every cxx_churn() block")
    t.check_eq(t.stop(p), 0, "exit code")


if __name__ == "__main__":
    t.run_tests([test_all_endpoints, test_off_and_bad_env, test_many_descriptors, test_thousands_of_threads,
                 test_sleeping_threads_grouped, test_cxx_program])
