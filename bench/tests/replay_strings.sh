#!/bin/sh
# replay_strings.sh BENCH - `replay` reads any key strings: a trace of strings gives the
# same miss ratios as the same trace written as decimal ids (hashing keeps "same key" and
# "different key" intact), the JSON counts the hashed keys, and the skipped blank lines
# are reported, not dropped in silence. Needs no Redis.
set -eu
bench=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/tcb-replay-XXXXXX")
trap 'rm -rf "$dir"' EXIT

fail() {
    echo "replay_strings: $*" >&2
    exit 1
}

# 5,000 requests over 400 keys, unevenly spread; then the same keys as strings
awk 'BEGIN { for (i = 0; i < 5000; i++) print (i * i + 7 * i) % 400 }' >"$dir/ids.txt"
awk '{ print "user:" $1 }' "$dir/ids.txt" >"$dir/strings.txt"
printf '\n  \n' >>"$dir/strings.txt" # two blank lines, to be skipped and said so

"$bench" replay "$dir/ids.txt" --entries 50,200 --json --quiet >"$dir/ids.json"
"$bench" replay "$dir/strings.txt" --entries 50,200 --json --quiet >"$dir/strings.json" \
    2>"$dir/strings.err"

grep '"miss_ratio"' "$dir/ids.json" >"$dir/ids.miss"
grep '"miss_ratio"' "$dir/strings.json" >"$dir/strings.miss"
[ "$(wc -l <"$dir/ids.miss")" -eq 2 ] || fail "expected two results: $(cat "$dir/ids.json")"
cmp -s "$dir/ids.miss" "$dir/strings.miss" ||
    fail "string keys replay differently: $(cat "$dir/ids.miss") vs $(cat "$dir/strings.miss")"
grep -q '"string_keys_hashed": 5000' "$dir/strings.json" ||
    fail "hashed keys not counted: $(cat "$dir/strings.json")"
grep -q '"string_keys_hashed": 0' "$dir/ids.json" || fail "decimal ids were hashed"
grep -q 'skipped 2 of 5002 lines: 2 blank' "$dir/strings.json" ||
    fail "skipped lines not in the report's warnings: $(cat "$dir/strings.json")"
grep -q 'WARNING: trace .*skipped 2 of 5002 lines' "$dir/strings.err" ||
    fail "skipped lines not said on stderr: $(cat "$dir/strings.err")"
echo "replay_strings: ok"
