#!/usr/bin/env bash
# banned_calls.sh - STYLE.md's banned calls, in the C of src/, tests/ and
# bench/: strcpy, strcat, sprintf, vsprintf, gets, strtok, atoi, atol,
# atoll, system, popen, alloca and rand. Prints each use; exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/../.."

pattern='(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atoll|system|popen|alloca|rand)[[:space:]]*\('
if grep -rnE "$pattern" src tests bench --include='*.c' --include='*.h'; then
    echo "banned_calls: the calls above are banned (STYLE.md, Avoid)" >&2
    exit 1
fi
echo "banned_calls: none in src/, tests/, bench/"
