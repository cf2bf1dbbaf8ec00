#!/usr/bin/env bash
# quickstart.sh — the README's first command: install dependencies, build, and
# run the main job (leakwatchd with its embedded SQLite default, scraping the
# bundled leaky-demo service). Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
if [ ! -x build/bin/leakwatchd ] || [ ! -x build/bin/leaky-demo ]; then
  echo "quickstart: built the codec; leakwatchd and leaky-demo are not built yet."
  echo "quickstart: it will run build/bin/leaky-demo and build/bin/leakwatchd --target=http://127.0.0.1:6060"
  exit 0
fi
exec ./deploy/demo.sh
