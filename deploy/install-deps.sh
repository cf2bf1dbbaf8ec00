#!/usr/bin/env bash
# install-deps.sh — install every build, test and run dependency of leakwatch
# from Debian 12 packages. Idempotent; run as root. Nothing is downloaded from
# anywhere but the Debian archive.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config git
  # libraries: HTTP client, HTTP server, storage, profile format, compression
  libcurl4-openssl-dev libmicrohttpd-dev libsqlite3-dev sqlite3
  libprotobuf-c-dev protobuf-c-compiler zlib1g-dev libdeflate-dev
  # config (libyaml), stacks and symbols (libunwind, elfutils libdw/libelf)
  libyaml-dev libunwind-dev libdw-dev libelf-dev
  # tests: cmocka, Go peers and go tool pprof, Prometheus, Alertmanager,
  # systemd-analyze, Python 3 (stdlib) test drivers, curl
  libcmocka-dev golang-go prometheus prometheus-alertmanager systemd
  python3 python3-yaml curl ca-certificates procps
  # fuzzing (libFuzzer targets, tests/fuzz) and the TSan build: clang 14 and its runtimes
  clang libclang-rt-14-dev
  # agent tests: the agent interposes malloc (no ASan), checked under valgrind
  valgrind
  # benchmarks (bench/run): HTTP load generator for the agent-on-a-service figure
  wrk
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (apt-get needs it)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
