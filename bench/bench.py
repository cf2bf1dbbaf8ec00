#!/usr/bin/env python3
"""bench.py — the benchmark driver behind bench/run (Python 3, stdlib only).

Every benchmark runs its subject and its baseline side by side, interleaved
round by round, so that machine noise (two shared cores) hits both alike;
each figure is a ratio per round, reported as min/median/max over rounds.
Times are CPU times of the measured process where the subject is a single
program (less sensitive to other load than wall time), throughputs where the
subject is a service under load.
"""
import argparse
import gzip
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = []  # (benchmark, figure, values list, unit, target text, verdict fn or None)
PROCS = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def stats(vals):
    return min(vals), statistics.median(vals), max(vals)


def row(bench, figure, vals, fmt, target=None, ok=None):
    """Record a figure; ok(median) -> bool decides the verdict."""
    ROWS.append({"benchmark": bench, "figure": figure, "values": list(vals), "fmt": fmt,
                 "target": target or "", "verdict": "" if ok is None else
                 ("MET" if ok(statistics.median(vals)) else "MISSED")})
    lo, med, hi = stats(vals)
    log(f"  {bench}: {figure} = {fmt % med} (min {fmt % lo}, max {fmt % hi}) {target or ''}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, env=None, log_path=None, stdout=None):
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(args, env=env, stdout=stdout or out, stderr=out, start_new_session=True)
    PROCS.append(p)
    return p


def stop(p, timeout=15):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


def http_get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_http(url, timeout=30, proc=None):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            http_get(url, timeout=2)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {timeout}s")


def run(args, env=None, timeout=900, check=True):
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def kv(line):
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


# ---- 1. agent heap sampling: malloc microbenchmark -------------------------

def bench_malloc(a):
    ring = os.path.join(a.bin, "malloc-ring")
    fwd = os.path.join(a.bin, "forward-preload.so")
    agent = os.path.join(a.build, "lib", "libleakwatch-agent.so")
    n = 2_000_000 if a.quick else 50_000_000
    n_rate1 = n // 50
    base = dict(os.environ, LEAKWATCH_AGENT_ADDR="off", LEAKWATCH_QUIET="1")
    variants = {
        "a_plain": ({}, n),
        "b_forward": ({"LD_PRELOAD": fwd}, n),
        "c_agent_default": ({"LD_PRELOAD": agent}, n),
        "d_agent_rate1": ({"LD_PRELOAD": agent, "LEAKWATCH_HEAP_RATE": "1"}, n_rate1),
    }
    ns = {k: [] for k in variants}
    log(f"malloc: {n} malloc/free of 16..1040 B in a ring of 4096, {a.repeats} rounds")
    names = list(variants)
    for r in range(a.repeats):
        order = names[r % 4:] + names[:r % 4]
        for k in order:
            extra, count = variants[k]
            out = run([ring, str(count)], env=dict(base, **extra)).stdout
            ns[k].append(float(kv(out)["ns_per_op"]))
    for k in names:
        row("malloc", f"{k} ns per malloc+free (CPU)", ns[k], "%.1f")
    row("malloc", "(b) forward / (a) plain", [b / p for b, p in zip(ns["b_forward"], ns["a_plain"])], "%.3f")
    row("malloc", "(c) agent default rate / (b) floor", [c / b for c, b in zip(ns["c_agent_default"], ns["b_forward"])],
        "%.3f", "<= 1.10", lambda m: m <= 1.10)
    row("malloc", "(d) agent rate 1 / (b) floor", [d / b for d, b in zip(ns["d_agent_rate1"], ns["b_forward"])], "%.1f",
        "report")

    # Callgrind: instructions per operation, from the difference of two runs
    # (startup cancels), noise-free.
    n1, n2 = (20_000, 120_000) if a.quick else (200_000, 1_200_000)
    ir = {}
    for k in names:
        extra, _ = variants[k]
        m1, m2 = (n1 // 20, n2 // 20) if k == "d_agent_rate1" else (n1, n2)
        counts = []
        for m in (m1, m2):
            out = run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", ring, str(m)],
                      env=dict(base, **extra), timeout=1800).stderr
            counts.append(int(re.search(r"Collected : (\d+)", out).group(1)))
        ir[k] = (counts[1] - counts[0]) / (m2 - m1)
    for k in names:
        row("malloc", f"{k} instructions per malloc+free (callgrind)", [ir[k]], "%.1f")
    row("malloc", "(c)/(b) instructions (callgrind)", [ir["c_agent_default"] / ir["b_forward"]], "%.3f",
        "<= 1.10", lambda m: m <= 1.10)
    row("malloc", "(d)/(b) instructions (callgrind)", [ir["d_agent_rate1"] / ir["b_forward"]], "%.1f", "report")


# ---- 2. agent on a real service: leaky-demo /churn under wrk ---------------

def wrk_rps(port, seconds, conns):
    out = run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
               f"http://127.0.0.1:{port}/churn"], timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not m or not n or errs:
        raise RuntimeError("wrk: " + out)
    return float(m.group(1)), int(n.group(1))


