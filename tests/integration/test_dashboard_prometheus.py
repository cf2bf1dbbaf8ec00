#!/usr/bin/env python3
"""test_dashboard_prometheus.py — every PromQL expression we ship works against real data.

A real Prometheus (Debian's) scrapes a running leakwatchd, which scrapes the
shared Go service (leaking a goroutine every 200 ms) and one dead target.
Prometheus also loads dashboards/leakwatch-rules.yml. Then every expression of
the Grafana dashboard (variables replaced by ".*", $__rate_interval by 1m)
and of the rules file is evaluated through Prometheus' HTTP API: each must
parse, and each must return data. For rule expressions that end in a
threshold filter ("== 1", "> 1e9") the unfiltered left-hand side must return
data (the filter itself may legitimately select nothing), and the goroutine
leak rule must actually select the leaking target.
"""
import json
import os
import re
import urllib.parse

import yaml

from lwtest import (BIN, SOURCE_DIR, check, check_eq, free_port, http, http_json, log_tail, run_tests,
                    start, start_gosvc, tempdir, wait_http, wait_until)

DASH = os.path.join(SOURCE_DIR, "dashboards")


def substitute(expr):
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$\{?[a-z_]+\}?", ".*", expr)


def strip_filter(expr):
    m = re.match(r"^(.*\S)\s*(==|!=|>=|<=|>|<)\s*[-+0-9.e]+$", expr.strip(), re.S)
    return m.group(1) if m else expr


def test_dashboard_and_rules_against_prometheus():
    d = tempdir()
    svc, svc_url = start_gosvc(["-leak-every", "200ms", "-leak", "goroutine"], log_dir=d)
    dead_port = free_port()
    web_port = free_port()
    lw = start([os.path.join(BIN, "leakwatchd"), f"--target={svc_url}",
                f"--target=http://127.0.0.1:{dead_port}",
                f"--storage.path={d}/lw.db", f"--web.listen-address=127.0.0.1:{web_port}",
                "--scrape.interval=1s", "--scrape.timeout=900ms",
                "--detection.window=20s", "--detection.for=3s", "--detection.min-samples=8",
                "--detection.evaluation-interval=1s"],
               log=os.path.join(d, "leakwatchd.log"))
    lw_url = f"http://127.0.0.1:{web_port}"
    wait_http(lw_url + "/-/healthy", proc=lw)

    prom_port = free_port()
    prom_cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [os.path.join(DASH, "leakwatch-rules.yml")],
        "scrape_configs": [{
            "job_name": "leakwatchd",
            # Keep the job/instance labels leakwatchd puts on its targets'
            # series (README: scraping leakwatchd).
            "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{web_port}"]}],
        }],
    }
    cfg_path = os.path.join(d, "prometheus.yml")
    with open(cfg_path, "w") as f:
        yaml.safe_dump(prom_cfg, f)
    prom = start(["prometheus", f"--config.file={cfg_path}", f"--storage.tsdb.path={d}/tsdb",
                  f"--web.listen-address=127.0.0.1:{prom_port}"], log=os.path.join(d, "prometheus.log"))
    prom_url = f"http://127.0.0.1:{prom_port}"
    wait_http(prom_url + "/-/ready", proc=prom, timeout=60)
    wait_until(lambda: http(prom_url + "/-/ready")[0] == 200, 60, "Prometheus ready")

    def query(expr):
        status, body = http_json(prom_url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        return status, body

    def leak_seen():
        if lw.poll() is not None:
            raise AssertionError("leakwatchd died:\n" + log_tail(lw))
        _, body = query('leakwatch_leak_suspected{signal="goroutines"} == 1')
        return body and body.get("data", {}).get("result")

    wait_until(leak_seen, 120, "Prometheus to see leakwatch_leak_suspected{signal=\"goroutines\"} == 1")
    # Two more scrape rounds so rate() over the error counter has points.
    wait_until(lambda: query('rate(leakwatch_scrapes_total{result="error"}[1m]) > 0')[1]["data"]["result"],
               30, "a non-zero scrape error rate")

    with open(os.path.join(DASH, "leakwatch-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [(f"dashboard panel '{p['title']}'", t["expr"]) for p in dash["panels"] for t in p["targets"]]
    with open(os.path.join(DASH, "leakwatch-rules.yml")) as f:
        rules = yaml.safe_load(f)
    exprs += [(f"rule {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    check(len(exprs) >= 15, f"{len(exprs)} expressions to evaluate")

    for what, expr in exprs:
        e = substitute(expr)
        status, body = query(e)
        check(status == 200 and body["status"] == "success", f"{what}: `{e}` parses ({status})")
        data_expr = strip_filter(e)
        _, body = query(data_expr)
        n = len(body["data"]["result"])
        check(n > 0, f"{what}: `{data_expr}` returns data ({n} series)")

    _, body = query('leakwatch_leak_suspected{signal="goroutines"} == 1')
    instances = {r["metric"].get("instance") for r in body["data"]["result"]}
    check_eq(instances, {svc_url.replace("http://", "")}, "instances the GoroutineLeakSuspected rule selects")
    status, body = http_json(prom_url + "/api/v1/rules")
    names = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
    check({"GoroutineLeakSuspected", "HeapLeakSuspected", "LeakwatchTargetDown"} <= names,
          f"Prometheus loaded our rules: {sorted(names)}")
    del svc


if __name__ == "__main__":
    run_tests([test_dashboard_and_rules_against_prometheus])
