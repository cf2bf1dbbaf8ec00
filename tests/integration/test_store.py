#!/usr/bin/env python3
"""test_store.py — storage/ against real Go profiles.

Starts the shared Go service (tests/peers/gosvc), makes it leak goroutines
and substrings, fetches its goroutine and heap profiles, stores them with
build/bin/lwstore-tool and rebuilds them from the database. `go tool pprof
-top` (by function and by line) of the original and of the rebuilt profile
must agree row for row; the blocked goroutines' stack must name
main.blockedForever as its top frame; the same heap profile stored 100
times must grow the database by less than 10x the first one; and a series
of successive real profiles must cost at most 20% of their .pb.gz bytes
(after the first few have filled the shared dictionary).
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

TOOL = os.path.join(t.BIN, "lwstore-tool")
N_BLOCKED = 25

state = {}


def tool(*args, check=True):
    r = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise t.TestFailure(f"lwstore-tool {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def fetch(path):
    status, _, body = t.http(state["base"] + path)
    t.check_eq(status, 200, f"GET {path}")
    return body


def save(name, data):
    path = os.path.join(state["dir"], name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def setup():
    state["dir"] = t.tempdir("store-")
    # Every allocation sampled: realistic, large heap profiles.
    proc, base = t.start_gosvc(extra_args=["-memprofilerate", "1"], log_dir=state["dir"])
    state["proc"], state["base"] = proc, base
    fetch(f"/leak/goroutine?n={N_BLOCKED}")
    fetch("/leak/substring?n=3")
    fetch("/spread?depth=5")


def top_rows(path, *flags):
    """The rows of `go tool pprof -top` (header lines dropped), inline markers removed."""
    out = t.go_tool_pprof("-top", *flags, path)
    rows, started = [], False
    for line in out.splitlines():
        if line.strip().startswith("flat") and "cum" in line:
            started = True
            continue
        if started and line.strip():
            rows.append(re.sub(r"\s*\(inline\)$", "", line.rstrip()))
    return t.pprof_top_total(out), rows


def compare_top(orig, rebuilt, *flags):
    what = " ".join(flags) or "default"
    tot_a, rows_a = top_rows(orig, *flags)
    tot_b, rows_b = top_rows(rebuilt, *flags)
    print(f"-top {what}: original total {tot_a}, {len(rows_a)} rows; rebuilt total {tot_b}, {len(rows_b)} rows")
    for row in rows_a[:5]:
        print("   ", row)
    t.check_eq(tot_b, tot_a, f"total ({what})")
    # Rows with equal flat values are ordered by name in both; compare as sets
    # to stay independent of tie order, and the leading functions in order.
    only_a = sorted(set(rows_a) - set(rows_b))
    only_b = sorted(set(rows_b) - set(rows_a))
    t.check(sorted(rows_a) == sorted(rows_b),
            f"all {len(rows_a)} -top rows equal ({what}); only in original: {only_a[:3]}, "
            f"only in rebuilt: {only_b[:3]}")
    t.check_eq(t.pprof_top_functions("\n".join(["flat cum"] + rows_b), 5),
               t.pprof_top_functions("\n".join(["flat cum"] + rows_a), 5), f"top 5 functions ({what})")


def roundtrip(kind, data, flag_sets):
    db = os.path.join(state["dir"], f"roundtrip-{kind}.db")
    orig = save(f"{kind}.pb.gz", data)
    pid = tool("ingest", db, orig, kind).stdout.split()[0]
    rebuilt = os.path.join(state["dir"], f"{kind}-rebuilt.pb.gz")
    tool("dump", db, pid, rebuilt)
    for flags in flag_sets:
        compare_top(orig, rebuilt, *flags)
    stats = tool("stats", db).stdout
    print("stats:", stats.strip())
    t.check('"integrity":"ok"' in stats, "integrity_check ok")
    return db, pid


def test_goroutine_roundtrip():
    data = fetch("/debug/pprof/goroutine")
    db, pid = roundtrip("goroutine", data, [(), ("-lines",)])
    top = tool("top", db, pid).stdout
    blocked = [line for line in top.splitlines() if "\tmain.blockedForever\t" in line]
    print("stacks with top frame main.blockedForever:", blocked)
    t.check(len(blocked) == 1, "one stack has main.blockedForever as its top frame")
    t.check(int(blocked[0].split("\t")[1]) >= N_BLOCKED,
            f"its value {blocked[0].split(chr(9))[1]} >= {N_BLOCKED} blocked goroutines")


def test_heap_roundtrip():
    data = fetch("/debug/pprof/heap")
    roundtrip("heap", data, [("-sample_index=inuse_space",), ("-sample_index=alloc_space",),
                             ("-sample_index=alloc_objects", "-lines")])


def ingest_growth(db, path, kind, n):
    r = tool("ingest", db, path, kind, str(n))
    m = re.search(r"db grew (-?\d+) bytes", r.stderr)
    t.check(m is not None, f"lwstore-tool reported the growth: {r.stderr.strip()}")
    print(r.stderr.strip())
    return int(m.group(1))


def test_dedup_real_heap():
    path = save("heap-dedup.pb.gz", fetch("/debug/pprof/heap"))
    # Create both databases first so the growth excludes the empty schema.
    for name in ("one.db", "hundred.db"):
        tool("retain", os.path.join(state["dir"], name), "0", "0")
    g1 = ingest_growth(os.path.join(state["dir"], "one.db"), path, "heap", 1)
    g100 = ingest_growth(os.path.join(state["dir"], "hundred.db"), path, "heap", 100)
    t.check(g100 < 10 * g1, f"100 copies grew the DB by {g100} B < 10 x {g1} B")


def test_series_cost():
    """Successive real goroutine and heap profiles of one target: DB bytes per profile vs
    .pb.gz bytes. The first profiles fill the shared dictionary (strings, functions,
    stacks); the steady state after them is what a long series (the bench's 1000
    profiles) costs per profile."""
    db = os.path.join(state["dir"], "series.db")
    tool("retain", db, "0", "0")
    warmup, n = 10, 40
    raw = {"goroutine": [], "heap": []}
    grew = {"goroutine": [], "heap": []}
    for i in range(warmup + n):
        if i % 10 == 0:
            fetch("/leak/goroutine?n=1")  # the service changes a little now and then
        fetch("/churn")
        for kind in ("goroutine", "heap"):
            path = save(f"series-{kind}-{i}.pb.gz", fetch(f"/debug/pprof/{kind}"))
            raw[kind].append(os.path.getsize(path))
            grew[kind].append(ingest_growth(db, path, kind, 1))
    steady_raw = steady_grew = 0
    for kind in raw:
        r_all, g_all = sum(raw[kind]), sum(grew[kind])
        r_st, g_st = sum(raw[kind][warmup:]), sum(grew[kind][warmup:])
        steady_raw += r_st
        steady_grew += g_st
        print(f"{kind}: {warmup + n} profiles, {r_all} B scraped (.pb.gz), DB grew {g_all} B "
              f"({100 * g_all / r_all:.1f}%); after {warmup} warm-up profiles: "
              f"{g_st / n:.0f} B/profile for {r_st / n:.0f} B scraped = {100 * g_st / r_st:.1f}%")
    ratio = steady_grew / steady_raw
    t.check(ratio <= 0.20, f"steady-state series costs {100 * ratio:.1f}% <= 20% of the scraped bytes")


if __name__ == "__main__":
    setup()
    t.run_tests([test_goroutine_roundtrip, test_heap_roundtrip, test_dedup_real_heap,
                 test_series_cost])
