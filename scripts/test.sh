#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds in Release, runs every test with
# ctest; then (in CI, or with MARMOT_SANITIZE=1) clang-format/clang-tidy (scripts/lint.sh), a short
# run of the fuzz targets (scripts/fuzz.sh) and the same suite built with ASan+UBSan.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Tests run more at once than there are cores: the end-to-end tests mostly wait on processes and
# the network (bench.quick runs alone, RUN_SERIAL). On 2 cores this takes the Release suite from
# about 7.5 to 4.5 minutes.
test_jobs="${MARMOT_TEST_JOBS:-4}"
# Each stage says how long the run has taken so far (CI keeps the whole run under 25 minutes).
stage() { echo "== $1 (at $((SECONDS / 60))m$((SECONDS % 60))s)"; }

bash "$root/scripts/setup.sh"
# Test-only servers and clients from npm (s3rver, the official NATS object store client), pinned
# by tests/npm/package-lock.json.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f "$root/tests/npm/node_modules/.package-lock.json" ] ||
  ! cmp -s "$root/tests/npm/package-lock.json" "$root/tests/npm/node_modules/.marmot-installed-lock"; then
  npm ci --prefix "$root/tests/npm" --no-audit --no-fund --loglevel=error
  cp "$root/tests/npm/package-lock.json" "$root/tests/npm/node_modules/.marmot-installed-lock"
fi
stage "test suite (Release)"
ctest --test-dir "$root/build" --output-on-failure -j"$test_jobs" --timeout 600

if [ "${CI:-}" = "true" ] || [ "${MARMOT_SANITIZE:-0}" = "1" ]; then
  stage "lint"
  bash "$root/scripts/lint.sh"
  stage "fuzzing (libFuzzer, ASan+UBSan)"
  FUZZ_SECONDS=10 bash "$root/scripts/fuzz.sh"
  stage "sanitizer build (ASan + UBSan)"
  MARMOT_BUILD_DIR="$root/build-asan" MARMOT_BUILD_TYPE=RelWithDebInfo \
    MARMOT_CMAKE_ARGS="-DMARMOT_SANITIZE=ON -DMARMOT_BENCH=OFF" bash "$root/scripts/setup.sh"
  stage "test suite (ASan + UBSan)"
  # The sanitizers look for memory errors, not endurance: shorter fault runs, and a higher memory
  # bound for the 50 MB row (ASan keeps up to 256 MB of freed memory in quarantine; docs/TESTING.md).
  FAULT_SECONDS=5 BIG_ROWS=200000 BIG_RSS_MB=1500 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j"$test_jobs" --timeout 900
fi
stage "done"
