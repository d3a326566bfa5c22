#!/usr/bin/env bash
# CI step: check that csrc/ C++/CUDA sources match .clang-format. Changes nothing.
#
#   tools/format_check.sh            check; exit 1 and list the files that differ
#   tools/format_check.sh --diff     also show what clang-format would change
#
# Skips (exit 0, with a note) when clang-format is not installed, so that a bare machine can
# still run the rest of CI; install it with `apt-get install -y clang-format`.
# CLANG_FORMAT picks a specific binary (e.g. clang-format-18).
set -euo pipefail

cd "$(dirname "$0")/.."

show_diff=0
for arg in "$@"; do
  case "$arg" in
    --diff) show_diff=1 ;;
    *) echo "usage: $0 [--diff]" >&2; exit 2 ;;
  esac
done

clang_format=${CLANG_FORMAT:-clang-format}
if ! command -v "$clang_format" >/dev/null 2>&1; then
  echo "format check: skipped ($clang_format not installed)"
  exit 0
fi

files=()
while IFS= read -r -d '' f; do files+=("$f"); done < <(
  find csrc -type f \( -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.h' \) -print0 | sort -z)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "format check: no sources under csrc/"
  exit 0
fi

echo "format check: $("$clang_format" --version | head -n1), ${#files[@]} files"
failed=()
for f in "${files[@]}"; do
  if ! "$clang_format" --dry-run --Werror --style=file "$f" >/dev/null 2>&1; then
    failed+=("$f")
    if [[ $show_diff == 1 ]]; then
      diff -u "$f" <("$clang_format" --style=file --assume-filename="$f" <"$f") \
        --label "$f" --label "$f (clang-format)" || true
    fi
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "format check: FAIL, ${#failed[@]} of ${#files[@]} files differ from .clang-format:"
  printf '  %s\n' "${failed[@]}"
  echo "fix with: $clang_format -i --style=file ${failed[*]}"
  exit 1
fi
echo "format check: OK"
