#!/usr/bin/env python3
"""test_daemon_crash.py — crash safety of leakwatchd itself.

- kill_during_ingest: leakwatchd scrapes 8 targets every 200 ms (a tiny
  Python server on 8 ports serving real heap, allocs and goroutine profiles
  of gosvc at MemProfileRate=1), at debug log level so every
  stored profile is logged with its id ("profile stored" id=N, after
  COMMIT). It is killed with SIGKILL at a random moment 0.3–2 s after each
  start, 20 times in a row, restarted each time on the same database. Then
  `PRAGMA integrity_check` (Python's sqlite3, read-only) is "ok", every id
  logged before a kill is in the profiles table, and a last clean run stores
  new profiles and stops with exit 0.
- corrupt_db_at_startup: random bytes and a foreign SQLite database:
  leakwatchd exits 1 with "cannot open storage ... not a leakwatch
  database"; a leakwatch database whose pages after the first are random:
  exits 1 with "startup failed"; each file is byte-identical (and its mtime
  unchanged) afterwards, no -wal/-journal file appears.
"""
import hashlib
import http.server
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwtest as t  # noqa: E402

LEAKWATCHD = os.path.join(t.BIN, "leakwatchd")
N_TARGETS = 8
N_KILLS = 20
STORED_RE = re.compile(r'msg="?profile stored"? id=(\d+)')


class ProfileServer(http.server.BaseHTTPRequestHandler):
    profiles = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.profiles.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_profile_servers(d):
    """Fetch real profiles from gosvc; serve them on N_TARGETS ports."""
    svc, base = t.start_gosvc(["-memprofilerate", "1"], log_dir=d)
    t.wait_until(lambda: t.http(base + "/debug/pprof/heap?debug=1")[2].count(b"\n") > 200, 30,
                 "gosvc to have a few hundred heap records")
    for name in ("heap", "allocs", "goroutine"):
        status, _, body = t.http(base + "/debug/pprof/" + name)
        t.check_eq(status, 200, f"gosvc {name} profile")
        ProfileServer.profiles["/debug/pprof/" + name] = body
    t.stop(svc)
    print("serving heap %d bytes, goroutine %d bytes on %d ports" % (
        len(ProfileServer.profiles["/debug/pprof/heap"]),
        len(ProfileServer.profiles["/debug/pprof/goroutine"]), N_TARGETS))
    servers = []
    for _ in range(N_TARGETS):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ProfileServer)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    return servers


def write_config(d, servers):
    cfg = os.path.join(d, "lw.yml")
    targets = ", ".join("'127.0.0.1:%d'" % s.server_address[1] for s in servers)
    with open(cfg, "w") as f:
        f.write("global: {scrape_interval: 200ms, scrape_timeout: 200ms}\n"
                "scrape_configs:\n  - job_name: crash\n"
                "    profiling_config: {pprof_config: {allocs: {enabled: true}}}\n"
                f"    static_configs: [{{targets: [{targets}]}}]\n")
    return cfg


def start_leakwatchd(cfg, db, log):
    return t.start([LEAKWATCHD, "--log.level=debug", f"--config.file={cfg}", f"--storage.path={db}",
                    "--storage.retention.time=0", f"--web.listen-address=127.0.0.1:{t.free_port()}"],
                   log=log)


def stored_ids(log):
    with open(log, errors="replace") as f:
        return [int(m.group(1)) for m in STORED_RE.finditer(f.read())]


