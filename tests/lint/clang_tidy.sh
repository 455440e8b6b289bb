#!/usr/bin/env bash
# clang_tidy.sh BUILD_DIR - clang-tidy's static analyzer (the checks
# clang-analyzer-*, but for its security.insecureAPI ones) over every .c
# file of src/, compiled as BUILD_DIR/compile_commands.json says (CMake
# writes it: CMAKE_EXPORT_COMPILE_COMMANDS). Prints each finding; exits 1
# if any.
#
# A finding that cannot happen is suppressed on its own line: a comment
# that says why, then /* NOLINTNEXTLINE(<check>) */.
#
# One file per clang-tidy: given several, clang-tidy 14 reports every
# va_list after the first file's as uninitialized, va_start or not (LLVM
# issue #40656). Several at a time were no faster.
set -euo pipefail
build=$(cd "${1:?usage: clang_tidy.sh BUILD_DIR}" && pwd)
cd "$(dirname "$0")/../.."
command -v clang-tidy >/dev/null || {
    echo "clang_tidy: clang-tidy is not installed (scripts/install-deps)" >&2
    exit 1
}

if [ ! -f "$build/compile_commands.json" ]; then
    echo "clang_tidy: no compile_commands.json in '$build'" >&2
    exit 1
fi

checks='-*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.*'
# Findings are errors, so clang-tidy (and xargs) fail on them too.
rc=0
out=$(find src -name '*.c' -print0 | sort -z |
    xargs -0 -n 1 -P "$(nproc)" clang-tidy --quiet -p "$build" \
        --checks="$checks" --warnings-as-errors='*' 2>&1) || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "$out" |
        grep -v -E '^[0-9]+ warnings? (generated|treated as errors)\.$' >&2 ||
        true
    echo "clang_tidy: the findings above (exit $rc)" >&2
    exit 1
fi
echo "clang_tidy: nothing found in src/"
