"""lwtest.py — shared helpers for leakwatch's integration tests (Python 3 stdlib only).

Integration tests are plain scripts run by ctest (see tests/CMakeLists.txt,
lw_integration_test). They start real processes on loopback, compare real
outputs, print the values they compared, and clean up their processes and
files even when they fail. A failing check raises TestFailure; `run_tests`
prints "N passed, N failed" and exits non-zero if anything failed.

Environment (set by ctest): LW_SOURCE_DIR, LW_BINARY_DIR, LW_PEER_DIR (built
Go peers), LW_TEST_WORK (scratch space), LW_SANITIZE ("ON" in the ASan build).
"""
import atexit
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

SOURCE_DIR = os.environ.get("LW_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY_DIR = os.environ.get("LW_BINARY_DIR", os.path.join(SOURCE_DIR, "build"))
PEER_DIR = os.environ.get("LW_PEER_DIR", os.path.join(BINARY_DIR, "test-work", "peers"))
WORK_DIR = os.environ.get("LW_TEST_WORK", os.path.join(BINARY_DIR, "test-work"))
SANITIZED = os.environ.get("LW_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE", "YES")
BIN = os.path.join(BINARY_DIR, "bin")
LIB = os.path.join(BINARY_DIR, "lib")


class TestFailure(AssertionError):
    pass


_procs = []
_dirs = []


def _cleanup():
    for p in reversed(_procs):
        stop(p)
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def check(cond, msg):
    """Fail with msg unless cond; print the check either way."""
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def check_close(got, want, rel, what):
    ok = want == 0 and got == 0 or want != 0 and abs(got - want) <= rel * abs(want)
    check(ok, f"{what}: got {got}, want {want} ±{rel * 100:.0f}%")


def tempdir(prefix="lwtest-"):
    os.makedirs(WORK_DIR, exist_ok=True)
    d = tempfile.mkdtemp(prefix=prefix, dir=WORK_DIR)
    _dirs.append(d)
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, env=None, log=None, cwd=None):
    """Start a process (its own process group), remember it for cleanup."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    out = open(log, "wb") if log else subprocess.DEVNULL
    p = subprocess.Popen(args, env=full_env, stdout=out, stderr=subprocess.STDOUT if log else None,
                         cwd=cwd, start_new_session=True)
    p.log_path = log
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10.0):
    """Stop a process started by start(); returns its exit code."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        except ProcessLookupError:
            pass
    if p in _procs:
        _procs.remove(p)
    return p.returncode


def log_tail(p, n=40):
    if getattr(p, "log_path", None) and os.path.exists(p.log_path):
        with open(p.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    return ""


def http(url, data=None, method=None, headers=None, timeout=30.0):
    """(status, headers, body bytes) of one request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def http_json(url, **kw):
    status, _, body = http(url, **kw)
    return status, json.loads(body.decode("utf-8")) if body else None


def wait_http(url, timeout=30.0, proc=None):
    """Wait until url answers (any HTTP status). Fails if proc exits first."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TestFailure(f"process exited with {proc.returncode} before {url} answered:\n{log_tail(proc)}")
        try:
            http(url, timeout=2.0)
            return
        except Exception as e:  # connection refused while starting
            last = e
            time.sleep(0.1)
    raise TestFailure(f"{url} did not answer within {timeout}s: {last}")


def wait_until(fn, timeout, what, interval=0.2):
    """Poll fn() until it returns a truthy value; fail after timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}")


def go_peer(name):
    path = os.path.join(PEER_DIR, name)
    check(os.path.exists(path), f"Go peer {name} built at {path}")
    return path


def start_gosvc(extra_args=(), log_dir=None, env=None):
    """Start the tests/peers/gosvc Go service on a free port; returns (proc, base_url)."""
    port = free_port()
    log = os.path.join(log_dir or tempdir(), f"gosvc-{port}.log")
    p = start([go_peer("gosvc"), "-addr", f"127.0.0.1:{port}", *extra_args], log=log, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/debug/pprof/", proc=p)
    return p, base


def go_tool_pprof(*args, timeout=120):
    """Run `go tool pprof ARGS`; returns stdout text (fails on non-zero exit)."""
    env = dict(os.environ)
    env.setdefault("PPROF_TMPDIR", tempdir("pprof-"))
    r = subprocess.run(["go", "tool", "pprof", *args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if r.returncode != 0:
        raise TestFailure(f"go tool pprof {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def pprof_top_total(top_text):
    """The total of a `go tool pprof -top` output, as printed ("... of N total")."""
    for line in top_text.splitlines():
        if " total" in line and " of " in line:
            return line.split(" of ")[-1].split(" total")[0].strip()
    raise TestFailure(f"no total line in:\n{top_text}")


def pprof_top_functions(top_text, n=10):
    """Function names of the first n rows of a `go tool pprof -top` table."""
    rows = []
    started = False
    for line in top_text.splitlines():
        if line.strip().startswith("flat") and "cum" in line:
            started = True
            continue
        if started and line.strip():
            parts = line.split()
            if len(parts) >= 6:
                rows.append(" ".join(parts[5:]))
    return rows[:n]


def gunzip_if(data):
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def run_tests(tests):
    """Run test functions in order; print a summary line; exit non-zero on failure."""
    passed = failed = 0
    for t in tests:
        print(f"=== {t.__name__}", flush=True)
        try:
            t()
            passed += 1
        except Exception:
            failed += 1
            traceback.print_exc()
            print(f"--- FAILED {t.__name__}", flush=True)
    _cleanup()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


# ---- agent helpers (appended by the agent component) ----------------------

def pprof_top_rows(top_text):
    """Rows of a `go tool pprof -top` table as dicts: flat, flat_pct, cum, cum_pct
    (value strings as printed, e.g. "1.50MB", "25") and name."""
    rows = []
    started = False
    for line in top_text.splitlines():
        if line.strip().startswith("flat") and "cum" in line:
            started = True
            continue
        parts = line.split()
        if started and len(parts) >= 6:
            rows.append({"flat": parts[0], "flat_pct": parts[1], "cum": parts[3],
                         "cum_pct": parts[4], "name": " ".join(parts[5:])})
    return rows


def pprof_value(s):
    """A -top value printed with -unit=B/-unit=ns or a plain count ("123B", "45") as a number."""
    s = s.strip()
    for suffix in ("B", "ns"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
    return float(s)


def start_leaky_demo(extra_args=(), log_dir=None, env=None):
    """Start build/bin/leaky-demo on free ports; returns (proc, app_url, pprof_url)."""
    app_port, pprof_port = free_port(), free_port()
    log = os.path.join(log_dir or tempdir(), f"leaky-demo-{app_port}.log")
    p = start([os.path.join(BIN, "leaky-demo"), f"--listen=127.0.0.1:{app_port}",
               f"--pprof-addr=127.0.0.1:{pprof_port}", *extra_args], env=env, log=log)
    app, pprof = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{pprof_port}"
    wait_http(pprof + "/debug/pprof/", proc=p)
    wait_http(app + "/healthz", proc=p)
    return p, app, pprof


def connection_refused(url):
    """True when nothing answers at url (the connection fails)."""
    try:
        http(url, timeout=5)
    except OSError:
        return True
    return False