def bench_service(a):
    seconds = 2 if a.quick else 8
    demo = {"without_agent": os.path.join(a.bin, "leaky-demo-noagent"),
            "with_agent": os.path.join(a.build, "bin", "leaky-demo")}
    rps = {k: [] for k in demo}
    cpu_ms = {k: [] for k in demo}  # service CPU time per request
    log(f"service: leaky-demo /churn under wrk -t1 -c4 for {seconds}s, {a.repeats} rounds")
    for r in range(a.repeats):
        order = list(demo) if r % 2 == 0 else list(demo)[::-1]
        for k in order:
            port, pport = free_port(), free_port()
            p = start([demo[k], f"--listen=127.0.0.1:{port}", f"--pprof-addr=127.0.0.1:{pport}"],
                      env=dict(os.environ, LEAKWATCH_QUIET="1"))
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", proc=p)
                wrk_rps(port, 1, 4)  # warm up
                c0 = proc_cpu_s(p.pid)
                r_s, n_req = wrk_rps(port, seconds, 4)
                cpu_ms[k].append(1e3 * (proc_cpu_s(p.pid) - c0) / n_req)
                rps[k].append(r_s)
                if k == "with_agent":
                    heap = http_get(f"http://127.0.0.1:{pport}/debug/pprof/heap")
                    if len(heap) < 100:
                        raise RuntimeError("agent heap profile is empty")
            finally:
                stop(p)
    for k in demo:
        row("service", f"{k} requests/s", rps[k], "%.0f")
    row("service", "throughput with agent / without", [w / o for w, o in zip(rps["with_agent"], rps["without_agent"])],
        "%.3f", ">= 0.99", lambda m: m >= 0.99)
    for k in demo:
        row("service", f"{k} service CPU ms per request", cpu_ms[k], "%.3f")
    row("service", "CPU-bound throughput with agent / without (CPU per request, inverted)",
        [o / w for w, o in zip(cpu_ms["with_agent"], cpu_ms["without_agent"])], "%.3f", ">= 0.99",
        lambda m: m >= 0.99)


# ---- 3. CPU profiler at 100 Hz ---------------------------------------------

def bench_cpu(a):
    seconds = 2 if a.quick else 4
    spin = os.path.join(a.bin, "cpu-spin")
    rate = {"off": [], "on": []}
    log(f"cpu: cpu-spin {seconds}s of work, profiler off vs on, {a.repeats} rounds")
    for r in range(a.repeats):
        for k in (["off", "on"] if r % 2 == 0 else ["on", "off"]):
            out = run([spin, k, str(seconds)], env=dict(os.environ, LEAKWATCH_QUIET="1")).stdout
            f = kv(out)
            if k == "on" and int(f["profile_bytes"]) < 200:
                raise RuntimeError("cpu-spin: no profile received: " + out)
            rate[k].append(float(f["chunks_per_cpu_s"]))
    row("cpu", "work chunks per CPU second, profiler off", rate["off"], "%.1f")
    row("cpu", "work chunks per CPU second, profiler on (100 Hz)", rate["on"], "%.1f")
    row("cpu", "throughput profiler on / off", [x / y for x, y in zip(rate["on"], rate["off"])], "%.4f",
        ">= 0.99", lambda m: m >= 0.99)


