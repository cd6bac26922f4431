#!/usr/bin/env bash
# Runs every libFuzzer target in $1 (default build-fuzz) for $2 seconds each (default 60), one
# after the other, each on a temporary copy of tests/corpus/<name> (target fuzz_<name>) so the
# committed corpus stays small. Prints the exec count per target; exits 1 if any target crashed
# (its log and crash file stay in the temporary directory, which is printed).
set -euo pipefail
build=$(realpath "${1:-build-fuzz}")
seconds=${2:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/microvmm-fuzz.XXXXXX")
status=0
mapfile -t targets < <(find "$build/tests/fuzz" -type f -name 'fuzz_*' -perm -u+x | sort)
[[ ${#targets[@]} -gt 0 ]] || { echo "run.sh: no fuzz targets under $build/tests/fuzz (make fuzz first)" >&2; exit 1; }
for target in "${targets[@]}"; do
  name=$(basename "$target")
  corpus=$work/$name.corpus
  mkdir -p "$corpus"
  [[ -d $root/tests/corpus/${name#fuzz_} ]] && cp "$root/tests/corpus/${name#fuzz_}"/* "$corpus"/ 2>/dev/null || true
  if (cd "$work" && "$target" -max_total_time="$seconds" -print_final_stats=1 "$corpus" >"$work/$name.log" 2>&1); then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
    echo "$name: ${execs:-?} execs in ${seconds} s, no failure"
  else
    echo "$name: FAILED, see $work/$name.log" >&2
    status=1
  fi
done
[[ $status -ne 0 ]] || rm -rf "$work"
exit $status
