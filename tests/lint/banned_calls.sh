#!/usr/bin/env bash
# banned_calls.sh - STYLE.md's banned calls, in the C of src/, tests/ and
# bench/: strcpy, strcat, sprintf, vsprintf, gets, strtok, atoi, atol,
# atoll, system, popen, alloca and rand. Prints each use; exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/../.."

pattern='(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atoll|system|popen|alloca|rand)[[:space:]]*\('
# grep: 0 found, 1 none, 2 could not read (a failure, not a pass).
rc=0
grep -rnE "$pattern" src tests bench --include='*.c' --include='*.h' || rc=$?
case $rc in
0) echo "banned_calls: the calls above are banned (STYLE.md, Avoid)" >&2
   exit 1 ;;
1) echo "banned_calls: none in src/, tests/, bench/" ;;
*) echo "banned_calls: grep failed ($rc)" >&2
   exit 1 ;;
esac
