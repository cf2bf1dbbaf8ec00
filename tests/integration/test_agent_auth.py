#!/usr/bin/env python3
"""test_agent_auth.py — the agent's bearer token and request limits.

- token_env: LEAKWATCH_AGENT_TOKEN (preloaded into plain_service): no
  Authorization header, a wrong token, a Basic header, a token prefix and a
  POST to symbol get 401 with WWW-Authenticate: Bearer; the right token
  (scheme in any case) gets 200 and a real profile.
- token_file: LEAKWATCH_AGENT_TOKEN_FILE works (trailing newline trimmed); a
  missing token file or a token with a space starts no server (fails
  closed) and says why.
- limits: a 64 KiB URL gets 414, a 64 KiB header 431; of 100 idle
  connections at most LW_AGENT_MAX_CONNECTIONS (64) are accepted (one
  thread each, counted in /proc/PID/task); afterwards the server answers.
- leakwatchd: a job with `authorization: {credentials_file: ...}` scrapes the
  agent; the same target without the token is down with
  "HTTP 401 Unauthorized".
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

AGENT = os.path.join(t.LIB, "libleakwatch-agent.so")
PROG = os.path.join(t.BIN, "agent_plain_service")
LEAKWATCHD = os.path.join(t.BIN, "leakwatchd")
TOKEN = "s3cret-Token_0123456789"


def start_service(env, d, wait=True):
    port = t.free_port()
    full = {"LD_PRELOAD": AGENT, "LEAKWATCH_AGENT_ADDR": f"127.0.0.1:{port}"}
    full.update(env)
    p = t.start([PROG, "2", "1"], env=full, log=os.path.join(d, f"plain-{port}.log"))
    base = f"http://127.0.0.1:{port}/debug/pprof/"
    if wait:
        t.wait_http(base, proc=p)
    return p, base


def expect_401(url, headers, what, data=None):
    status, hdrs, body = t.http(url, headers=headers, data=data)
    www = {k.lower(): v for k, v in hdrs.items()}.get("www-authenticate", "")
    print(f"{what}: {status} WWW-Authenticate={www!r} body={body[:40]!r}")
    t.check_eq(status, 401, f"{what}: status")
    t.check(www.startswith("Bearer"), f"{what}: WWW-Authenticate names Bearer ({www!r})")


def test_token_env():
    d = t.tempdir()
    p, base = start_service({"LEAKWATCH_AGENT_TOKEN": TOKEN}, d)
    for path in ("", "heap", "goroutine?debug=2", "cmdline", "profile?seconds=1", "nonexistent"):
        expect_401(base + path, {}, f"GET /debug/pprof/{path} without a token")
    expect_401(base + "heap", {"Authorization": "Bearer wrong"}, "wrong token")
    expect_401(base + "heap", {"Authorization": "Bearer " + TOKEN[:-1]}, "token prefix")
    expect_401(base + "heap", {"Authorization": "Bearer " + TOKEN + "x"}, "token plus a byte")
    expect_401(base + "heap", {"Authorization": "Basic " + TOKEN}, "Basic scheme")
    expect_401(base + "heap", {"Authorization": TOKEN}, "no scheme")
    expect_401(base + "symbol", {}, "POST symbol without a token", data=b"0x1234" * 1000)
    status, _, body = t.http(base + "heap", headers={"Authorization": "Bearer " + TOKEN})
    print(f"right token: {status}, {len(body)} bytes")
    t.check_eq(status, 200, "right token: status")
    t.check(body[:2] == b"\x1f\x8b", "right token: a gzipped profile")
    status, _, body = t.http(base + "goroutine?debug=1", headers={"Authorization": "bearer " + TOKEN})
    t.check_eq(status, 200, "scheme is case-insensitive: status")
    t.check(body.startswith(b"goroutine profile: total "), "goroutine text served")
    status, _, body = t.http(base + "symbol", headers={"Authorization": "Bearer " + TOKEN}, data=b"0x1")
    t.check_eq(status, 200, "POST symbol with the token")
    t.check_eq(t.stop(p), 0, "plain_service exit code after SIGTERM")


def test_token_file():
    d = t.tempdir()
    path = os.path.join(d, "token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    p, base = start_service({"LEAKWATCH_AGENT_TOKEN_FILE": path}, d)
    expect_401(base + "heap", {}, "token file: no token")
    status, _, _ = t.http(base + "heap", headers={"Authorization": "Bearer " + TOKEN})
    t.check_eq(status, 200, "token file: right token (newline trimmed)")
    t.stop(p)

    missing = os.path.join(d, "missing")
    p, base = start_service({"LEAKWATCH_AGENT_TOKEN_FILE": missing}, d, wait=False)
    t.wait_until(lambda: "ready" in open(p.log_path).read(), 30, "plain_service ready")
    log = open(p.log_path).read()
    print("missing token file:", [ln for ln in log.splitlines() if "leakwatch-agent" in ln])
    t.check(f"not serving /debug/pprof: LEAKWATCH_AGENT_TOKEN_FILE {missing}: No such file or directory"
            in log, "the agent says why it does not serve")
    t.check(t.connection_refused(base), "no server without a readable token file (fails closed)")
    t.check(p.poll() is None, "the service itself runs on")
    t.stop(p)

    p, base = start_service({"LEAKWATCH_AGENT_TOKEN": "two words"}, d, wait=False)
    t.wait_until(lambda: "ready" in open(p.log_path).read(), 30, "plain_service ready")
    log = open(p.log_path).read()
    print("token with a space:", [ln for ln in log.splitlines() if "leakwatch-agent" in ln])
    t.check("not serving /debug/pprof: bearer token must be printable ASCII without spaces" in log,
            "an invalid token is refused with the reason")
    t.check(t.connection_refused(base), "no server with an invalid token")
    t.stop(p)


def raw_request(port, data, timeout=10.0):
    """Send raw bytes; returns (status or None, whether the connection was closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            return None, True
        buf = b""
        try:
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            return None, True
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        return (int(m.group(1)) if m else None), True
    finally:
        s.close()


def test_limits():
    d = t.tempdir()
    p, base = start_service({}, d)
    port = int(base.split(":")[2].split("/")[0])
    long_url = "/debug/pprof/heap?x=" + "a" * 65536
    status, _ = raw_request(port, f"GET {long_url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    print(f"64 KiB URL: status {status}")
    t.check_eq(status, 414, "64 KiB URL: status")
    big_header = "X-Big: " + "b" * 65536
    status, _ = raw_request(port, f"GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\n{big_header}\r\n\r\n".encode())
    print(f"64 KiB header: status {status}")
    t.check_eq(status, 431, "64 KiB header: status")

    # A thread per connection: idle connections beyond the limit are not
    # accepted (they wait in the listen backlog), so the server's threads
    # grow by at most 64.
    def n_threads():
        return len(os.listdir(f"/proc/{p.pid}/task"))
    def settled():
        a = n_threads()
        time.sleep(0.5)
        return a if n_threads() == a else None
    before = t.wait_until(settled, 30, "the thread count to settle")
    conns = []
    try:
        for _ in range(100):
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        after = t.wait_until(lambda: n_threads() >= before + 56 and settled(), 30,
                             "connection threads to start")
        grown = after - before
        print(f"100 idle connections: threads {before} -> {after} (+{grown})")
        t.check(56 <= grown <= 64, f"at most 64 connections served at once (+{grown} threads)")
    finally:
        for s in conns:
            s.close()
    status = None

    def answers():
        nonlocal status
        status, _, _ = t.http(base + "goroutine?debug=1")
        return status == 200
    t.wait_until(answers, 30, "the agent to answer again after the idle connections closed")
    t.check_eq(status, 200, "the agent still answers")
    t.stop(p)


def log_events(path, msg):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            if f'msg="{msg}"' not in line and f"msg={msg} " not in line:
                continue
            kv = {}
            for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|\S*)', line):
                kv[m.group(1)] = json.loads('"' + m.group(3) + '"') if m.group(3) is not None else m.group(2)
            out.append(kv)
    return out


def test_leakwatchd_scrapes_with_token():
    d = t.tempdir()
    p, base = start_service({"LEAKWATCH_AGENT_TOKEN": TOKEN}, d)
    target = base.split("//")[1].split("/")[0]
    token_file = os.path.join(d, "agent-token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    cfg = os.path.join(d, "lw.yml")
    with open(cfg, "w") as f:
        f.write("global: {scrape_interval: 1s}\nscrape_configs:\n"
                f"  - job_name: with-token\n    authorization: {{credentials_file: {token_file}}}\n"
                f"    static_configs: [{{targets: ['{target}']}}]\n"
                f"  - job_name: without-token\n    static_configs: [{{targets: ['{target}']}}]\n")
    log = os.path.join(d, "leakwatchd.log")
    lw = t.start([LEAKWATCHD, "--log.level=debug", f"--config.file={cfg}",
                  f"--storage.path={os.path.join(d, 'lw.db')}",
                  f"--web.listen-address=127.0.0.1:{t.free_port()}"], log=log)

    def done():
        if lw.poll() is not None:
            raise t.TestFailure("leakwatchd exited:\n" + t.log_tail(lw))
        ok = {(e.get("job"), e.get("profile")) for e in log_events(log, "scrape ok")}
        failed = {e.get("job") for e in log_events(log, "scrape failed")}
        return ("with-token", "heap") in ok and ("with-token", "goroutine") in ok and "without-token" in failed
    t.wait_until(done, 60, "leakwatchd to scrape both jobs")
    rc = t.stop(lw, signal.SIGTERM, timeout=30)
    t.stop(p)
    ok = sorted({(e.get("job"), e.get("profile")) for e in log_events(log, "scrape ok")})
    failed = {(e.get("job"), e.get("err")) for e in log_events(log, "scrape failed")}
    print("scrape ok:", ok)
    print("scrape failed:", sorted(failed))
    t.check_eq(rc, 0, "leakwatchd exit code")
    t.check(all(job == "with-token" for job, _ in ok), "only the job with the token scrapes")
    t.check(not any(job == "with-token" for job, _ in failed), "the job with the token never failed")
    errs = {err for job, err in failed if job == "without-token"}
    t.check_eq(errs, {"HTTP 401 Unauthorized"}, "the job without the token: error")


if __name__ == "__main__":
    t.run_tests([test_token_env, test_token_file, test_limits, test_leakwatchd_scrapes_with_token])
