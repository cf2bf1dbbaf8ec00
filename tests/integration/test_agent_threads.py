#!/usr/bin/env python3
"""test_agent_threads.py — the agent's goroutine (threads) and threadcreate
profiles on leaky-demo: 25 leaked threads are visible by function name in
`go tool pprof -top`, grouped in debug=1, with "created by" in debug=2, and a
delta profile (?seconds=N) counts only the threads leaked during the window.
"""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

LEAK_FN = "leak_thread_blocked_on_pipe"


def demo():
    proc, app, pprof = t.start_leaky_demo()
    for _ in range(25):
        status, _, body = t.http(app + "/leak/thread")
        t.check(status == 200, f"/leak/thread answered {status}: {body!r}")
    return proc, app, pprof


def rows_by_name(top):
    return {r["name"]: r for r in t.pprof_top_rows(top)}


def test_goroutine_top():
    proc, app, pprof = demo()
    top = t.go_tool_pprof("-top", pprof + "/debug/pprof/goroutine")
    print(top)
    rows = rows_by_name(top)
    t.check(LEAK_FN in rows, f"{LEAK_FN} is a row of -top")
    t.check(t.pprof_value(rows[LEAK_FN]["cum"]) >= 25, f"{LEAK_FN} cum {rows[LEAK_FN]['cum']} >= 25")
    t.check("main" in rows, "the main thread (which predates the agent) is included")
    traces = t.go_tool_pprof("-traces", pprof + "/debug/pprof/goroutine")
    t.check(LEAK_FN in traces and "read" in traces, "-traces shows the leaked thread blocked in read")
    t.check("wait:[read]" in traces.replace(" ", "") or "wait:read" in traces.replace(" ", ""),
            "-traces shows the wait label")
    src = os.path.join(t.SOURCE_DIR, "agent", "examples")
    lst = t.go_tool_pprof("-list", LEAK_FN, "-source_path", src, pprof + "/debug/pprof/goroutine")
    print(lst)
    t.check("read(fd, &c, 1)" in lst, "-list shows the source line the threads wait on")
    t.stop(proc)


def test_goroutine_text():
    proc, app, pprof = demo()
    status, hdr, body = t.http(pprof + "/debug/pprof/goroutine?debug=1")
    text = body.decode()
    t.check_eq(status, 200, "debug=1 status")
    t.check_eq(hdr.get("Content-Type"), "text/plain; charset=utf-8", "debug=1 content type")
    first = text.splitlines()[0]
    t.check(re.match(r"^goroutine profile: total \d+$", first) is not None, f"first line {first!r}")
    total = int(first.split()[-1])
    t.check(total >= 27, f"total {total} >= 25 leaked + main + server threads")
    groups = text.split("\n", 1)[1].split("\n\n")
    leak_groups = [g for g in groups if LEAK_FN in g]
    t.check(len(leak_groups) >= 1, "a group holds the leaked threads")
    head = leak_groups[0].strip().splitlines()
    m = re.match(r"^(\d+) @( 0x[0-9a-f]+)+$", head[0])
    t.check(m is not None, f"group header {head[0]!r} is 'N @ 0x...'")
    t.check(int(m.group(1)) >= 25, f"group count {m.group(1)} >= 25")
    frame = [ln for ln in head if LEAK_FN in ln][0]
    t.check(re.match(r"^#\t0x[0-9a-f]+\t" + LEAK_FN + r"\+0x[0-9a-f]+\t.*leaky_demo\.c:\d+$", frame)
            is not None, f"frame line {frame!r} is '#\\t0x..\\tfunc+0x..\\tfile:line'")

    status, _, body = t.http(pprof + "/debug/pprof/goroutine?debug=2")
    text = body.decode()
    t.check_eq(status, 200, "debug=2 status")
    blocks = [b for b in text.split("\n\n") if LEAK_FN in b]
    t.check(len(blocks) >= 25, f"{len(blocks)} debug=2 blocks with {LEAK_FN} >= 25")
    b = blocks[0].splitlines()
    print("\n".join(b))
    t.check(re.match(r"^goroutine \d+ \[sleeping, read, \d+ (seconds|minutes), \"leak-pipe\"\]:$", b[0])
            is not None, f"block header {b[0]!r} has state, wait, age and name")
    t.check(any(ln.startswith("created by leak_thread_start in goroutine ") for ln in b),
            "block has 'created by leak_thread_start'")
    t.check(any("leaky_demo.c:" in ln and ln.startswith("\t") for ln in b), "frames have file:line")
    t.stop(proc)


def test_threadcreate_and_delta():
    proc, app, pprof = demo()
    top = t.go_tool_pprof("-top", pprof + "/debug/pprof/threadcreate")
    rows = rows_by_name(top)
    t.check("leak_thread_start" in rows and t.pprof_value(rows["leak_thread_start"]["cum"]) >= 25,
            f"threadcreate: leak_thread_start created >= 25 threads ({rows.get('leak_thread_start')})")
    status, _, body = t.http(pprof + "/debug/pprof/threadcreate?debug=1")
    t.check(body.decode().startswith("threadcreate profile: total "), "threadcreate debug=1 header")

    # A delta goroutine profile over 3 s during which 5 more threads leak.
    def leak_later():
        time.sleep(1.0)
        for _ in range(5):
            t.http(app + "/leak/thread")
    th = threading.Thread(target=leak_later)
    th.start()
    d = t.tempdir()
    status, hdr, body = t.http(pprof + "/debug/pprof/goroutine?seconds=3", timeout=60)
    th.join()
    t.check_eq(status, 200, "delta status")
    t.check_eq(hdr.get("Content-Disposition"), 'attachment; filename="goroutine-delta"', "delta filename")
    path = os.path.join(d, "delta.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    top = t.go_tool_pprof("-top", path)
    print(top)
    rows = rows_by_name(top)
    t.check(LEAK_FN in rows, f"{LEAK_FN} in the delta")
    t.check_eq(t.pprof_value(rows[LEAK_FN]["cum"]), 5.0, "threads leaked during the delta window")
    t.stop(proc)


def test_leak_every_timer():
    """--leak-every leaks with no traffic; /leak/timer threads show up by name."""
    proc, app, pprof = t.start_leaky_demo(["--leak-every=100ms", "--leak=timer"])

    def leaked():
        _, stats = t.http_json(app + "/stats")
        return stats["timers"] >= 8 and stats
    stats = t.wait_until(leaked, 30, "8 timers leaked by --leak-every")
    top = t.go_tool_pprof("-top", pprof + "/debug/pprof/goroutine")
    rows = rows_by_name(top)
    n = t.pprof_value(rows.get("leak_timer_ticker_loop", {"cum": "0"})["cum"])
    t.check(n >= 8, f"leak_timer_ticker_loop threads {n} >= 8 (demo says {stats['timers']})")
    status, _, body = t.http(pprof + "/debug/pprof/goroutine?debug=2")
    blocks = [b for b in body.decode().split("\n\n") if "leak_timer_ticker_loop" in b]
    # A thread leaked during the dump may not have registered its creation yet.
    created = sum("created by leak_timer_never_stopped" in b for b in blocks)
    t.check(created >= 8 and created >= len(blocks) - 1,
            f"{created} of {len(blocks)} ticker threads 'created by leak_timer_never_stopped'")
    t.stop(proc)


if __name__ == "__main__":
    t.run_tests([test_goroutine_top, test_goroutine_text, test_threadcreate_and_delta,
                 test_leak_every_timer])
