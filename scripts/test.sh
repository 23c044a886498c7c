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

# Work that runs beside a test suite, at the lowest CPU and I/O priority: a suite keeps less than
# one of CI's two cores busy (its tests mostly wait), so a build or lint beside it takes the idle
# core without slowing the tests. Each job gets its own process group, stopped if the run ends
# early, and its own log, printed when it fails.
logs="$(mktemp -d /tmp/marmot-test-XXXXXX)"
background_pids=()
stop_background() {
  for pid in "${background_pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
}
trap stop_background EXIT
start_background() {  # NAME COMMAND...: runs COMMAND in the background, its output in $logs/NAME.log
  local name="$1"
  shift
  setsid nice -n 19 ionice -c3 "$@" >"$logs/$name.log" 2>&1 &
  background_pids+=("$!")
  eval "pid_$name=$!"
}
finish_background() {  # NAME: waits for the job; its log's tail and exit 1 when it failed
  local name="$1" pid_var="pid_$1"
  if ! wait "${!pid_var}"; then
    tail -n 60 "$logs/$name.log"
    echo "$name failed (whole log: $logs/$name.log)"
    exit 1
  fi
  background_pids=()  # one job at a time: none is left to stop
}

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

all_checks=false
if [ "${CI:-}" = "true" ] || [ "${MARMOT_SANITIZE:-0}" = "1" ]; then all_checks=true; fi
if $all_checks; then
  stage "sanitizer build (ASan + UBSan), beside the Release suite"
  start_background asan_build env MARMOT_BUILD_DIR="$root/build-asan" MARMOT_BUILD_TYPE=RelWithDebInfo \
    MARMOT_CMAKE_ARGS="-DMARMOT_SANITIZE=ON -DMARMOT_BENCH=OFF" bash "$root/scripts/setup.sh"
fi
stage "test suite (Release)"
ctest --test-dir "$root/build" --output-on-failure -j"$test_jobs" --timeout 600

if $all_checks; then
  stage "waiting for the sanitizer build"
  finish_background asan_build
  stage "lint and fuzzing (libFuzzer, ASan+UBSan), beside the sanitizer suite"
  start_background checks bash -c "bash '$root/scripts/lint.sh' && FUZZ_SECONDS=10 bash '$root/scripts/fuzz.sh'"
  stage "test suite (ASan + UBSan)"
  # The sanitizers look for memory errors, not endurance: shorter fault runs, and a higher memory
  # bound for the 50 MB row (ASan keeps up to 256 MB of freed memory in quarantine; docs/TESTING.md).
  FAULT_SECONDS=5 BIG_ROWS=200000 BIG_RSS_MB=1500 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j"$test_jobs" --timeout 900
  stage "waiting for lint and fuzzing"
  finish_background checks
  cat "$logs/checks.log"
fi
rm -rf "$logs"
stage "done"
