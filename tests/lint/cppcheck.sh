#!/usr/bin/env bash
# cppcheck.sh - cppcheck over the C of src/, tests/ and bench/: its
# warning, performance and portability checks (STYLE.md, Build). Prints
# each finding; exits 1 if any.
#
# jansson.h and sys/queue.h are read for their macros (json_*_foreach,
# LIST_HEAD...), which cppcheck cannot guess; other system headers are
# not read. Style findings are left out: most of them say to declare a
# variable in a narrower scope, and this code declares at the top of a
# block.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cppcheck >/dev/null || {
    echo "cppcheck: cppcheck is not installed (scripts/install-deps)" >&2
    exit 1
}

header() {
    echo "#include <$1>" | cc -E -H -x c - 2>&1 >/dev/null |
        awk -v h="$1" 'index($2, h) { print $2; exit }'
}
jansson=$(header jansson.h || true)
queue=$(header sys/queue.h || true)
if [ -z "$jansson" ] || [ -z "$queue" ]; then
    echo "cppcheck: cannot find jansson.h or sys/queue.h" >&2
    exit 1
fi

out=$(cppcheck --quiet --std=c11 --enable=warning,performance,portability \
    --inline-suppr --error-exitcode=1 \
    -I src -I tests -I tests/support -I tests/integration \
    --include="$jansson" --include="$queue" src tests bench 2>&1) || {
    echo "$out" >&2
    echo "cppcheck: the findings above" >&2
    exit 1
}
echo "cppcheck: nothing found in src/, tests/, bench/"
