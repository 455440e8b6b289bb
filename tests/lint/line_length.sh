#!/usr/bin/env bash
# line_length.sh - STYLE.md's 80 columns, in the C of src/, tests/ and
# bench/ (tabs are not used, so a byte is a column for the ASCII source).
# Prints each longer line as file:line: length; exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/../.."

files=$(find src tests bench -name '*.[ch]' | sort)
[ -n "$files" ] || { echo "line_length: no C files found" >&2; exit 1; }
# shellcheck disable=SC2086 # one file per word: the paths have no spaces
long=$(awk 'length > 80 { printf "%s:%d: %d\n", FILENAME, FNR, length }' \
    $files)
if [ -n "$long" ]; then
    printf '%s\n' "$long"
    echo "line_length: the lines above are over 80 columns (STYLE.md)" >&2
    exit 1
fi
echo "line_length: every line of src/, tests/, bench/ fits in 80 columns"
