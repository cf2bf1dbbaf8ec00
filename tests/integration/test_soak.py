#!/usr/bin/env python3
"""test_soak.py — the watcher watched: leakwatchd through many scrape cycles.

leakwatchd scrapes, at 100 ms, ten canned-profile targets (a tiny Python
pprof server on ten loopback ports serving real Go goroutine and heap
profiles from tests/fuzz/corpus) and one real tests/peers/gosvc, until
LW_SOAK_SCRAPES (default 10000) scrapes succeeded or LW_SOAK_SECONDS
(default 90) passed (LW_SOAK_AGENT=0 turns self-profiling off, =preload
preloads the agent with a 64 KiB heap rate even when it is linked). Its
own thread count and RSS are read from /proc every second; /metrics and /api/v1/targets are polled throughout as a client would.

Checks (no timings are asserted; the figures are printed):
- enough scrapes happened (at least a fifth of the goal: a loaded CI machine
  may not reach the goal within the time budget);
- the count of long-lived threads (per-connection threads of the API and of
  the agent's server excluded, smallest of 20 looks 5 ms apart) never
  changes after warm-up;
- anonymous RSS (RssAnon: heap, not SQLite's file pages) grows from the
  middle of the run to its end by at most max(12 MiB, 20%) (twice that in
  the TSan build, whose shadow memory counts too): allocator
  arenas of the short-lived workers and SQLite's page caches fill up early,
  so the bound only catches gross growth; the series is printed. The
  precise checks are LeakSanitizer at exit (ASan build) and the agent's
  inuse_space of leakwatchd (plain build: end - mid <= max(4 MiB, 25%),
  with the -diff_base top printed);
- no leak verdict (suspected signal) for any target — including leakwatchd
  itself when it profiles itself;
- clean exit on SIGTERM; in the ASan build LeakSanitizer checks the heap at
  exit (its report fails the exit code and is shown).

Self-profiling: in a plain (non-sanitized) build leakwatchd links its own
agent; the test starts it with --agent.enable --agent.listen-address, adds
that address as a target (job "self"), so leakwatchd scrapes and judges
itself, and compares the agent's inuse_space of leakwatchd's own heap at
mid-run and end. A leakwatchd without the linked agent gets it through
LD_PRELOAD (build/lib/libleakwatch-agent.so) instead. In the ASan build the
agent cannot live next to ASan's (or TSan's) allocator, so that part is
skipped (said so in the output) and ASan runs with a small quarantine so
that RSS reflects the live heap.
"""
import http.server
import os
import re
import signal
import subprocess
import threading
import time

import lwtest
from lwtest import check, check_eq

LEAKWATCHD = os.path.join(lwtest.BIN, "leakwatchd")
AGENT = os.path.join(lwtest.LIB, "libleakwatch-agent.so")
CORPUS = os.path.join(lwtest.SOURCE_DIR, "tests", "fuzz", "corpus", "pprof_decode")
GOAL = int(os.environ.get("LW_SOAK_SCRAPES", "10000"))
BUDGET_S = float(os.environ.get("LW_SOAK_SECONDS", "90"))
N_CANNED = 10
MIB = 1 << 20


class CannedServer:
    """Serves fixed goroutine and heap profiles on n loopback ports."""

    def __init__(self, n):
        with open(os.path.join(CORPUS, "gosvc-goroutine.pb.gz"), "rb") as f:
            goroutine = f.read()
        with open(os.path.join(CORPUS, "gosvc-heap-gc.pb.gz"), "rb") as f:
            heap = f.read()
        bodies = {"/debug/pprof/goroutine": goroutine, "/debug/pprof/heap": heap}
        self.count = 0
        lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = bodies.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                with lock:
                    owner.count += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # leakwatchd hanging up at its scrape timeout is expected

        self.servers = []
        for _ in range(n):
            s = Server(("127.0.0.1", 0), Handler)
            threading.Thread(target=s.serve_forever, daemon=True).start()
            self.servers.append(s)
        self.targets = ["127.0.0.1:%d" % s.server_address[1] for s in self.servers]

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def proc_status(pid):
    """(threads, anonymous RSS bytes, total RSS bytes) of pid from /proc."""
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
    anon = int(re.search(r"^RssAnon:\s+(\d+) kB", text, re.M).group(1)) * 1024
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1)) * 1024
    return threads, anon, rss


def linked(path):
    return subprocess.run(["ldd", path], capture_output=True, text=True).stdout


def sanitizer_linked(path):
    """True when path links ASan or TSan (their allocator excludes the agent)."""
    out = linked(path)
    return lwtest.SANITIZED or "libasan" in out or "libtsan" in out


