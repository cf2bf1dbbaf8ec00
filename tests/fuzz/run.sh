#!/usr/bin/env bash
# run.sh — build the libFuzzer targets with clang and fuzz each for a while.
#
# Usage: tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60, all)
# Builds build-fuzz-clang/ (-DLW_FUZZ=ON -DLW_SANITIZE=ON, CC=clang), then runs
# each target on a scratch copy of its seed corpus (tests/fuzz/corpus/<t>)
# plus its regressions (tests/data/fuzz-regressions/<t>), one job at a time,
# and prints the executions per target. Crash inputs land in
# build-fuzz-clang/fuzz-out/<t>/crash-*; copy them to
# tests/data/fuzz-regressions/<t>/ once the bug is fixed. Exits 1 if a target
# crashed. Env: LW_FUZZ_BUILD_DIR (build dir), LW_FUZZ_JOBS (make -j, 2).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
shift || true
build=${LW_FUZZ_BUILD_DIR:-$src/build-fuzz-clang}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pprof_decode config file_sd api_params)

command -v clang >/dev/null || { echo "run.sh: clang missing (deploy/install-deps.sh installs it)" >&2; exit 1; }

mkdir -p "$build"
CC=clang cmake -S "$src" -B "$build" -DLW_FUZZ=ON -DLW_SANITIZE=ON -DLW_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >"$build/lw-configure.log" 2>&1 ||
  { cat "$build/lw-configure.log" >&2; exit 1; }
cmake --build "$build" -j"${LW_FUZZ_JOBS:-2}" --target "${targets[@]/#/fuzz_}" >"$build/lw-build.log" 2>&1 ||
  { tail -50 "$build/lw-build.log" >&2; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=()
for t in "${targets[@]}"; do
  out=$build/fuzz-out/$t
  rm -rf "$out"
  mkdir -p "$out/corpus"
  cp "$src/tests/fuzz/corpus/$t"/* "$out/corpus/"
  if [ -d "$src/tests/data/fuzz-regressions/$t" ]; then
    cp "$src/tests/data/fuzz-regressions/$t"/* "$out/corpus/" 2>/dev/null || true
  fi
  dict=()
  [ -f "$src/tests/fuzz/$t.dict" ] && dict=(-dict="$src/tests/fuzz/$t.dict")
  echo "== fuzz_$t for ${secs}s"
  rc=0
  "$build/bin/fuzz_$t" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" \
    >"$out/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$out/log" | tail -1 || true)
  crashes=$(find "$out" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' -o -maxdepth 1 \
    -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l)
  line="fuzz_$t: ${execs:-?} executions, ${cov:-cov: ?}, corpus $(ls "$out/corpus" | wc -l) files, $crashes crash inputs, exit $rc"
  echo "$line"
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    grep -m1 -A30 'ERROR\|runtime error\|fuzz:' "$out/log" || tail -30 "$out/log"
  fi
done
echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
