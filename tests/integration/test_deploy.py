#!/usr/bin/env python3
"""test_deploy.py — the shipped deployment files are valid and say what the docs claim.

- deploy/leakwatchd.service passes `systemd-analyze verify` (pointed at the
  built leakwatchd) and carries the hardening the README promises;
- dashboards/leakwatch-rules.yml passes `promtool check rules`;
- the example config and the Kubernetes ConfigMap's config pass
  `leakwatchd --config.check`;
- the Kubernetes manifests parse and have the probes, ports, volume and
  annotations the README describes;
- the Dockerfile is multi-stage on Debian 12 and runs as a non-root user;
- the Grafana dashboard only uses metrics leakwatchd exports.
"""
import json
import os
import re
import subprocess

import yaml

from lwtest import BIN, BINARY_DIR, SOURCE_DIR, check, check_eq, run_tests, tempdir

DEPLOY = os.path.join(SOURCE_DIR, "deploy")
DASH = os.path.join(SOURCE_DIR, "dashboards")
LEAKWATCHD = os.path.join(BIN, "leakwatchd")

# Metric families leakwatchd exports (issue "HTTP API": /metrics); the
# dashboard and rules may use nothing else.
EXPORTED = {
    "leakwatch_target_up", "leakwatch_scrape_duration_seconds", "leakwatch_scrapes_total",
    "leakwatch_goroutines", "leakwatch_heap_inuse_bytes", "leakwatch_heap_inuse_objects",
    "leakwatch_leak_growth_per_second", "leakwatch_leak_suspected", "leakwatch_alerts",
    "leakwatch_profiles_stored", "leakwatch_storage_bytes", "process_resident_memory_bytes",
    "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds",
}


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    print(f"$ {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}".rstrip())
    return r