def steady_threads(pid, n=20, gap=0.005):
    """Long-lived threads of pid: threads not named MHD-connection (the
    per-connection threads of the API and of the agent's server), smallest
    count over n looks gap seconds apart (a connection thread is named only
    once it runs). A thread that never exits raises it."""
    counts = []
    for _ in range(n):
        c = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    c += f.read().strip() != "MHD-connection"
            except OSError:
                pass  # exited meanwhile
        counts.append(c)
        time.sleep(gap)
    return min(counts)


def scrapes_ok(metrics_text):
    total = 0
    for line in metrics_text.splitlines():
        if line.startswith("leakwatch_scrapes_total{") and 'result="success"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def self_inuse_bytes(agent_url, path):
    """leakwatchd's own inuse_space total from its agent; the profile is kept in path."""
    status, _, body = lwtest.http(agent_url + "/debug/pprof/heap", timeout=30)
    check_eq(status, 200, "agent heap profile status")
    with open(path, "wb") as f:
        f.write(body)
    top = lwtest.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", path)
    m = re.search(r"of ([0-9.]+)B total", top)
    return float(m.group(1)) if m else None


def test_soak():
    work = lwtest.tempdir("lwsoak-")
    canned = CannedServer(N_CANNED)
    gosvc, gbase = lwtest.start_gosvc(log_dir=work)
    api_port = lwtest.free_port()
    base = f"http://127.0.0.1:{api_port}"
    self_profile = (not sanitizer_linked(LEAKWATCHD) and os.path.exists(AGENT)
                    and os.environ.get("LW_SOAK_AGENT", "1") != "0")
    env = {}
    agent_url = None
    agent_args = []
    if self_profile:
        agent_port = lwtest.free_port()
        agent_url = f"http://127.0.0.1:{agent_port}"
        if "libleakwatch-agent" in linked(LEAKWATCHD) and os.environ.get("LW_SOAK_AGENT") != "preload":
            agent_args = ["--agent.enable", f"--agent.listen-address=127.0.0.1:{agent_port}"]
            how = "linked, --agent.enable"
        else:
            env = {"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{agent_port}",
                   "LEAKWATCH_HEAP_RATE": "65536"}
            how = "LD_PRELOAD"
        print(f"self-profiling: leakwatchd runs with its agent ({how}) on {agent_url}")
    else:
        # A small quarantine so that RSS tracks the live heap, not freed memory.
        env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
               ":detect_leaks=1"}
        print("self-profiling skipped: the agent cannot run inside a sanitized leakwatchd; "
              "measuring /proc (and LeakSanitizer at exit in the ASan build)")

    cfg = os.path.join(work, "soak.yml")
    with open(cfg, "w") as f:
        f.write("scrape_configs:\n"
                "  - job_name: canned\n"
                "    scrape_interval: 100ms\n"
                "    scrape_timeout: 90ms\n"
                "    static_configs:\n"
                f"      - targets: [{', '.join(canned.targets)}]\n"
                "  - job_name: gosvc\n"
                "    scrape_interval: 100ms\n"
                "    scrape_timeout: 90ms\n"
                f"    static_configs: [{{targets: ['{gbase[len('http://'):]}']}}]\n")
        if self_profile:
            f.write("  - job_name: self\n"
                    "    scrape_interval: 500ms\n"
                    "    scrape_timeout: 400ms\n"
                    f"    static_configs: [{{targets: ['{agent_url[len('http://'):]}']}}]\n")
    log = os.path.join(work, "leakwatchd.log")
    lw = lwtest.start([LEAKWATCHD, f"--config.file={cfg}", f"--storage.path={work}/lw.db",
                       f"--web.listen-address=127.0.0.1:{api_port}", "--log.level=warn",
                       "--detection.window=20s", "--detection.for=0s",
                       "--detection.min-samples=10", "--detection.evaluation-interval=1s",
                       "--storage.retention.time=30s",
                       "--storage.retention.interval=5s", *agent_args], env=env, log=log)
    lwtest.wait_http(base + "/-/healthy", proc=lw)

    samples = []  # (elapsed s, scrapes ok, threads, anonymous rss, rss)
    inuse = {}
    start = time.time()
    warm = None
    mid = None
    while True:
        if lw.poll() is not None:
            check(False, f"leakwatchd exited with {lw.returncode}:\n" + lwtest.log_tail(lw))
        _, _, body = lwtest.http(base + "/metrics", timeout=10)
        n = scrapes_ok(body.decode())
        lwtest.http(base + "/api/v1/targets", timeout=10)
        _, anon, rss = proc_status(lw.pid)
        threads = steady_threads(lw.pid)
        el = time.time() - start
        samples.append((el, n, threads, anon, rss))
        if warm is None and n >= GOAL // 10:
            warm = len(samples) - 1
        if mid is None and warm is not None and (n >= GOAL // 2 or el >= BUDGET_S / 2):
            mid = len(samples) - 1
            if self_profile:
                inuse["mid"] = self_inuse_bytes(agent_url, os.path.join(work, "self-mid.pb.gz"))
        if n >= GOAL or el >= BUDGET_S:
            break
        time.sleep(1.0)
    if self_profile:
        inuse["end"] = self_inuse_bytes(agent_url, os.path.join(work, "self-end.pb.gz"))
    _, leaks = lwtest.http_json(base + "/api/v1/leaks", timeout=10)
    leaks = leaks.get("data", leaks) if isinstance(leaks, dict) else leaks

    for el, n, th, anon, rss in samples:
        print(f"t={el:5.1f}s scrapes_ok={n:6d} threads={th:3d} rss_anon={anon / MIB:6.1f}MiB "
              f"rss={rss / MIB:6.1f}MiB")
    el, n, th_end, rss_end, _ = samples[-1]
    print(f"scrapes: leakwatchd counted {n} successful, canned server answered {canned.count}, "
          f"in {el:.1f}s ({n / el:.0f}/s)")
    check(warm is not None and mid is not None and mid < len(samples) - 1,
          f"reached warm-up ({GOAL // 10} scrapes) and mid-run before the end")
    check(n >= GOAL // 5, f"at least {GOAL // 5} scrapes succeeded ({n}; goal {GOAL})")

    th_warm = samples[warm][2]
    th_max = max(s[2] for s in samples[warm:])
    print(f"long-lived threads: start {samples[0][2]}, after warm-up {th_warm}, max after "
          f"warm-up {th_max}, end {th_end}")
    check_eq(th_max, th_warm, "max long-lived thread count after warm-up vs at warm-up")
    check_eq(th_end, th_warm, "long-lived thread count at the end vs at warm-up")

    rss_mid = samples[mid][3]
    bound = max(12 * MIB, rss_mid // 5)
    if "libtsan" in linked(LEAKWATCHD):
        # TSan's RssAnon includes its shadow memory (several bytes per byte
        # of heap touched) and its allocator reuses freed blocks late: mid to
        # end measured 10.6-16.1 MiB there against 4.3-4.7 MiB in the ASan
        # build, run after run. Doubled, the bound still catches gross growth.
        bound *= 2
    print(f"anonymous RSS: start {samples[0][3] / MIB:.1f}MiB, warm-up {samples[warm][3] / MIB:.1f}MiB, "
          f"mid {rss_mid / MIB:.1f}MiB, end {rss_end / MIB:.1f}MiB (bound +{bound / MIB:.1f}MiB)")
    print(f"total RSS: start {samples[0][4] / MIB:.1f}MiB, mid {samples[mid][4] / MIB:.1f}MiB, "
          f"end {samples[-1][4] / MIB:.1f}MiB")
    if self_profile:
        print(f"agent inuse_space of leakwatchd: mid {inuse['mid']}, end {inuse['end']}")
        print(lwtest.go_tool_pprof("-top", "-unit=B", "-sample_index=inuse_space", "-nodecount=15",
                                   "-diff_base", os.path.join(work, "self-mid.pb.gz"),
                                   os.path.join(work, "self-end.pb.gz")))
        check(inuse["mid"] is not None and inuse["end"] is not None, "agent heap profile read")
        check(inuse["end"] - inuse["mid"] <= max(4 * MIB, inuse["mid"] / 4),
              "leakwatchd's own inuse heap (agent) flat from mid-run to end")

    check(rss_end - rss_mid <= bound,
          f"anonymous RSS growth mid->end {(rss_end - rss_mid) / MIB:.1f}MiB <= {bound / MIB:.1f}MiB")
    evaluated = {(v.get("instance"), v.get("signal")) for v in leaks}
    suspected = [v for v in leaks if v.get("suspected")]
    print(f"leak verdicts: {len(leaks)} evaluated signals, suspected: "
          f"{[(v.get('instance'), v.get('signal'), v.get('reason')) for v in suspected]}")
    check(len(evaluated) > 0, "the detector evaluated the targets")
    if self_profile:
        inst = agent_url[len("http://"):]
        check(any(i == inst for i, _ in evaluated), f"leakwatchd itself ({inst}) was evaluated")
    check_eq(suspected, [], "suspected leaks")

    rc = lwtest.stop(lw, signal.SIGTERM, timeout=60)
    with open(log, errors="replace") as f:
        text = f.read()
    check("LeakSanitizer" not in text and "AddressSanitizer" not in text,
          "no sanitizer report in leakwatchd's log:\n" + text[-4000:])
    check_eq(rc, 0, "leakwatchd exit code after SIGTERM" + (" (with its agent)" if self_profile else ""))
    lwtest.stop(gosvc)
    canned.close()


if __name__ == "__main__":
    lwtest.run_tests([test_soak])