# ---- 4. diff through the API vs go tool pprof ------------------------------

def gen_heap_profiles(a):
    d = os.path.join(a.work, "heapgen")
    if not os.path.isdir(d):
        os.makedirs(d)
        sizes = "300,1000,5000,33000"
        run([os.path.join(a.bin, "heapgen"), "-out", d, "-sizes", sizes, "-series", "3" if a.quick else "8",
             "-b", "33000"])
    return d


def count_samples(path):
    out = run(["go", "tool", "pprof", "-raw", path]).stdout
    body = out.split("Samples:", 1)[1].split("Locations", 1)[0]
    return sum(1 for line in body.splitlines() if re.match(r"^\s+-?\d+\s+-?\d+", line))


def totals(path):
    out = run([os.path.join(a_build(), "bin", "lwpprof-tool"), "totals", path]).stdout
    return dict(l.split() for l in out.splitlines() if l.strip())


_BUILD = [None]


def a_build():
    return _BUILD[0]


def bench_diff(a):
    d = gen_heap_profiles(a)
    pa, pb = os.path.join(d, "heap-33000.pb.gz"), os.path.join(d, "heap-b.pb.gz")
    na, nb = count_samples(pa), count_samples(pb)
    row("diff", "samples in base / new profile", [na], "%d")
    row("diff", "samples in new profile", [nb], "%d", ">= 30000", lambda m: m >= 30000)
    db = os.path.join(a.work, "diff.db")
    port = free_port()
    p = start([os.path.join(a.build, "bin", "lwapi-testd"), "--db", db, "--listen", f"127.0.0.1:{port}",
               "--ingest", f"bench,heapgen,heap,1000,{pa}", "--ingest", f"bench,heapgen,heap,1060,{pb}"],
              log_path=os.path.join(a.work, "lwapi-testd.log"))
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=p)
        ids = json.loads(http_get(f"http://127.0.0.1:{port}/api/v1/profiles?type=heap&from=0&to=2000"))
        url = f"http://127.0.0.1:{port}/api/v1/diff?base_id=%s&id=%s"
        rows = ids.get("data", ids)
        if isinstance(rows, dict):
            rows = rows.get("profiles", rows.get("result", []))
        id_list = sorted(r["id"] for r in rows)
        url = url % (id_list[0], id_list[1])
        api_out = os.path.join(a.work, "api-diff.pb.gz")
        with open(api_out, "wb") as f:
            f.write(http_get(url))  # warm up (page cache, first connection)
        go_out = os.path.join(a.work, "go-diff.pb.gz")
        t_api, t_go = [], []
        log(f"diff: {na} vs {nb} samples, API vs go tool pprof -proto -diff_base, {a.repeats} rounds")
        for r in range(a.repeats):
            t0 = time.perf_counter()
            body = http_get(url)
            t_api.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run(["go", "tool", "pprof", "-proto", "-output", go_out, "-diff_base", pa, pb])
            t_go.append(time.perf_counter() - t0)
        with open(api_out, "wb") as f:
            f.write(body)
    finally:
        stop(p)
    ta, tg = totals(api_out), totals(go_out)
    same = ta.get("inuse_space/bytes") == tg.get("inuse_space/bytes")
    log(f"  diff totals: API inuse_space {ta.get('inuse_space/bytes')}, go tool pprof {tg.get('inuse_space/bytes')}"
        f" ({'equal' if same else 'DIFFERENT'})")
    if not same:
        raise RuntimeError("diff totals differ between the API and go tool pprof")
    row("diff", "API /api/v1/diff seconds (wall)", t_api, "%.3f")
    row("diff", "go tool pprof -proto -diff_base seconds (wall)", t_go, "%.3f")
    row("diff", "speed-up API vs go tool pprof", [g / x for g, x in zip(t_go, t_api)], "%.1f",
        ">= 20", lambda m: m >= 20)


