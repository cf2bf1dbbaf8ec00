#!/usr/bin/env python3
"""test_agent_heap.py — the agent's heap and allocs profiles on leaky-demo.

After /leak/substring x 100 (each keeps a 1 MiB buffer alive), the heap
profile's inuse_space at the default rate (512 KiB, Poisson-sampled and
unsampled like Go) must be within ±15% of the true retained bytes, and the
top inuse stack must be the demo's leaking function. Also: allocs' default
sample type, Go's heap text format, -list with source lines, the mapping
flags, and a delta heap profile.
"""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

LEAK_FN = "leak_substring_retain"
MIB = 1 << 20


def rows_by_name(top):
    return {r["name"]: r for r in t.pprof_top_rows(top)}


def test_substring_accuracy():
    proc, app, pprof = t.start_leaky_demo()
    for _ in range(100):
        status, _, _ = t.http(app + "/leak/substring")
        t.check(status == 200, "/leak/substring answered 200") if status != 200 else None
    _, stats = t.http_json(app + "/stats")
    true_bytes = stats["substring_bytes"]
    t.check_eq(true_bytes, 100 * MIB, "true retained bytes reported by the demo")
    d = t.tempdir()
    status, hdr, body = t.http(pprof + "/debug/pprof/heap")
    t.check_eq(status, 200, "heap status")
    t.check_eq(hdr.get("Content-Type"), "application/octet-stream", "heap content type")
    t.check_eq(hdr.get("Content-Disposition"), 'attachment; filename="heap"', "heap disposition")
    path = os.path.join(d, "heap.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    top = t.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", path)
    print(top)
    total = t.pprof_value(t.pprof_top_total(top))
    t.check_close(total, true_bytes, 0.15, "heap inuse_space total vs true retained bytes")
    rows = t.pprof_top_rows(top)
    t.check_eq(rows[0]["name"], LEAK_FN, "top inuse function")
    t.check_close(t.pprof_value(rows[0]["flat"]), true_bytes, 0.15, f"{LEAK_FN} inuse_space")
    print(f"FIGURE heap accuracy: inuse_space {total:.0f} vs true {true_bytes} "
          f"({(total - true_bytes) / true_bytes * 100:+.1f}%)")

    top = t.go_tool_pprof("-top", "-sample_index=inuse_objects", path)
    rows = rows_by_name(top)
    t.check_close(t.pprof_value(rows[LEAK_FN]["flat"]), 100, 0.15, f"{LEAK_FN} inuse_objects")

    raw = t.go_tool_pprof("-raw", path)
    t.check("PeriodType: space bytes" in raw, "period type space/bytes")
    t.check("Period: 524288" in raw, "period = default rate 524288")
    t.check(re.search(r"alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes",
                      raw) is not None, "Go's four heap sample types, in Go's order")
    maps = [ln for ln in raw.split("Mappings", 1)[1].splitlines() if "leaky-demo" in ln]
    print(maps)
    t.check(len(maps) == 1 and "[FN][FL][LN]" in maps[0],
            "leaky-demo mapping has functions, filenames and line numbers")

    src = os.path.join(t.SOURCE_DIR, "agent", "examples")
    lst = t.go_tool_pprof("-list", LEAK_FN, "-sample_index=inuse_space", "-source_path", src, path)
    print(lst)
    t.check("malloc(SUBSTRING_BUFFER_BYTES)" in lst, "-list shows the allocating line")
    t.stop(proc)


def test_allocs_and_text():
    proc, app, pprof = t.start_leaky_demo()
    for _ in range(20):
        t.http(app + "/leak/substring")
        t.http(app + "/churn")
    top = t.go_tool_pprof("-top", pprof + "/debug/pprof/allocs")
    print(top)
    t.check("Type: alloc_space" in top, "allocs defaults to alloc_space")
    t.check(LEAK_FN in [r["name"] for r in t.pprof_top_rows(top)], f"{LEAK_FN} in allocs")

    status, hdr, body = t.http(pprof + "/debug/pprof/heap?debug=1")
    text = body.decode()
    t.check_eq(hdr.get("Content-Type"), "text/plain; charset=utf-8", "debug=1 content type")
    first = text.splitlines()[0]
    t.check(re.match(r"^heap profile: \d+: \d+ \[\d+: \d+\] @ heap/1048576$", first) is not None,
            f"Go heap text header {first!r}")
    rec = [g for g in text.split("\n\n") if LEAK_FN in g][0].strip().splitlines()
    hdr_line = rec[0] if not rec[0].startswith("heap profile") else rec[1]
    t.check(re.match(r"^\d+: \d+ \[\d+: \d+\] @( 0x[0-9a-f]+)+$", hdr_line) is not None,
            f"record header {hdr_line!r}")
    # go tool pprof reads the legacy text format too.
    d = t.tempdir()
    path = os.path.join(d, "heap.txt")
    with open(path, "wb") as f:
        f.write(body)
    top = t.go_tool_pprof("-top", "-sample_index=inuse_space", path)
    t.check("Showing nodes" in top, "go tool pprof parses the debug=1 text")
    t.stop(proc)


def test_heap_delta():
    proc, app, pprof = t.start_leaky_demo()

    def leak_later():
        time.sleep(0.5)
        for _ in range(20):
            t.http(app + "/leak/substring")
    th = threading.Thread(target=leak_later)
    th.start()
    status, hdr, body = t.http(pprof + "/debug/pprof/heap?seconds=2", timeout=60)
    th.join()
    t.check_eq(status, 200, "heap delta status")
    d = t.tempdir()
    path = os.path.join(d, "delta.pb.gz")
    with open(path, "wb") as f:
        f.write(body)
    top = t.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", path)
    print(top)
    rows = rows_by_name(top)
    t.check(LEAK_FN in rows, f"{LEAK_FN} in the delta")
    t.check_close(t.pprof_value(rows[LEAK_FN]["flat"]), 20 * MIB, 0.5,
                  "delta inuse_space of 20 leaks (20 samples: loose bound)")
    t.stop(proc)


if __name__ == "__main__":
    t.run_tests([test_substring_accuracy, test_allocs_and_text, test_heap_delta])
