#!/usr/bin/env bash
# Fail when a tracked C file differs from what .clang-format makes of it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not installed" >&2; exit 1; }
bad=""
while read -r f; do
  if [ -f "$f" ] && ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad="$bad$f"$'\n'
  fi
done < <(git ls-files '*.c' '*.h')
if [ -n "$bad" ]; then
  echo "check-format: not formatted (run clang-format -i on them):" >&2
  echo "$bad" >&2
  exit 1
fi
echo "check-format: all C files formatted"
