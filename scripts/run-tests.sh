#!/usr/bin/env bash
# Runs every meson test suite and ends with one plain "N passed, N failed" line for CI.
set -uo pipefail
build=${1:-build}
meson test -C "$build" --print-errorlogs --num-processes 2 --timeout-multiplier 1
status=$?
log="$build/meson-logs/testlog.json"
if [[ -f "$log" ]]; then
  python3 - "$log" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    result = json.loads(line).get("result")
    if result in ("OK", "EXPECTEDFAIL"): passed += 1
    elif result == "SKIP": skipped += 1
    else: failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
fi
exit $status