# ---- 5 + 6. ingest throughput and storage per profile ---------------------

def scrape_gosvc_series(a, n):
    d = os.path.join(a.work, "gosvc-series")
    if os.path.isdir(d):
        return d
    os.makedirs(d)
    port = free_port()
    p = start([os.path.join(a.bin, "gosvc"), "-addr", f"127.0.0.1:{port}", "-leak-every", "100ms",
               "-churn-every", "100ms"], log_path=os.path.join(a.work, "gosvc.log"))
    try:
        wait_http(f"http://127.0.0.1:{port}/debug/pprof/", proc=p)
        log(f"series: scraping {n} goroutine and heap profiles from gosvc")
        for i in range(n):
            if i % 5 == 0:
                http_get(f"http://127.0.0.1:{port}/churn")
            if i % 50 == 25:
                http_get(f"http://127.0.0.1:{port}/leak/substring")
            for typ, q in (("goroutine", ""), ("heap", "?gc=1")):
                with open(os.path.join(d, f"{typ}-{i:04d}.pb.gz"), "wb") as f:
                    f.write(http_get(f"http://127.0.0.1:{port}/debug/pprof/{typ}{q}"))
            time.sleep(0.01)
    finally:
        stop(p)
    return d


# leakwatchd's writer stores what gathers within 100 ms in one transaction,
# at most 64 profiles or 1 MiB of bodies (collector/scrape.c
# INGEST_BATCH_MAX, INGEST_BATCH_BYTES; lwstore-tool applies the byte bound
# too); under load a batch is full.
COLLECTOR_BATCH = 64


def store_bench(a, typ, files, tag, batch=1, warm=True):
    """lwstore-tool bench over files into a fresh database, batch profiles
    per transaction: returns the ingest % of inflate, the database's size
    after close (bytes), the scraped bytes and the tool's rates. warm: the
    tool first ingests the same files, untimed, into a scratch database, so
    the timed run meets every stack as new to its database but in a process
    whose allocator has served such profiles before (leakwatchd is a
    long-running process; inflate, the baseline, writes into one reused
    buffer). In a fresh process each large decoded profile lands on pages
    the kernel must first fault in (half the time of the cold class)."""
    db = os.path.join(a.work, f"ingest-{tag}.db")
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    out = run([os.path.join(a.build, "bin", "lwstore-tool"), "bench", "--batch", str(batch)]
              + (["--warm"] if warm else []) + [db, typ, "1"] + files).stdout
    m = re.search(r"decode\+store .*= ([\d.]+)% of inflate", out)
    pct = float(m.group(1)) if m else float("nan")  # nothing timed (one file)
    size = sum(os.path.getsize(db + sfx) for sfx in ("", "-wal") if os.path.exists(db + sfx))
    gz = sum(os.path.getsize(f) for f in files)
    rates = {k: float(v) for k, v in re.findall(r"^(inflate|decode|store)\s+(\S+) MB/s", out, re.M)}
    return pct, size, gz, rates


