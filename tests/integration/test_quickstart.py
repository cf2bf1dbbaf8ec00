#!/usr/bin/env python3
"""test_quickstart.py — the README's quick start, run non-interactively.

deploy/demo.sh (what deploy/quickstart.sh runs after building) starts
leaky-demo and leakwatchd; within its time limit the GoroutineLeak alert must
fire and `leakwatch leaks` must name the leaking function. A second run is
interrupted with SIGINT (Ctrl-C) and must exit 0 leaving no process behind.
"""
import os
import signal
import socket
import subprocess
import time

from lwtest import BINARY_DIR, SOURCE_DIR, check, check_eq, free_port, run_tests, tempdir

DEMO = os.path.join(SOURCE_DIR, "deploy", "demo.sh")


def demo_env(data):
    env = dict(os.environ)
    env.update({"LW_BUILD_DIR": BINARY_DIR, "LW_DATA_DIR": data, "LW_DEMO_PORT": str(free_port()),
                "LW_AGENT_PORT": str(free_port()), "LW_WEB_PORT": str(free_port())})
    return env


def left_behind(env):
    """Ports of the demo's processes that still accept connections."""
    busy = []
    for key in ("LW_DEMO_PORT", "LW_AGENT_PORT", "LW_WEB_PORT"):
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", int(env[key]))) == 0:
                busy.append(f"{key}={env[key]}")
    return busy


def test_alert_fires_and_names_the_stack():
    data = tempdir()
    env = demo_env(data)
    env.update({"LW_DEMO_EXIT_WHEN_FIRING": "1", "LW_DEMO_TIMEOUT": "180"})
    t0 = time.time()
    r = subprocess.run(["bash", DEMO], env=env, capture_output=True, text=True, timeout=240)
    print(r.stdout[-4000:], r.stderr[-4000:])
    check_eq(r.returncode, 0, "demo.sh exit code (0 = alert fired in time)")
    check("GoroutineLeak is firing" in r.stdout, f"alert fired after {time.time() - t0:.0f}s")
    check("leak_thread_blocked_on_pipe" in r.stdout, "`leakwatch leaks` names leak_thread_blocked_on_pipe")
    check("leaky_demo.c:" in r.stdout, "the stack carries file:line")
    check_eq(left_behind(env), [], "demo ports still served after exit")


def test_ctrl_c_stops_everything():
    data = tempdir()
    env = demo_env(data)
    p = subprocess.Popen(["bash", DEMO], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    time.sleep(8)
    check(p.poll() is None, "demo still running after 8s")
    os.killpg(p.pid, signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    print(out[-2000:])
    check_eq(p.returncode, 0, "exit code after Ctrl-C")
    check("stopping leakwatchd and leaky-demo" in out, "demo says it stops its processes")
    check_eq(left_behind(env), [], "demo ports still served after exit")
    r = subprocess.run(["sqlite3", os.path.join(data, "leakwatch.db"), "PRAGMA integrity_check"],
                       capture_output=True, text=True)
    check_eq(r.stdout.strip(), "ok", "database integrity after Ctrl-C")


if __name__ == "__main__":
    run_tests([test_alert_fires_and_names_the_stack, test_ctrl_c_stops_everything])
