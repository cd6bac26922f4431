#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Compile-fail test for vmm::Result: used_result.cpp must compile with the project's flags, and
# each dropped_*.cpp must fail with a nodiscard / unused-result diagnostic.
# Usage: check.py SNIPPET_DIR -- COMPILER ARGS...
import pathlib
import subprocess
import sys

snippets = pathlib.Path(sys.argv[1])
compiler = sys.argv[sys.argv.index("--") + 1:]


def compile_snippet(name):
    cmd = compiler + ["-fsyntax-only", str(snippets / name)]
    return subprocess.run(cmd, capture_output=True, text=True)


ok = True
control = compile_snippet("used_result.cpp")
if control.returncode != 0:
    print("used_result.cpp must compile but failed:\n" + control.stderr)
    ok = False
for snippet in sorted(snippets.glob("dropped_*.cpp")):
    run = compile_snippet(snippet.name)
    diagnostic = run.stderr.lower()
    if run.returncode == 0:
        print(f"{snippet.name} compiled, but dropping a Result must be an error")
        ok = False
    elif "nodiscard" not in diagnostic and "unused-result" not in diagnostic:
        print(f"{snippet.name} failed for another reason:\n{run.stderr}")
        ok = False
    else:
        print(f"{snippet.name}: rejected as expected")
sys.exit(0 if ok else 1)