def bench_ingest(a):
    n = 100 if a.quick else 1000
    d = scrape_gosvc_series(a, n)
    hg = gen_heap_profiles(a)
    series = sorted(os.path.join(hg, f) for f in os.listdir(hg) if f.startswith("series-"))
    classes = [
        ("gosvc goroutine", "goroutine", sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("goroutine"))),
        ("gosvc heap", "heap", sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("heap"))),
        ("heapgen cold, all stacks new", "heap", [os.path.join(hg, f"heap-{k}.pb.gz") for k in (300, 1000, 5000, 33000)]
         + [os.path.join(hg, "heap-b.pb.gz")]),
        ("heapgen series of a 67k-sample profile", "heap", [os.path.join(hg, "heap-33000.pb.gz")] + series),
    ]
    log(f"ingest: lwstore-tool bench (decode + normalize + store vs zlib inflate), {a.repeats} rounds")
    grew_total, gz_total = 0, 0
    for name, typ, files in classes:
        sizes = sorted(os.path.getsize(f) for f in files)
        pcts, pcts1, inflate, ingest, ingest1, fresh = [], [], [], [], [], []
        grew = gz = 0
        for r in range(a.repeats):
            # Alternate the order: one profile per transaction, collector batches.
            for batch in ((1, COLLECTOR_BATCH) if r % 2 == 0 else (COLLECTOR_BATCH, 1)):
                pct, g, z, rates = store_bench(a, typ, files, re.sub(r"\W+", "-", name), batch)
                rate = 1.0 / (1.0 / rates["decode"] + 1.0 / rates["store"])
                if batch == 1:
                    pcts1.append(pct)
                    ingest1.append(rate)
                    inflate.append(rates["inflate"])
                    grew, gz = g, z
                else:
                    pcts.append(pct)
                    ingest.append(rate)
            if name.startswith("heapgen cold"):
                fresh.append(store_bench(a, typ, files, "cold-fresh", COLLECTOR_BATCH, warm=False)[0])
        label = f"{name} ({len(files)} profiles, {sizes[0] / 1024:.1f}..{sizes[-1] / 1024:.1f} KiB gz)"
        row("ingest", f"{label}: inflate MB/s raw", inflate, "%.1f")
        row("ingest", f"{label}: decode+store MB/s raw, one profile per transaction", ingest1, "%.1f")
        row("ingest", f"{label}: decode+store MB/s raw, collector batches (<= {COLLECTOR_BATCH})", ingest, "%.1f")
        row("ingest", f"{label}: ingest / inflate %, one profile per transaction", pcts1, "%.1f", "report")
        row("ingest", f"{label}: ingest / inflate %, collector batches", pcts, "%.1f", ">= 25%",
            lambda m: m >= 25)
        if fresh:
            row("ingest", f"{label}: ingest / inflate %, collector batches, fresh process (no warm-up)",
                fresh, "%.1f", "report")
        if name.startswith("gosvc"):
            # Per profile in a long series: the database with the whole
            # series minus the database with its first profile only (the
            # schema and the first keyframe), over the bytes of the others.
            _, first, first_gz, _ = store_bench(a, typ, files[:1], re.sub(r"\W+", "-", name) + "-first")
            row("storage", f"{name} series of {len(files)}: whole database file / scraped .pb.gz bytes %",
                [100.0 * grew / gz], "%.1f")
            row("storage", f"{name} series of {len(files)}: per profile stored / scraped % (marginal)",
                [100.0 * (grew - first) / (gz - first_gz)], "%.1f", "<= 20%", lambda m: m <= 20)
            row("storage", f"{name}: bytes stored per profile (marginal)", [(grew - first) / (len(files) - 1)],
                "%.0f", f"({gz / len(files):.0f} scraped)")
            grew_total += grew - first
            gz_total += gz - first_gz
    row("storage", "gosvc goroutine+heap series: per profile stored / scraped % (marginal)",
        [100.0 * grew_total / gz_total], "%.1f", "<= 20%", lambda m: m <= 20)


# ---- 7. scale: 1000 targets -------------------------------------------------

def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


SCRAPE_GRACE_S = 2.0


