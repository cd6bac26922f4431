#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++-16 into $1 (default build-fuzz).
# Run one: build-fuzz/tests/fuzz/<area>/fuzz_<name> -max_total_time=600 tests/corpus/<name>
set -euo pipefail
build=${1:-build-fuzz}
if [[ ! -f "$build/build.ninja" ]]; then
  CXX=clang++-16 CXX_LD=lld meson setup "$build" -Dfuzz=true -Db_lundef=false 2>/dev/null \
    || CXX=clang++-16 meson setup "$build" -Dfuzz=true -Db_lundef=false
fi
ninja -C "$build"