def profile_ids(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        integrity = [r[0] for r in con.execute("PRAGMA integrity_check")]
        ids = {r[0] for r in con.execute("SELECT id FROM profiles")}
    finally:
        con.close()
    return integrity, ids


def test_kill_during_ingest():
    d = t.tempdir("crash-")
    servers = start_profile_servers(d)
    cfg = write_config(d, servers)
    db = os.path.join(d, "lw.db")
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    acknowledged = set()
    for i in range(N_KILLS):
        log = os.path.join(d, f"leakwatchd-{i:02d}.log")
        p = start_leakwatchd(cfg, db, log)
        delay = rng.uniform(0.3, 2.0)
        try:
            p.wait(timeout=delay)
        except Exception:
            pass
        exited = p.poll()
        t.stop(p, signal.SIGKILL)
        ids = stored_ids(log)
        text = open(log, errors="replace").read()
        print(f"run {i:2d}: killed after {delay:.2f}s, {len(ids)} profiles logged as stored"
              f"{', ready' if 'leakwatchd ready' in text else ''}")
        t.check(exited is None, f"run {i}: leakwatchd was still running when killed (exit {exited})")
        t.check("cannot open storage" not in text, f"run {i}: storage opened after the previous kill")
        t.check(not acknowledged & set(ids), f"run {i}: no id logged twice across runs")
        acknowledged.update(ids)

    integrity, present = profile_ids(db)
    missing = sorted(acknowledged - present)
    print(f"{N_KILLS} kills: {len(acknowledged)} profiles logged as stored, {len(present)} in the "
          f"database, {len(missing)} missing; integrity_check: {integrity[:3]}")
    t.check_eq(integrity, ["ok"], "PRAGMA integrity_check after the last kill")
    t.check(len(acknowledged) >= 50, f"enough ingest to mean something ({len(acknowledged)} >= 50)")
    t.check_eq(missing, [], "acknowledged profiles missing from the database")

    log = os.path.join(d, "leakwatchd-final.log")
    p = start_leakwatchd(cfg, db, log)
    t.wait_until(lambda: p.poll() is not None or len(stored_ids(log)) >= 12, 60,
                 "the final run to store profiles")
    rc = t.stop(p, signal.SIGTERM, timeout=30)
    new = stored_ids(log)
    print(f"final run: {len(new)} new profiles, exit {rc}")
    t.check_eq(rc, 0, "final run: exit code after SIGTERM")
    t.check(len(new) >= 12 and not set(new) & acknowledged, "final run: new profiles with new ids")
    integrity, present = profile_ids(db)
    t.check_eq(integrity, ["ok"], "PRAGMA integrity_check after the final clean run")
    t.check_eq(sorted((acknowledged | set(new)) - present), [], "every logged profile present at the end")
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def refuse(path, d, what, want):
    before = sha256(path)
    mtime = os.stat(path).st_mtime_ns
    log = os.path.join(d, "refuse-%s.log" % re.sub(r"\W", "_", what))
    p = t.start([LEAKWATCHD, f"--storage.path={path}", f"--web.listen-address=127.0.0.1:{t.free_port()}",
                 "--target=http://127.0.0.1:1"], log=log)
    try:
        rc = p.wait(timeout=60)
    finally:
        t.stop(p, signal.SIGKILL)
    text = open(log, errors="replace").read()
    line = next((ln for ln in text.splitlines() if "level=error" in ln), "")
    print(f"{what}: exit {rc}: {line}")
    t.check(rc not in (0, None), f"{what}: leakwatchd exits non-zero ({rc})")
    t.check(all(w in line for w in want), f"{what}: the error says {want}:\n{text[-2000:]}")
    t.check_eq(sha256(path), before, f"{what}: file content unchanged")
    t.check_eq(os.stat(path).st_mtime_ns, mtime, f"{what}: file not written (mtime)")
    for suffix in ("-wal", "-journal"):
        t.check(not os.path.exists(path + suffix), f"{what}: no {suffix} file created")


def test_corrupt_db_at_startup():
    d = t.tempdir("corrupt-")
    junk = os.path.join(d, "junk.db")
    with open(junk, "wb") as f:
        f.write(os.urandom(64 * 1024))
    refuse(junk, d, "random bytes", ["cannot open storage", "not a leakwatch database (not an SQLite file)"])

    foreign = os.path.join(d, "foreign.db")
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO accounts(name) VALUES (?)", [("n%d" % i,) for i in range(100)])
    con.commit()
    con.close()
    refuse(foreign, d, "foreign SQLite database", ["cannot open storage", "not a leakwatch database"])

    # A real leakwatch database (created by a short run) with every page but
    # the first overwritten by random bytes.
    real = os.path.join(d, "real.db")
    p = t.start([LEAKWATCHD, f"--storage.path={real}", f"--web.listen-address=127.0.0.1:{t.free_port()}",
                 "--target=http://127.0.0.1:1"], log=os.path.join(d, "create.log"))
    t.wait_until(lambda: "leakwatchd ready" in open(p.log_path, errors="replace").read(), 60,
                 "leakwatchd to create a database")
    t.check_eq(t.stop(p, signal.SIGTERM, timeout=30), 0, "creating run: exit code")
    damaged = os.path.join(d, "damaged.db")
    shutil.copyfile(real, damaged)
    size = os.path.getsize(damaged)
    page = int.from_bytes(open(damaged, "rb").read(100)[16:18], "big") or 65536
    with open(damaged, "r+b") as f:
        f.seek(page)
        f.write(os.urandom(size - page))
    print(f"damaged copy: {size} bytes, pages after the first ({page} bytes) random")
    # Page 1 (header and schema) is intact, so the store opens; the first
    # read fails (the leak detector's warm-up), which says the file is damaged.
    refuse(damaged, d, "leakwatch database with random pages", ["startup failed", "it is damaged"])


if __name__ == "__main__":
    t.run_tests([test_corrupt_db_at_startup, test_kill_during_ingest])
