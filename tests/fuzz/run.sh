#!/usr/bin/env bash
# Runs every libFuzzer target in $1 (default build-fuzz) for $2 seconds each (default 60), one
# after the other, each on a temporary copy of tests/corpus/<name> (target fuzz_<name>) so the
# committed corpus stays small, with tests/fuzz/*/fuzz_<name>.dict and .options when present. Optional
# further arguments name the targets to run (default: all). Prints executions and exec/s per
# target; exits 1 if any target crashed or broke an invariant (its log and crash file stay in the
# temporary directory, which is printed).
# FUZZ_RUNS=N (environment): stop each target after N executions instead of (or, with a time
# limit too, whichever comes first) the time limit; issue 19's long run is FUZZ_RUNS=10000000.
set -euo pipefail
build=$(realpath "${1:-build-fuzz}")
seconds=${2:-60}
shift $(( $# < 2 ? $# : 2 ))
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/microvmm-fuzz.XXXXXX")
status=0
# Symbolized stack traces in crash reports (Debian installs llvm-symbolizer without the plain name).
[[ -z ${ASAN_SYMBOLIZER_PATH:-} && -x /usr/lib/llvm-16/bin/llvm-symbolizer ]] && export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-16/bin/llvm-symbolizer
mapfile -t targets < <(find "$build/tests/fuzz" -type f -name 'fuzz_*' -perm -u+x | sort)
[[ ${#targets[@]} -gt 0 ]] || { echo "run.sh: no fuzz targets under $build/tests/fuzz (make fuzz first)" >&2; exit 1; }
for target in "${targets[@]}"; do
  name=$(basename "$target")
  if [[ $# -gt 0 ]] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
  corpus=$work/$name.corpus
  mkdir -p "$corpus"
  [[ -d $root/tests/corpus/${name#fuzz_} ]] && cp "$root/tests/corpus/${name#fuzz_}"/* "$corpus"/ 2>/dev/null || true
  options=(-max_total_time="$seconds" -print_final_stats=1)
  [[ -n ${FUZZ_RUNS:-} ]] && options+=(-runs="$FUZZ_RUNS")
  dict=$(find "$root/tests/fuzz" -name "$name.dict" | head -n 1)
  [[ -n $dict ]] && options+=(-dict="$dict")
  # fuzz_<name>.options (OSS-Fuzz style: "key = value" lines under [libfuzzer]) become -key=value.
  opts=$(find "$root/tests/fuzz" -name "$name.options" | head -n 1)
  if [[ -n $opts ]]; then
    while IFS='=' read -r key value; do
      key=${key//[[:space:]]/}; value=${value//[[:space:]]/}
      [[ -z $key || $key == \#* || $key == \[* ]] && continue
      options+=(-"$key"="$value")
    done <"$opts"
  fi
  start=$(date +%s.%N)
  # CPU seconds too: on a shared host exec per CPU-second is the rate that does not depend on load.
  if (cd "$work" && /usr/bin/time -f '%U %S' -o "$work/$name.cpu" "$target" "${options[@]}" "$corpus" >"$work/$name.log" 2>&1); then
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$name.log")
    cpu=$(awk 'END { print $1 + $2 }' "$work/$name.cpu")
    awk -v n="$name" -v e="${execs:-0}" -v s="$start" -v t="$end" -v c="$cpu" -v r="${rss:-?}" \
      'BEGIN { printf "%s: %d execs in %.0f s = %.0f exec/s (%.0f per CPU-second, %.0f CPU-s), peak RSS %s MB, no failure\n", n, e, t - s, e / (t - s), e / (c > 0 ? c : 1), c, r }'
  else
    echo "$name: FAILED, see $work/$name.log" >&2
    status=1
  fi
done
[[ $status -ne 0 ]] || rm -rf "$work"
exit $status
