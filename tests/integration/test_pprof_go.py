#!/usr/bin/env python3
"""test_pprof_go.py — the pprof codec against real Go profiles and `go tool pprof`.

A real Go service (tests/peers/gosvc, built at test time) serves
net/http/pprof. For its goroutine, heap, allocs, threadcreate and CPU
profiles, lwpprof-tool (our codec) must agree with `go tool pprof`:
per-sample-type totals equal those of `go tool pprof -raw`; a decode ->
encode round trip shows the same `-top` total and top rows; our heap diff
(before/after retaining known buffers) matches both the retained bytes and
`go tool pprof -diff_base`; two processes of the same program at different
addresses (a non-PIE and a PIE build) give the same normalized stacks; bad
inputs fail with a clear message and no sanitizer report.
"""
import gzip
import os
import random
import re
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest  # noqa: E402
from lwtest import check, check_close, check_eq  # noqa: E402

TOOL = os.path.join(lwtest.BIN, "lwpprof-tool")
SAMPLE_LINE = re.compile(r"^\s*(-?\d+(?:\s+-?\d+)*):(?:\s|$)")


def tool(*args, ok=True):
    """Run lwpprof-tool; returns (returncode, stdout, stderr)."""
    r = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=120)
    no_sanitizer = "Sanitizer" not in r.stderr and "runtime error" not in r.stderr
    check(no_sanitizer, f"lwpprof-tool {args[0]}: no sanitizer report")
    if not no_sanitizer:
        print(r.stderr)
    if ok and r.returncode != 0:
        raise lwtest.TestFailure(f"lwpprof-tool {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.returncode, r.stdout, r.stderr


def our_totals(path):
    _, out, _ = tool("totals", path)
    totals = {}
    for line in out.splitlines():
        name, value = line.rsplit(" ", 1)
        totals[name] = int(value)
    return totals


def go_top_totals(path, types):
    """Per sample type totals from the `go tool pprof -top` total line, in
    base units (-unit=B / -unit=ns) so the printed number is exact."""
    totals = {}
    for t in types:
        name, unit = t.split("/")
        base = {"bytes": "B", "nanoseconds": "ns"}.get(unit, "minimum")
        text = lwtest.go_tool_pprof("-top", f"-sample_index={name}", f"-unit={base}", path)
        total = lwtest.pprof_top_total(text)
        m = re.match(r"^-?\d+", total)
        check(m is not None and total[m.end():] in ("", "B", "ns"), f"exact total {total!r}")
        totals[t] = int(m.group(0))
    return totals


def our_stacked_totals(path, n_types):
    """Totals over samples that have a stack (go tool pprof -raw omits
    samples without locations, e.g. a goroutine caught without a stack)."""
    _, out, _ = tool("stacks", path)
    totals = [0] * n_types
    for line in out.splitlines():
        _, values, frames = line.split("\t")
        if frames:
            for i, v in enumerate(values.split(",")):
                totals[i] += int(v)
    return totals


def go_raw_totals(path):
    """Per sample type totals summed from `go tool pprof -raw`."""
    text = lwtest.go_tool_pprof("-raw", path)
    lines = text.splitlines()
    start = lines.index("Samples:")
    types = lines[start + 1].split()
    totals = [0] * len(types)
    for line in lines[start + 2:]:
        if line.startswith("Locations"):
            break
        m = SAMPLE_LINE.match(line)
        if m:
            for i, v in enumerate(m.group(1).split()):
                totals[i] += int(v)
    return dict(zip(types, totals))


def go_top(path, sample_type, *extra):
    return lwtest.go_tool_pprof("-top", "-nodefraction=0", f"-sample_index={sample_type}", *extra, path)


def top_rows(text, n=10):
    """(flat, cum, name) of the first n rows of a -top table."""
    rows, started = [], False
    for line in text.splitlines():
        if line.strip().startswith("flat") and "cum" in line:
            started = True
            continue
        if started and line.strip():
            parts = line.split()
            rows.append((parts[0], parts[3], " ".join(parts[5:])))
    return rows[:n]


def fetch(base, path, dest):
    status, _, body = lwtest.http(base + path, timeout=60)
    check_eq(status, 200, f"GET {path}")
    with open(dest, "wb") as f:
        f.write(body)
    return dest


def sample_types(totals):
    return [k.split("/")[0] for k in totals]


def test_real_profiles():
    """Totals equal go tool pprof -raw; round trip keeps -top total and rows."""
    work = lwtest.tempdir()
    proc, base = lwtest.start_gosvc(["-cpu-burn"], log_dir=work)
    lwtest.http(base + "/leak/goroutine?n=7")
    lwtest.http(base + "/leak/substring?n=3")
    lwtest.http(base + "/retain?n=5&size=65536")
    profiles = {
        "goroutine": "/debug/pprof/goroutine",
        "heap": "/debug/pprof/heap",
        "allocs": "/debug/pprof/allocs",
        "threadcreate": "/debug/pprof/threadcreate",
        "cpu": "/debug/pprof/profile?seconds=1",
    }
    for name, path in profiles.items():
        src = fetch(base, path, os.path.join(work, f"{name}.pb.gz"))
        ours = our_totals(src)
        theirs = go_top_totals(src, ours)
        print(f"{name}: ours {ours}")
        print(f"{name}: go   {theirs}")
        check_eq(ours, theirs, f"{name}: totals per sample type vs go tool pprof -top total line")
        check(sum(ours.values()) > 0, f"{name}: profile is not empty")
        raw = go_raw_totals(src)
        check_eq(our_stacked_totals(src, len(ours)), list(raw.values()),
                 f"{name}: totals of samples with a stack vs go tool pprof -raw")

        rt = os.path.join(work, f"{name}.rt.pb.gz")
        tool("roundtrip", src, rt)
        check_eq(go_top_totals(rt, ours), theirs, f"{name}: round trip totals (go tool pprof -top)")
        check_eq(go_raw_totals(rt), raw, f"{name}: round trip totals (go tool pprof -raw)")
        for st in sample_types(ours):
            a, b = go_top(src, st), go_top(rt, st)
            check_eq(lwtest.pprof_top_total(b), lwtest.pprof_top_total(a),
                     f"{name}/{st}: round trip -top total")
            check_eq(top_rows(b), top_rows(a), f"{name}/{st}: round trip -top top-10 rows")
            # Our own renderer against go tool pprof on the same file.
            _, mine, _ = tool("top", src, st)
            check_eq(lwtest.pprof_top_total(mine), lwtest.pprof_top_total(a),
                     f"{name}/{st}: our top total vs go tool pprof")
            check_eq([r[2] for r in top_rows(mine)], [r[2] for r in top_rows(a)],
                     f"{name}/{st}: our top-10 functions vs go tool pprof")
        _, folded, _ = tool("folded", src)
        check(len(folded.splitlines()) > 0, f"{name}: folded stacks rendered")
        _, js, _ = tool("json", src)
        check(js.startswith('{"sample_types":'), f"{name}: json rendered")
    # The leak shows: blockedForever holds the 7 leaked goroutines.
    _, folded, _ = tool("folded", os.path.join(work, "goroutine.pb.gz"))
    leaked = sum(int(l.rsplit(" ", 1)[1]) for l in folded.splitlines() if "main.blockedForever" in l)
    check_eq(leaked, 7, "goroutines blocked in main.blockedForever (folded)")
    lwtest.stop(proc)


def heap_diff(extra_args, n, size, rel):
    work = lwtest.tempdir()
    # GOGC=off: no collection starts inside the allocation loop (a GC that
    # starts there allocates runtime objects that the heap profile charges
    # to the allocating line); the service's explicit runtime.GC() calls
    # still make the profile current.
    proc, base_url = lwtest.start_gosvc(["-churn-every", "0", *extra_args], log_dir=work,
                                        env={"GOGC": "off"})
    lwtest.http(base_url + "/gc")
    before = fetch(base_url, "/debug/pprof/heap", os.path.join(work, "before.pb.gz"))
    status, _, body = lwtest.http(base_url + f"/retain?n={n}&size={size}")
    check_eq(status, 200, "retain")
    print("retain:", body.decode().strip())
    after = fetch(base_url, "/debug/pprof/heap", os.path.join(work, "after.pb.gz"))
    lwtest.stop(proc)

    diff = os.path.join(work, "diff.pb.gz")
    tool("diff", before, after, diff)
    totals = our_totals(diff)
    want = n * size
    print(f"diff totals {totals}, retained {want} bytes")
    check_close(totals["inuse_space/bytes"], want, rel, "diff inuse_space vs retained bytes")
    a, b = our_totals(before), our_totals(after)
    for k in totals:
        check_eq(totals[k], b[k] - a[k], f"diff {k} = after - before")
    for st in ("inuse_space", "inuse_objects", "alloc_space"):
        ours = go_top(diff, st)
        theirs = lwtest.go_tool_pprof("-top", "-nodefraction=0", f"-sample_index={st}",
                                      f"-diff_base={before}", after)
        check_eq(lwtest.pprof_top_total(ours), lwtest.pprof_top_total(theirs),
                 f"diff {st}: -top total of our diff vs go tool pprof -diff_base")
        check_eq(top_rows(ours), top_rows(theirs),
                 f"diff {st}: -top rows of our diff vs go tool pprof -diff_base")
        _, mine, _ = tool("top", diff, st)
        check_eq(lwtest.pprof_top_total(mine), lwtest.pprof_top_total(theirs),
                 f"diff {st}: our top total (the base's, as pprof) vs go tool pprof -diff_base")
        check_eq([r[2] for r in top_rows(mine)], [r[2] for r in top_rows(theirs)],
                 f"diff {st}: our top-10 functions vs go tool pprof -diff_base")
    # The buffers' own allocation site: leaf frame main.retainBuffers at the
    # line of `make([]byte, size)` (the runtime may allocate below or beside
    # it, e.g. when a GC starts its workers).
    src = os.path.join(lwtest.SOURCE_DIR, "tests", "peers", "gosvc", "main.go")
    with open(src) as f:
        make_line = next(i for i, l in enumerate(f, 1) if "b := make([]byte, size)" in l)
    index = list(totals).index("inuse_space/bytes")
    _, out, _ = tool("stacks", diff)
    retained = 0
    for line in out.splitlines():
        _, values, frames = line.split("\t")
        leaf = frames.split(";")[0]
        if leaf.startswith("main.retainBuffers "):
            value = int(values.split(",")[index])
            print(f"  leaf {leaf}: inuse_space {value}")
            if leaf.endswith(f"main.go:{make_line}"):
                retained += value
    return retained


def test_heap_diff_exact():
    """-memprofilerate 1: every allocation is recorded, the diff is exact."""
    retained = heap_diff(["-memprofilerate", "1"], 64, 65536, 0.01)
    check_eq(retained, 64 * 65536, "inuse_space allocated in main.retainBuffers, in the diff")


def test_heap_diff_sampled():
    """Go's default sampling (512 KiB): within sampling error (1 MiB objects
    are sampled with p = 0.86; 32 of them give a ~7% standard error)."""
    retained = heap_diff([], 32, 1 << 20, 0.30)
    check_close(retained, 32 << 20, 0.30, "sampled inuse_space allocated in main.retainBuffers")


def build_pie(work):
    """gosvc built as a position-independent executable (different addresses)."""
    src = os.path.join(lwtest.SOURCE_DIR, "tests", "peers", "gosvc")
    out = os.path.join(work, "gosvc-pie")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local")
    r = subprocess.run(["go", "build", "-buildmode=pie", "-o", out, "."], cwd=src, env=env,
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"go build -buildmode=pie gosvc: {r.stderr.strip()}")
    return out


def stack_map(path):
    """hash -> (frames, values) from lwpprof-tool stacks, merged per hash."""
    _, out, _ = tool("stacks", path)
    stacks = {}
    for line in out.splitlines():
        h, values, frames = line.split("\t")
        old = stacks.get(h, (frames, 0))
        if old[0] != frames:
            check_eq(old[0], frames, f"stack {h}: one hash, one stack")
        stacks[h] = (frames, old[1] + int(values))
    return stacks


def blocked_address(path):
    text = lwtest.go_tool_pprof("-raw", path)
    for line in text.splitlines():
        if "main.blockedForever" in line:
            return line.split()[1]
    raise lwtest.TestFailure(f"no main.blockedForever location in {path}")


def test_normalized_identity():
    """The same program twice, at different addresses: stacks match one to one."""
    work = lwtest.tempdir()
    pie = build_pie(work)
    p1, b1 = lwtest.start_gosvc(["-churn-every", "0"], log_dir=work)
    port = lwtest.free_port()
    p2 = lwtest.start([pie, "-addr", f"127.0.0.1:{port}", "-churn-every", "0"],
                      log=os.path.join(work, "pie.log"))
    b2 = f"http://127.0.0.1:{port}"
    lwtest.wait_http(b2 + "/debug/pprof/", proc=p2)
    for b in (b1, b2):
        lwtest.http(b + "/leak/goroutine?n=5")
        lwtest.http(b + "/leak/goroutine?n=3")
    files = []
    for attempt in range(10):
        files = [fetch(b, "/debug/pprof/goroutine", os.path.join(work, f"g{i}-{attempt}.pb.gz"))
                 for i, b in enumerate((b1, b2))]
        s1, s2 = stack_map(files[0]), stack_map(files[1])
        if s1 == s2:
            break
        print(f"attempt {attempt}: {len(s1)} vs {len(s2)} stacks differ, retrying")
    a1, a2 = blocked_address(files[0]), blocked_address(files[1])
    print(f"main.blockedForever at {a1} (non-PIE) and {a2} (PIE)")
    check(a1 != a2, f"the two processes run the code at different addresses ({a1} vs {a2})")
    print(f"{len(s1)} stacks in process 1, {len(s2)} in process 2")
    check_eq(sorted(s1), sorted(s2), "stack hashes match one to one")
    check(s1 == s2, "frames and goroutine counts per stack match")
    blocked = [v for f, v in s1.values() if f.startswith("runtime.gopark")
               and "main.blockedForever" in f]
    check_eq(sum(blocked), 8, "8 leaked goroutines in main.blockedForever in both")
    merged = os.path.join(work, "merged.pb.gz")
    tool("merge", merged, *files)
    t1, t2, tm = our_totals(files[0]), our_totals(files[1]), our_totals(merged)
    check_eq(tm["goroutine/count"], t1["goroutine/count"] + t2["goroutine/count"], "merged total")
    check_eq(len(stack_map(merged)), len(s1), "merging the two processes combines every stack")
    check_eq(go_top_totals(merged, tm), tm, "merged profile read by go tool pprof")
    lwtest.stop(p1)
    lwtest.stop(p2)


def test_bad_inputs():
    """Bad input fails with a clear message (exit 1), never a crash."""
    work = lwtest.tempdir()
    proc, base = lwtest.start_gosvc([], log_dir=work)
    good = fetch(base, "/debug/pprof/heap", os.path.join(work, "heap.pb.gz"))
    lwtest.stop(proc)
    data = open(good, "rb").read()
    rng = random.Random(42)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    inner = b"".join([comp.compress(zeros) for _ in range(300)] + [comp.flush()])
    bomb = gzip.compress(inner, 9)
    cases = {
        "truncated.pb.gz": (data[: len(data) // 2], "unexpected end of stream"),
        "random.bin": (bytes(rng.getrandbits(8) for _ in range(4096)), "malformed"),
        "garbage.gz": (gzip.compress(b"<html>not a profile</html>\n" * 10), "protobuf: malformed"),
        "bomb.gz.gz": (bomb, "decompressed size exceeds 268435456 bytes"),
        "empty": (b"", "empty input"),
    }
    print(f"bomb: 300 MiB of zeros gzipped twice is {len(bomb)} bytes")
    for name, (content, want) in cases.items():
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(content)
        for cmd in ("totals", "roundtrip"):
            args = [cmd, path] + ([os.path.join(work, "out.pb.gz")] if cmd == "roundtrip" else [])
            rc, _, err = tool(*args, ok=False)
            print(f"{name} {cmd}: exit {rc}: {err.strip()}")
            check_eq(rc, 1, f"{name}: lwpprof-tool {cmd} exits 1")
            check(want in err, f"{name}: message contains {want!r}")
    rc, _, err = tool("totals", os.path.join(work, "missing.pb.gz"), ok=False)
    check(rc == 1 and "No such file" in err, f"missing file: {err.strip()}")
    rc, _, err = tool("bogus", good, ok=False)
    check_eq(rc, 2, "unknown subcommand exits 2 (usage)")


if __name__ == "__main__":
    lwtest.run_tests([test_real_profiles, test_heap_diff_exact, test_heap_diff_sampled,
                      test_normalized_identity, test_bad_inputs])
