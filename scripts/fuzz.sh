#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang in build-fuzz/ and runs each for FUZZ_SECONDS
# (default 20; CI: 10) from the seed corpus in fuzz/corpus/<target>. New inputs go to a temp dir (the
# repo's corpus is only read); a crash, hang, leak or sanitizer report fails the run, and the
# input that caused it is kept in build-fuzz/artifacts/. scripts/test.sh runs this in CI.
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh       # a longer run
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-20}"
build="$root/build-fuzz"
# -O1 with line tables: libFuzzer's usual build, and quicker to compile than -O2 -g.
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DMARMOT_FUZZ=ON -DCMAKE_BUILD_TYPE= \
  -DCMAKE_CXX_FLAGS="-O1 -gline-tables-only" -DCMAKE_C_FLAGS="-O1 -gline-tables-only" >/dev/null
cmake --build "$build" -j"${MARMOT_JOBS:-2}" >/dev/null
mkdir -p "$build/artifacts"
for target in wire_format config chunks; do
  work="$(mktemp -d /tmp/marmot-fuzz-XXXXXX)"
  if ! "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/artifacts/$target-" "$work" "$root/fuzz/corpus/$target" >"$work.log" 2>&1; then
    tail -n 40 "$work.log"
    echo "fuzz_$target failed; the input is in $build/artifacts/ (replay: $build/fuzz/fuzz_$target FILE)"
    exit 1
  fi
  echo "fuzz_$target: $(grep -aoE "Done [0-9]+ runs in [0-9]+ second" "$work.log"), $(ls "$work" | wc -l) new inputs"
  rm -rf "$work" "$work.log"
done
