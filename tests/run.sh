#!/usr/bin/env bash
# tests/run.sh — the README's test command: install dependencies, build with
# -Werror and AddressSanitizer+UndefinedBehaviorSanitizer (the agent and its
# test programs are built plain, see CMakeLists.txt), run the whole suite
# through ctest. Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
BUILD=${LW_TEST_BUILD_DIR:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DLW_WERROR=ON -DLW_SANITIZE=ON
cmake --build "$BUILD" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$BUILD" --output-on-failure -j2 ${LW_CTEST_ARGS:-}
