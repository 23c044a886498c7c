#!/usr/bin/env bash
# Checks the code against the repo's .clang-format and .clang-tidy. Needs build/compile_commands.json
# (scripts/setup.sh makes it). Exit code 1 when anything is off.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mapfile -t sources < <(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'bench/*.h' 'fuzz/*.cpp')
echo "== clang-format (${#sources[@]} files)"
clang-format --dry-run -Werror "${sources[@]}"
mapfile -t units < <(git ls-files 'src/*.cpp')
echo "== clang-tidy (${#units[@]} files)"
printf '%s\n' "${units[@]}" | xargs -P "${MARMOT_JOBS:-2}" -n 4 \
  clang-tidy -p build --quiet --extra-arg=-Wno-unknown-warning-option 2>/dev/null
echo "lint: clean"
