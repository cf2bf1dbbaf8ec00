"""test_alertmanager.py — leakwatch's Alertmanager client against a real prometheus-alertmanager.

Starts prometheus-alertmanager 0.25 on loopback (clustering off), posts a
firing GoroutineLeak alert with build/bin/lwalert_send (the daemon's payload
builder and notifier thread), checks that Alertmanager's /api/v2/alerts lists
it as active with our labels, annotations and generatorURL, then posts the
resolution (endsAt = resolve time) and checks that Alertmanager stops listing
it as active. A second check sends to an Alertmanager that is down plus one
that is up: delivery to the live one still succeeds.
"""
import os
import time

import lwtest
from lwtest import check, check_eq

SEND = os.path.join(lwtest.BIN, "lwalert_send")


def start_alertmanager():
    d = lwtest.tempdir("am-")
    cfg = os.path.join(d, "am.yml")
    with open(cfg, "w") as f:
        f.write('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = lwtest.free_port()
    p = lwtest.start(["prometheus-alertmanager", f"--config.file={cfg}", f"--storage.path={d}",
                      f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                     log=os.path.join(d, "am.log"))
    url = f"http://127.0.0.1:{port}"
    lwtest.wait_http(url + "/api/v2/status", proc=p)
    return p, url


def am_alerts(url, name):
    status, alerts = lwtest.http_json(url + "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")
    check_eq(status, 200, "GET /api/v2/alerts status")
    return [a for a in alerts if a["labels"].get("alertname") == name]


def send(args):
    import subprocess
    r = subprocess.run([SEND, *args], capture_output=True, text=True, timeout=120)
    print(r.stdout.strip())
    if r.stderr.strip():
        print(r.stderr.strip())
    return r.returncode


def test_firing_then_resolved():
    am, url = start_alertmanager()
    diff = ("http://127.0.0.1:8080/api/v1/diff?instance=127.0.0.1%3A6061&type=goroutine"
            "&from=2026-11-25T21:00:00Z&to=2026-11-25T21:30:00Z")
    active_at = time.time() - 600
    common = ["--am", url, "--alertname", "GoroutineLeak",
              "--label", "job=api", "--label", "instance=127.0.0.1:6061",
              "--label", "severity=warning", "--label", "team=payments",
              "--annotation", "summary=Goroutine leak in api/127.0.0.1:6061: +1200 goroutines in 30m (2400/h)",
              "--annotation", "description=goroutines grew by 1200 over 30m; top stack main.leak (main.go:42)",
              "--annotation", "diff_url=" + diff, "--generator-url", diff,
              "--active-at", str(active_at)]
    check_eq(send(common + ["--state", "firing"]), 0, "lwalert_send firing exit code")
    got = lwtest.wait_until(lambda: am_alerts(url, "GoroutineLeak"), 20, "alert listed by Alertmanager")
    check_eq(len(got), 1, "number of GoroutineLeak alerts")
    a = got[0]
    print("alertmanager has:", a)
    check_eq(a["status"]["state"], "active", "state")
    for k, v in (("job", "api"), ("instance", "127.0.0.1:6061"), ("severity", "warning"), ("team", "payments")):
        check_eq(a["labels"].get(k), v, f"label {k}")
    check(a["annotations"]["summary"].startswith("Goroutine leak in api/127.0.0.1:6061"), "summary annotation")
    check("main.go:42" in a["annotations"]["description"], "description names file:line")
    check_eq(a["annotations"].get("diff_url"), diff, "diff_url annotation")
    check_eq(a["generatorURL"], diff, "generatorURL")
    # endsAt of a firing alert is in the future (now + 4 x resend delay).
    check(a["endsAt"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), f"endsAt {a['endsAt']} in the future")

    check_eq(send(common + ["--state", "resolved", "--resolved-at", str(time.time() - 1)]), 0,
             "lwalert_send resolved exit code")
    lwtest.wait_until(lambda: not am_alerts(url, "GoroutineLeak"), 20, "alert no longer active")
    # Resolved alerts stay visible with active=false for a while: check endsAt is the resolve time.
    status, alerts = lwtest.http_json(url + "/api/v2/alerts?active=false&silenced=false&inhibited=false&unprocessed=false")
    print("after resolution:", alerts)
    check_eq(len([a for a in alerts if a["labels"].get("alertname") == "GoroutineLeak"]), 0,
             "resolved alert no longer listed (resolved alerts are only kept for notifications)")
    lwtest.stop(am)


def test_one_alertmanager_down():
    am, url = start_alertmanager()
    dead = f"http://127.0.0.1:{lwtest.free_port()}"
    rc = send(["--am", dead, "--am", url, "--alertname", "HeapLeak", "--label", "job=x",
               "--label", "instance=127.0.0.1:1", "--annotation", "summary=Heap leak in x"])
    check_eq(rc, 1, "exit code when one of two Alertmanagers is down")
    got = lwtest.wait_until(lambda: am_alerts(url, "HeapLeak"), 20, "alert at the live Alertmanager")
    check_eq(got[0]["labels"]["instance"], "127.0.0.1:1", "instance label at the live Alertmanager")
    lwtest.stop(am)


if __name__ == "__main__":
    lwtest.run_tests([test_firing_then_resolved, test_one_alertmanager_down])
