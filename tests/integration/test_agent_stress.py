#!/usr/bin/env python3
"""test_agent_stress.py — the agent under a malloc storm (LD_PRELOAD into
tests/agent_programs/malloc_stress.c, built without the agent): 8 threads x
2M mixed malloc/calloc/realloc/free/posix_memalign/aligned_alloc operations,
blocks freed by other threads than allocated them, worker threads exiting
and being replaced, a thread forking children that allocate and exec
/bin/true. At rate 1 (every allocation sampled) the heap profile's inuse of
stress_worker must equal the program's live data exactly; at the default
rate (512 KiB) within 4 standard deviations of the sampling error (the
program computes sigma from its live block sizes). No crash, no deadlock (bounded
wait), every child exits 0.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

AGENT = os.path.join(t.LIB, "libleakwatch-agent.so")
WORKER = "stress_worker"


def run_stress(rate, threads=8, ops=2000000, gens=4, deadline=240):
    port = t.free_port()
    d = t.tempdir()
    log = os.path.join(d, "stress.log")
    start = time.time()
    p = t.start([os.path.join(t.BIN, "agent_malloc_stress"), str(threads), str(ops), str(gens)],
                env={"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}",
                     "LEAKWATCH_HEAP_RATE": str(rate), "LEAKWATCH_QUIET": "1"}, log=log)

    def live_line():
        if p.poll() is not None:
            raise t.TestFailure(f"stress exited with {p.returncode}:\n{t.log_tail(p)}")
        with open(log) as f:
            for line in f:
                if line.startswith("LIVE "):
                    return line.split()
        return None
    fields = t.wait_until(live_line, deadline, f"the stress run at rate {rate} to finish (deadlock?)")
    took = time.time() - start
    live_bytes, live_count = int(fields[1]), int(fields[2])
    forks, failed, sigma = int(fields[4]), int(fields[6]), float(fields[8])
    print(f"FIGURE stress rate {rate}: {threads}x{ops} ops in {took:.1f}s, live {live_bytes} B in "
          f"{live_count} blocks, {forks} forks")
    t.check(forks > 0, f"{forks} children forked during the run")
    t.check_eq(failed, 0, "children that failed (allocating after fork, exec)")
    url = f"http://127.0.0.1:{port}/debug/pprof/heap"
    space = t.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", url)
    objects = t.go_tool_pprof("-top", "-sample_index=inuse_objects", url)
    print(space)
    rows_s = {r["name"]: r for r in t.pprof_top_rows(space)}
    rows_o = {r["name"]: r for r in t.pprof_top_rows(objects)}
    t.check(WORKER in rows_s, f"{WORKER} in the heap profile")
    got_bytes = t.pprof_value(rows_s[WORKER]["cum"])
    got_count = t.pprof_value(rows_o[WORKER]["cum"])
    rc = t.stop(p)
    t.check_eq(rc, 0, "stress exit code after SIGTERM")
    return live_bytes, live_count, got_bytes, got_count, sigma


def test_rate_1_exact():
    live_bytes, live_count, got_bytes, got_count, _ = run_stress(1)
    t.check_eq(int(got_bytes), live_bytes, "inuse_space of stress_worker at rate 1 == live bytes")
    t.check_eq(int(got_count), live_count, "inuse_objects of stress_worker at rate 1 == live blocks")


def test_default_rate():
    live_bytes, _, got_bytes, _, sigma = run_stress(524288)
    err = got_bytes - live_bytes
    print(f"FIGURE stress heap estimate at 512 KiB: {err / live_bytes * 100:+.1f}% "
          f"({err / sigma:+.2f} sigma, sigma {sigma / live_bytes * 100:.1f}%)")
    t.check(abs(err) <= 4 * sigma, f"inuse_space of stress_worker {got_bytes:.0f} within 4 sigma "
            f"({4 * sigma:.0f} B) of the live bytes {live_bytes}")


if __name__ == "__main__":
    t.run_tests([test_rate_1_exact, test_default_rate])
