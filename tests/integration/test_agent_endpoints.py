#!/usr/bin/env python3
"""test_agent_endpoints.py — Go net/http/pprof conventions of the agent's
server on leaky-demo: the index page, /cmdline, /symbol (GET count, GET and
POST addresses), content types and dispositions, and 400/404 errors with
X-Go-Pprof: 1 for bad parameters.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402


def check_go_error(url, status, text):
    got, hdr, body = t.http(url)
    t.check_eq(got, status, f"status of {url}")
    t.check_eq(hdr.get("Content-Type"), "text/plain; charset=utf-8", f"content type of {url}")
    t.check_eq(hdr.get("X-Go-Pprof"), "1", f"X-Go-Pprof of {url}")
    t.check("Content-Disposition" not in hdr, f"no Content-Disposition on the error of {url}")
    t.check_eq(body.decode(), text + "\n", f"body of {url}")


def test_index_cmdline_symbol():
    proc, app, pprof = t.start_leaky_demo()
    t.http(app + "/leak/thread")
    status, hdr, body = t.http(pprof + "/debug/pprof/")
    html = body.decode()
    t.check_eq(status, 200, "index status")
    t.check(hdr.get("Content-Type", "").startswith("text/html"), f"index content type {hdr.get('Content-Type')}")
    for link in ("allocs?debug=1", "goroutine?debug=1", "heap?debug=1", "threadcreate?debug=1",
                 "goroutine?debug=2", "cmdline", "profile", "symbol"):
        t.check(link in html, f"index links {link}")
    m = re.search(r"<tr><td>(\d+)</td><td><a href='goroutine\?debug=1'>", html)
    t.check(m is not None and int(m.group(1)) >= 3, f"index counts threads ({m.group(1) if m else None})")

    status, hdr, body = t.http(pprof + "/debug/pprof/cmdline")
    t.check_eq(status, 200, "cmdline status")
    t.check_eq(hdr.get("Content-Type"), "text/plain; charset=utf-8", "cmdline content type")
    args = body.decode().split("\x00")
    t.check(args[0].endswith("leaky-demo") and args[1].startswith("--listen=") and len(args) == 3,
            f"cmdline is argv joined by NUL: {args}")

    status, hdr, body = t.http(pprof + "/debug/pprof/symbol")
    t.check_eq((status, body.decode()), (200, "num_symbols: 1\n"), "GET /symbol")
    # Addresses from a goroutine dump; /symbol must name them.
    _, _, dump = t.http(pprof + "/debug/pprof/goroutine?debug=1")
    frames = re.findall(r"#\t(0x[0-9a-f]+)\t(leak_thread_blocked_on_pipe)\+", dump.decode())
    t.check(len(frames) >= 1, "an address of leak_thread_blocked_on_pipe in the dump")
    addr = frames[0][0]
    status, _, body = t.http(pprof + "/debug/pprof/symbol", data=f"{addr}+0x1".encode(), method="POST")
    lines = body.decode().splitlines()
    print(lines)
    t.check_eq(lines[0], "num_symbols: 1", "POST /symbol first line")
    t.check_eq(lines[1], f"{addr} leak_thread_blocked_on_pipe", "POST /symbol names the address")
    t.check_eq(len(lines), 2, "unknown address 0x1 is omitted")
    status, _, body = t.http(pprof + f"/debug/pprof/symbol?{addr}")
    t.check_eq(body.decode(), f"num_symbols: 1\n{addr} leak_thread_blocked_on_pipe\n", "GET /symbol?addr")
    # go tool pprof can symbolize through the agent's /symbol: its own
    # symbolizer works on the agent's profile unchanged.
    top = t.go_tool_pprof("-top", "-symbolize=remote", pprof + "/debug/pprof/goroutine")
    t.check("leak_thread_blocked_on_pipe" in top, "go tool pprof -symbolize=remote works")
    t.stop(proc)


def test_errors_and_types():
    proc, app, pprof = t.start_leaky_demo()
    base = pprof + "/debug/pprof/"
    msg = 'invalid value for "seconds" - must be a positive integer'
    check_go_error(base + "heap?seconds=abc", 400, msg)
    check_go_error(base + "allocs?seconds=-1", 400, msg)
    check_go_error(base + "goroutine?seconds=0", 400, msg)
    check_go_error(base + "goroutine?seconds=1&debug=1", 400, "seconds and debug params are incompatible")
    check_go_error(base + "nonesuch", 404, "Unknown profile")
    for name in ("heap", "allocs", "goroutine", "threadcreate", "block", "mutex"):
        status, hdr, body = t.http(base + name)
        t.check_eq((status, hdr.get("Content-Type"), hdr.get("Content-Disposition")),
                   (200, "application/octet-stream", f'attachment; filename="{name}"'),
                   f"{name}: status, type, disposition")
        t.check(body[:2] == b"\x1f\x8b", f"{name} is gzipped")
        path = os.path.join(t.tempdir(), name + ".pb.gz")
        with open(path, "wb") as f:
            f.write(body)
        t.go_tool_pprof("-raw", path)
        status, hdr, body = t.http(base + name + "?debug=1")
        t.check_eq((status, hdr.get("Content-Type")), (200, "text/plain; charset=utf-8"), f"{name}?debug=1")
    # Go ignores a malformed debug value (strconv.Atoi error -> 0): proto.
    status, hdr, _ = t.http(base + "heap?debug=x")
    t.check_eq(hdr.get("Content-Type"), "application/octet-stream", "debug=x is treated as 0")
    t.stop(proc)


if __name__ == "__main__":
    t.run_tests([test_index_cmdline_symbol, test_errors_and_types])