def test_systemd_unit_verifies():
    d = tempdir()
    with open(os.path.join(DEPLOY, "leakwatchd.service")) as f:
        unit = f.read()
    # systemd-analyze verify fails when ExecStart's binary is missing: point
    # it at the built daemon.
    unit = unit.replace("/usr/local/bin/leakwatchd", LEAKWATCHD)
    path = os.path.join(d, "leakwatchd.service")
    with open(path, "w") as f:
        f.write(unit)
    r = run(["systemd-analyze", "verify", path])
    check_eq(r.returncode, 0, "systemd-analyze verify exit code")
    problems = [l for l in (r.stdout + r.stderr).splitlines() if "leakwatchd.service" in l]
    check_eq(problems, [], "systemd-analyze complaints about leakwatchd.service")
    for directive in ("DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=leakwatch",
                      "NoNewPrivileges=yes", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID"):
        check(directive in unit, f"unit has {directive}")


def test_rules_check():
    r = run(["promtool", "check", "rules", os.path.join(DASH, "leakwatch-rules.yml")])
    check_eq(r.returncode, 0, "promtool check rules exit code")
    with open(os.path.join(DASH, "leakwatch-rules.yml")) as f:
        rules = yaml.safe_load(f)
    used = set()
    for g in rules["groups"]:
        for rule in g["rules"]:
            used |= set(re.findall(r"\b(leakwatch_[a-z_]+|process_[a-z_]+)", rule["expr"]))
    check(used <= EXPORTED, f"rules use only exported metrics: {sorted(used - EXPORTED)} unknown")


def test_example_configs_check():
    r = run([LEAKWATCHD, "--config.check", "--config.file=" + os.path.join(DEPLOY, "leakwatch.yml")])
    check_eq(r.returncode, 0, "example config passes --config.check")
    with open(os.path.join(DEPLOY, "kubernetes", "leakwatch-sidecar.yaml")) as f:
        docs = list(yaml.safe_load_all(f))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    path = os.path.join(tempdir(), "leakwatch.yml")
    with open(path, "w") as f:
        f.write(cm["data"]["leakwatch.yml"])
    r = run([LEAKWATCHD, "--config.check", "--config.file=" + path])
    check_eq(r.returncode, 0, "Kubernetes ConfigMap config passes --config.check")


def test_kubernetes_manifests():
    with open(os.path.join(DEPLOY, "kubernetes", "leakwatch-sidecar.yaml")) as f:
        docs = list(yaml.safe_load_all(f))
    kinds = sorted(d["kind"] for d in docs)
    check_eq(kinds, ["ConfigMap", "Deployment", "Service"], "manifest kinds")
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    check_eq(sorted(containers), ["app", "leakwatchd"], "containers in the Pod")
    side = containers["leakwatchd"]
    ports = {p["name"]: p["containerPort"] for p in side["ports"]}
    check_eq(ports.get("leakwatch"), 9475, "sidecar port")
    check_eq(side["livenessProbe"]["httpGet"]["path"], "/-/healthy", "liveness probe path")
    check_eq(side["readinessProbe"]["httpGet"]["path"], "/-/ready", "readiness probe path")
    args = side["args"]
    storage = next(a.split("=", 1)[1] for a in args if a.startswith("--storage.path="))
    mounts = {m["mountPath"]: m["name"] for m in side["volumeMounts"]}
    check(os.path.dirname(storage) in mounts, f"DB dir {os.path.dirname(storage)} is a volume mount {mounts}")
    vols = {v["name"] for v in pod["spec"]["volumes"]}
    check(set(mounts.values()) <= vols, f"mounted volumes {set(mounts.values())} are declared {vols}")
    ann = pod["metadata"]["annotations"]
    check_eq(ann.get("prometheus.io/port"), "9475", "prometheus.io/port annotation")
    check_eq(ann.get("prometheus.io/scrape"), "true", "prometheus.io/scrape annotation")
    cfg = next(a.split("=", 1)[1] for a in args if a.startswith("--config.file="))
    check(os.path.dirname(cfg) in mounts, f"config dir {os.path.dirname(cfg)} is mounted")
    with open(os.path.join(DEPLOY, "kubernetes", "servicemonitor.yaml")) as f:
        sm = yaml.safe_load(f)
    check_eq(sm["kind"], "ServiceMonitor", "ServiceMonitor kind")
    check_eq(sm["spec"]["endpoints"][0]["port"], "leakwatch", "ServiceMonitor port name")


def test_dockerfile():
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    check(len(froms) >= 2, f"multi-stage build: FROM lines {froms}")
    check(all(f.startswith("debian:12") for f in froms), f"Debian 12 bases: {froms}")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    check(users and not users[-1].startswith("0") and users[-1] != "root", f"runs as non-root: {users}")


def test_dashboard_metrics():
    with open(os.path.join(DASH, "leakwatch-dashboard.json")) as f:
        dash = json.load(f)
    names = [v["name"] for v in dash["templating"]["list"]]
    for v in ("datasource", "job", "instance"):
        check(v in names, f"dashboard variable {v}")
    used = set()
    for p in dash["panels"]:
        check(p["datasource"]["uid"] == "${datasource}", f"panel {p['title']} uses the datasource variable")
        for t in p["targets"]:
            used |= set(re.findall(r"\b(leakwatch_[a-z_]+|process_[a-z_]+)", t["expr"]))
    check(used <= EXPORTED, f"dashboard uses only exported metrics: {sorted(used - EXPORTED)} unknown")


def test_cmake_install():
    prefix = tempdir("install-")
    r = run(["cmake", "--install", BINARY_DIR, "--prefix", prefix])
    check_eq(r.returncode, 0, "cmake --install exit code")
    for rel in ("bin/leakwatchd", "bin/leakwatch", "lib/libleakwatch-agent.so", "lib/libleakwatch-agent.a",
                "include/leakwatch/agent.h", "lib/systemd/system/leakwatchd.service",
                "etc/leakwatch/leakwatch.yml"):
        check(os.path.exists(os.path.join(prefix, rel)), f"installed {rel}")
    r = run([os.path.join(prefix, "bin", "leakwatchd"), "--version"])
    check(r.returncode == 0 and "leakwatchd version" in r.stdout, "installed leakwatchd runs")
    r = run([os.path.join(prefix, "bin", "leakwatchd"), "--config.check",
             "--config.file=" + os.path.join(prefix, "etc", "leakwatch", "leakwatch.yml")])
    check_eq(r.returncode, 0, "installed example config passes --config.check")


if __name__ == "__main__":
    run_tests([test_systemd_unit_verifies, test_rules_check, test_example_configs_check,
               test_kubernetes_manifests, test_dockerfile, test_dashboard_metrics, test_cmake_install])
