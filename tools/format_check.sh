#!/usr/bin/env bash
# CI step: check that csrc/ C++/CUDA sources match .clang-format. Changes nothing.
#
#   tools/format_check.sh            check; exit 1 and list the files that differ
#   tools/format_check.sh --diff     also show what clang-format would change
#   tools/format_check.sh --fix      reformat the files in place
#
# clang-format is pinned (the clang-format==<version> line of requirements-dev.txt) so that
# every machine formats alike. When .venv has no clang-format of that version, the pinned one is
# installed from the package index into build/clang-format-<version>/ first: the check never
# skips. CLANG_FORMAT picks another binary (its version is printed, not enforced).
set -euo pipefail

cd "$(dirname "$0")/.."

mode=check
for arg in "$@"; do
  case "$arg" in
    --diff) mode=diff ;;
    --fix) mode=fix ;;
    *) echo "usage: $0 [--diff|--fix]" >&2; exit 2 ;;
  esac
done

pin=$(sed -n 's/^clang-format==\([0-9.]*\).*/\1/p' requirements-dev.txt)
if [[ -z "$pin" ]]; then
  echo "format check: requirements-dev.txt has no clang-format==<version> line" >&2
  exit 2
fi
version_of() { "$1" --version 2>/dev/null | sed -n 's/.*clang-format version \([0-9.]*\).*/\1/p'; }

if [[ -n "${CLANG_FORMAT:-}" ]]; then
  clang_format=$CLANG_FORMAT
elif [[ -x .venv/bin/clang-format && "$(version_of .venv/bin/clang-format)" == "$pin" ]]; then
  clang_format=.venv/bin/clang-format
else
  tools_venv=build/clang-format-$pin
  if [[ "$(version_of "$tools_venv/bin/clang-format")" != "$pin" ]]; then
    echo "format check: installing clang-format==$pin into $tools_venv"
    rm -rf "$tools_venv"
    python3 -m venv "$tools_venv"
    "$tools_venv/bin/python" -m pip install --quiet "clang-format==$pin"
  fi
  clang_format=$tools_venv/bin/clang-format
fi

files=()
while IFS= read -r -d '' f; do files+=("$f"); done < <(
  find csrc -type f \( -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.h' \) -print0 | sort -z)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "format check: FAIL, no sources under csrc/" >&2
  exit 1
fi

echo "format check: $("$clang_format" --version | head -n1), ${#files[@]} files"
if [[ $mode == fix ]]; then
  "$clang_format" -i --style=file "${files[@]}"
  echo "format check: reformatted ${#files[@]} files"
  exit 0
fi
failed=()
for f in "${files[@]}"; do
  if ! "$clang_format" --dry-run --Werror --style=file "$f" >/dev/null 2>&1; then
    failed+=("$f")
    if [[ $mode == diff ]]; then
      diff -u "$f" <("$clang_format" --style=file --assume-filename="$f" <"$f") \
        --label "$f" --label "$f (clang-format)" || true
    fi
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "format check: FAIL, ${#failed[@]} of ${#files[@]} files differ from .clang-format:"
  printf '  %s\n' "${failed[@]}"
  echo "fix with: bash tools/format_check.sh --fix"
  exit 1
fi
echo "format check: OK"
