#!/usr/bin/env bash
# run.sh — ThreadSanitizer run of leakwatch's threaded parts.
#
# Usage: tests/tsan/run.sh [extra ctest args]
# Configures build-tsan/ (-DLW_TSAN=ON, gcc, Debug), builds it, and runs the
# tests that exercise threads: the storage unit test's concurrent
# ingest-while-reading, the detect engine, the API units, the collector's
# decode/ingest worker threads against real and hostile targets (unit
# test_coll, integration collector_scrape, collector_config, soak), the API
# server under 50 concurrent clients (integration api, api_daemon) and the
# store integration test. Every TSan report is
# written to build-tsan/tsan-reports/ (log_path) as well as failing the
# process (exitcode 66); the script prints the reports and exits 1 when
# there is any report or failed test. Too slow for the normal suite (a
# second full build, TSan's 5-15x slowdown), so it is a separate command.
# Env: LW_TSAN_BUILD_DIR (build dir), LW_TSAN_JOBS (make -j, 2),
# LW_TSAN_TESTS (ctest -R regex replacing the default selection),
# LW_TSAN_TARGETS (what to build, for another selection).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${LW_TSAN_BUILD_DIR:-$src/build-tsan}
tests=${LW_TSAN_TESTS:-'^(unit\.test_store|unit\.test_detect_engine|unit\.test_api_params|unit\.test_api_json|unit\.test_api_webconfig|unit\.test_pprof|unit\.test_coll|integration\.collector_scrape|integration\.collector_config|integration\.collector_self_agent|integration\.api|integration\.api_daemon|integration\.store|integration\.soak)$'}

mkdir -p "$build"
cmake -S "$src" -B "$build" -DLW_TSAN=ON -DLW_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
  >"$build/lw-configure.log" 2>&1 || { cat "$build/lw-configure.log" >&2; exit 1; }
# The agent is never sanitized (it interposes malloc) and no selected test
# needs it, so only the sanitized programs and test executables are built.
targets=${LW_TSAN_TARGETS:-"leakwatchd leakwatch lwapi-testd lwcoll-dump lwstore-tool lwpprof-tool
  test_store test_coll test_detect_engine test_api_params test_api_json test_api_webconfig test_pprof"}
# shellcheck disable=SC2086
cmake --build "$build" -j"${LW_TSAN_JOBS:-2}" --target $targets >"$build/lw-build.log" 2>&1 ||
  { tail -50 "$build/lw-build.log" >&2; exit 1; }

reports=$build/tsan-reports
rm -rf "$reports"
mkdir -p "$reports"
export TSAN_OPTIONS="log_path=$reports/tsan exitcode=66 halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
rc=0
ctest --test-dir "$build" -R "$tests" --output-on-failure --timeout 900 "$@" || rc=$?

n=$(find "$reports" -type f | wc -l)
echo "== TSan: $n report file(s) in $reports"
if [ "$n" -gt 0 ]; then
  for f in "$reports"/*; do
    echo "--- $f"
    head -80 "$f"
  done
  rc=1
fi
[ "$rc" -eq 0 ] && echo "== TSan: clean (no report, all selected tests passed)"
exit $rc
