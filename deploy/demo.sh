#!/usr/bin/env bash
# demo.sh — run the quick-start demo from an existing build: leaky-demo (a C
# service with the leakwatch agent inside, leaking one thread every few
# seconds) and leakwatchd scraping it with a short interval and detection
# window. Prints what runs where, then follows the leak verdicts until a
# GoroutineLeak alert fires and names the leaking stack. Ctrl-C stops
# everything.
#
# Environment (all optional): LW_BUILD_DIR (build), LW_DEMO_PORT (8080),
# LW_AGENT_PORT (6060), LW_WEB_PORT (9475), LW_DATA_DIR (./data),
# LW_DEMO_EXIT_WHEN_FIRING=1 (exit 0 once the alert fires; used by the test),
# LW_DEMO_TIMEOUT (seconds before giving up with exit 1; default: run forever).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${LW_BUILD_DIR:-build}
DEMO_PORT=${LW_DEMO_PORT:-8080}
AGENT_PORT=${LW_AGENT_PORT:-6060}
WEB_PORT=${LW_WEB_PORT:-9475}
DATA=${LW_DATA_DIR:-./data}
URL="http://127.0.0.1:${WEB_PORT}"
CLI="$BUILD/bin/leakwatch --url=$URL"

mkdir -p "$DATA"
pids=()
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping leakwatchd and leaky-demo"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

"$BUILD/bin/leaky-demo" --listen="127.0.0.1:${DEMO_PORT}" --pprof-addr="127.0.0.1:${AGENT_PORT}" \
  --leak=thread --leak-every=2s >"$DATA/leaky-demo.log" 2>&1 &
pids+=($!)
"$BUILD/bin/leakwatchd" --target="http://127.0.0.1:${AGENT_PORT}" \
  --storage.path="$DATA/leakwatch.db" --web.listen-address="127.0.0.1:${WEB_PORT}" \
  --scrape.interval=3s --scrape.timeout=2s \
  --detection.window=60s --detection.for=15s --detection.min-samples=10 \
  >"$DATA/leakwatchd.log" 2>&1 &
pids+=($!)

cat <<EOF
leakwatch demo is running:
  leaky-demo     http://127.0.0.1:${DEMO_PORT}/   (leaks one thread blocked on a pipe every 2s)
  its pprof      http://127.0.0.1:${AGENT_PORT}/debug/pprof/
  leakwatchd     ${URL}/api/v1/targets   metrics: ${URL}/metrics
  logs           $DATA/leaky-demo.log  $DATA/leakwatchd.log

Try, in another terminal:
  $CLI targets
  $CLI leaks
  $CLI alerts
  $CLI diff --instance 127.0.0.1:${AGENT_PORT} --type goroutine --from now-1m --to now --top 10
  go tool pprof -top '${URL}/api/v1/diff?instance=127.0.0.1:${AGENT_PORT}&type=goroutine&from=now-1m&to=now'

Waiting for the GoroutineLeak alert (about two minutes); Ctrl-C stops everything.
EOF

start=$(date +%s)
fired=0
while true; do
  sleep 5
  for p in "${pids[@]}"; do
    if ! kill -0 "$p" 2>/dev/null; then
      echo "demo: a process exited unexpectedly; last log lines:" >&2
      tail -n 20 "$DATA/leakwatchd.log" "$DATA/leaky-demo.log" >&2
      exit 1
    fi
  done
  now=$(date +%s)
  if [ "$fired" = 0 ] && $CLI alerts 2>/dev/null | grep -q 'GoroutineLeak.*firing'; then
    fired=1
    echo
    echo "== $((now - start))s: GoroutineLeak is firing =="
    $CLI alerts || true
    echo
    $CLI leaks || true
    if [ "${LW_DEMO_EXIT_WHEN_FIRING:-0}" = 1 ]; then
      exit 0
    fi
    echo
    echo "(still running; Ctrl-C to stop)"
  elif [ "$fired" = 0 ]; then
    printf '%4ss: threads=%s  %s\n' "$((now - start))" \
      "$(curl -s "${URL}/metrics" | awk '/^leakwatch_goroutines\{/ {print $2; exit}')" \
      "$($CLI alerts 2>/dev/null | grep -o 'GoroutineLeak.*pending' | head -1)"
  fi
  if [ -n "${LW_DEMO_TIMEOUT:-}" ] && [ $((now - start)) -ge "${LW_DEMO_TIMEOUT}" ]; then
    echo "demo: no firing alert after ${LW_DEMO_TIMEOUT}s" >&2
    tail -n 30 "$DATA/leakwatchd.log" >&2
    exit 1
  fi
done
