#!/usr/bin/env bash
# The long form of the fault suite (docs/TESTING.md): builds like scripts/test.sh, then runs every
# test labelled `fault` ROUNDS times (default 3) with FAULT_SECONDS of faults each (default 300),
# one test at a time, and prints what each run did. Exit code 1 when any run failed; the full
# output of round N is in build/fault-round-N.log.
#   bash scripts/fault.sh                      # 3 rounds of 300 s
#   ROUNDS=1 FAULT_SECONDS=60 bash scripts/fault.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${ROUNDS:-3}"
export FAULT_SECONDS="${FAULT_SECONDS:-300}"
bash "$root/scripts/setup.sh"
failed=0
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds (FAULT_SECONDS=$FAULT_SECONDS)"
  log="$root/build/fault-round-$round.log"
  ctest --test-dir "$root/build" -L fault --output-on-failure --timeout $((FAULT_SECONDS * 4 + 600)) -V >"$log" 2>&1 ||
    failed=1
  grep -E "^[0-9]+: (PASS|FAIL|writers done|[0-9]+ SIGKILLs)|Test +#" "$log" || true
done
if [ "$failed" = 0 ]; then echo "fault suite: every run passed"; else echo "fault suite: a run failed"; exit 1; fi