def bench_scale(a):
    n = 100 if a.quick else 1000
    duration = a.scale_seconds or (60 if a.quick else 300)
    interval = 10
    d = os.path.join(a.work, "scale")
    shutil.rmtree(d, ignore_errors=True)  # a reused --work directory: start from an empty database
    os.makedirs(d, exist_ok=True)
    ports_file = os.path.join(d, "ports")
    fleet = start([os.path.join(a.bin, "fakefleet"), "-n", str(n), "-ports", ports_file],
                  log_path=os.path.join(d, "fakefleet.log"))
    t_end = time.time() + 60
    while not os.path.exists(ports_file) and time.time() < t_end:
        time.sleep(0.1)
    time.sleep(0.2)
    with open(ports_file) as f:
        ports = [l.strip() for l in f if l.strip()]
    sizes = {typ: [len(http_get(f"http://127.0.0.1:{p}/debug/pprof/{typ}")) / 1024.0 for p in ports[:20]]
             for typ in ("goroutine", "heap")}
    cfg = os.path.join(d, "leakwatch.yml")
    with open(cfg, "w") as f:
        f.write(f"global:\n  scrape_interval: {interval}s\n  scrape_timeout: 5s\n"
                "scrape_configs:\n  - job_name: fleet\n    static_configs:\n      - targets:\n")
        for p in ports:
            f.write(f"          - 127.0.0.1:{p}\n")
    api_port = free_port()
    daemon = start([os.path.join(a.build, "bin", "leakwatchd"), f"--config.file={cfg}",
                    f"--storage.path={os.path.join(d, 'leakwatch.db')}", f"--web.listen-address=127.0.0.1:{api_port}",
                    "--log.level=warn"], log_path=os.path.join(d, "leakwatchd.log"))
    log(f"scale: leakwatchd scraping {n} targets x goroutine+heap every {interval}s for {duration}s")
    fleet_cpu0 = proc_cpu_s(fleet.pid)
    try:
        wait_http(f"http://127.0.0.1:{api_port}/-/healthy", proc=daemon)
        t0 = time.time()
        c0 = proc_cpu_s(daemon.pid)
        windows, last_t, last_c = [], t0, c0
        loads = []
        while time.time() - t0 < duration:
            time.sleep(interval)
            loads.append(os.getloadavg()[0])
            if daemon.poll() is not None:
                raise RuntimeError("leakwatchd died")
            t, c = time.time(), proc_cpu_s(daemon.pid)
            windows.append(100.0 * (c - last_c) / (t - last_t))
            last_t, last_c = t, c
        elapsed = last_t - t0
        cpu_avg = 100.0 * (last_c - c0) / elapsed
        rss_peak_kb = proc_status(daemon.pid, "VmHWM")
        # A scrape is counted once its profile is stored (up to the writer's
        # 100 ms batch window after it ends): give the scrapes that began
        # before the end SCRAPE_GRACE_S to be counted. Without it a series
        # whose slot fell in the last few hundred ms showed one scrape short
        # (29 of 30) while nothing was missed.
        time.sleep(SCRAPE_GRACE_S)
        metrics = http_get(f"http://127.0.0.1:{api_port}/metrics").decode()
        fleet_cpu = 100.0 * (proc_cpu_s(fleet.pid) - fleet_cpu0) / elapsed
    finally:
        stop(daemon, timeout=60)
        stop(fleet)
    ok = err = 0
    per = {}
    for m in re.finditer(r'^leakwatch_scrapes_total\{([^}]*)\} (\d+)', metrics, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        v = int(m.group(2))
        if labels.get("result") == "success":
            ok += v
            per[(labels.get("instance"), labels.get("profile", labels.get("type")))] = v
        else:
            err += v
    stored = re.search(r"^leakwatch_profiles_stored(?:\{[^}]*\})? (\d+)", metrics, re.M)
    stored = int(stored.group(1)) if stored else -1
    # Every (target, profile) must have been scraped once per interval while
    # we watched (the first scrape may fall before t0 or after the end).
    expected_min = int(elapsed // interval)
    missed = sum(max(0, expected_min - v) for v in per.values()) + max(0, 2 * n - len(per)) * expected_min
    log(f"  scale: {len(per)} series, {ok} ok, {err} errors, {stored} stored, at least {expected_min} each expected")
    row("scale", "simulated goroutine profile KiB gz (20 targets)", sizes["goroutine"], "%.1f")
    row("scale", "simulated heap profile KiB gz (20 targets)", sizes["heap"], "%.1f")
    row("scale", f"leakwatchd CPU % of one core per {interval}s window ({n} targets)", windows, "%.1f")
    row("scale", "leakwatchd CPU % of one core, whole run", [cpu_avg], "%.1f", "< 10%", lambda m: m < 10)
    row("scale", "leakwatchd peak RSS MB (VmHWM)", [rss_peak_kb / 1024.0], "%.1f", "< 64 MB", lambda m: m < 64)
    row("scale", "missed scrapes (below one per interval) + errors", [missed + err], "%d", "0", lambda m: m == 0)
    row("scale", "profiles stored / successful scrapes", [stored / max(ok, 1)], "%.3f")
    row("scale", "fakefleet CPU % (the simulated fleet, for reference)", [fleet_cpu], "%.1f")
    row("scale", "machine load average (1 min) during the run", loads, "%.1f")
    row("scale", "successful scrapes per (target, profile)", list(per.values()) or [0], "%d",
        f"({expected_min} intervals)")
    causes = {}
    with open(os.path.join(d, "leakwatchd.log"), errors="replace") as f:
        for line in f:
            m = re.search(r'err="([^"]*)"', line)
            if m:
                k = re.sub(r"127\.0\.0\.1:\d+", "ADDR", m.group(1))
                causes[k] = causes.get(k, 0) + 1
    if causes:
        log("  scale: logged scrape errors: " + ", ".join(f"{v}x {k}" for k, v in sorted(causes.items(),
                                                                                   key=lambda kv: -kv[1])[:5]))


# ---- main -------------------------------------------------------------------

BENCHES = {"malloc": bench_malloc, "service": bench_service, "cpu": bench_cpu, "diff": bench_diff,
           "ingest": bench_ingest, "scale": bench_scale}


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Linux {os.uname().release}"


def print_table(a):
    print(f"\nleakwatch benchmarks — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{machine()}, {a.repeats} rounds{' (quick)' if a.quick else ''}\n")
    print("| benchmark | figure | min | median | max | target | verdict |")
    print("|---|---|---|---|---|---|---|")
    for r in ROWS:
        lo, med, hi = stats(r["values"])
        f = r["fmt"]
        if len(r["values"]) == 1:
            print(f"| {r['benchmark']} | {r['figure']} | | {f % med} | | {r['target']} | {r['verdict']} |")
        else:
            print(f"| {r['benchmark']} | {r['figure']} | {f % lo} | {f % med} | {f % hi} | {r['target']} | {r['verdict']} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--repeats", type=int, default=0)
    ap.add_argument("--json", default="")
    # The run is 5 minutes; 2200 s shows the steady state, with the
    # leak detector's 30-minute windows full.
    ap.add_argument("--scale-seconds", type=int, default=0)
    ap.add_argument("--work", default=os.environ.get("LW_BENCH_WORK", ""))
    a = ap.parse_args()
    a.bin = os.path.join(a.build, "bench")
    _BUILD[0] = a.build
    a.repeats = a.repeats or (2 if a.quick else 5)
    keep = bool(a.work)
    a.work = a.work or tempfile.mkdtemp(prefix="lwbench-")
    os.makedirs(a.work, exist_ok=True)
    names = [n for n in a.only.split(",") if n] or list(BENCHES)
    failed = []
    try:
        for name in names:
            try:
                BENCHES[name](a)
            except Exception as e:  # one broken benchmark must not hide the others
                log(f"{name}: FAILED: {e}")
                failed.append(name)
    finally:
        for p in list(PROCS):
            stop(p)
        if not keep:
            shutil.rmtree(a.work, ignore_errors=True)
    print_table(a)
    if failed:
        print(f"\nfailed benchmarks: {', '.join(failed)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "quick": a.quick, "rows": ROWS, "failed": failed}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
