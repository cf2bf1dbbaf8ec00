#!/usr/bin/env python3
"""test_store_crash.py — storage/ survives kill -9 during heavy ingest.

Real heap and goroutine profiles of the shared Go service are ingested in a
loop by `lwstore-tool soak`, which prints each profile id right after its
transaction commits. The process is killed with SIGKILL at a random moment,
ten times in a row on the same database (each restart also takes over the
dead process's lock file). After every kill: PRAGMA integrity_check is ok,
every acknowledged profile is still there (the count is the acknowledged
ones, plus at most the one whose commit raced the kill), and the last
acknowledged profile can be rebuilt. A second round does the same while
retention (with garbage collection and vacuum) runs every few ingests.
"""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

TOOL = os.path.join(t.BIN, "lwstore-tool")
KILLS = 10
state = {}


def tool(*args):
    r = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise t.TestFailure(f"lwstore-tool {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


def setup():
    state["dir"] = t.tempdir("store-crash-")
    proc, base = t.start_gosvc(extra_args=["-memprofilerate", "1"], log_dir=state["dir"])
    t.http(base + "/leak/goroutine?n=10")
    t.http(base + "/spread?depth=4")
    files = []
    for i in range(4):
        t.http(base + "/churn")
        for kind in ("heap", "goroutine"):
            status, _, body = t.http(f"{base}/debug/pprof/{kind}")
            t.check_eq(status, 200, f"GET /debug/pprof/{kind}")
            path = os.path.join(state["dir"], f"{kind}-{i}.pb.gz")
            with open(path, "wb") as f:
                f.write(body)
            if kind == "heap":
                files.append(path)  # soak ingests them all as "heap"
    state["files"] = files
    t.stop(proc)


def stats(db):
    return json.loads(tool("stats", db))


def kill_loop(db, retain_every, rng):
    acked = []
    for k in range(KILLS):
        out_path = os.path.join(state["dir"], f"soak-{retain_every}-{k}.out")
        with open(out_path, "wb") as out:
            p = subprocess.Popen([TOOL, "soak", db, "heap", "1000000", str(retain_every),
                                  *state["files"]], stdout=out, stderr=subprocess.PIPE,
                                 start_new_session=True)
            delay = rng.uniform(0.3, 2.0)
            time.sleep(delay)
            alive = p.poll() is None
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            err = p.stderr.read().decode()
            p.stderr.close()
        t.check(alive, f"kill {k + 1}: soak still running after {delay:.2f}s (stderr: {err.strip()[:200]})")
        with open(out_path) as f:
            text = f.read()
        lines = text.split("\n")[:-1]  # a partial last line is not acknowledged
        ids = [int(line.split()[0]) for line in lines if line.strip()]
        acked.extend(ids)
        st = stats(db)
        print(f"kill {k + 1} after {delay:.2f}s: {len(ids)} acknowledged this run, db {st}")
        t.check_eq(st["integrity"], "ok", "integrity_check after kill -9")
        if ids:
            last = str(ids[-1])
            rebuilt = os.path.join(state["dir"], "last.pb.gz")
            tool("dump", db, last, rebuilt)
            t.check(os.path.getsize(rebuilt) > 0, f"last acknowledged profile {last} rebuilt")
        if retain_every == 0:
            t.check(len(acked) <= st["profiles"] <= len(acked) + k + 1,
                    f"profiles {st['profiles']} = acknowledged {len(acked)} "
                    f"(+ at most {k + 1} commits that raced a kill)")
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            present = {row[0] for row in con.execute("SELECT id FROM profiles")}
            con.close()
            missing = [i for i in acked if i not in present]
            t.check(not missing, f"every acknowledged profile present (missing: {missing[:5]})")
    t.check(len(acked) > 0, f"{len(acked)} profiles acknowledged across {KILLS} kills")


def test_kill_during_ingest():
    rng = random.Random(int(os.environ.get("LW_SEED", "0")) or int(time.time()))
    db = os.path.join(state["dir"], "crash.db")
    kill_loop(db, 0, rng)


def test_kill_during_ingest_and_retention():
    rng = random.Random(int(os.environ.get("LW_SEED", "0")) or int(time.time()) + 1)
    db = os.path.join(state["dir"], "crash-retention.db")
    kill_loop(db, 7, rng)


if __name__ == "__main__":
    setup()
    t.run_tests([test_kill_during_ingest, test_kill_during_ingest_and_retention])
