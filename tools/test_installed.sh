#!/usr/bin/env bash
# Test cookbook_ops as a user gets it: install a built artifact (the sdist or the wheel) into a
# fresh virtual environment with a given torch, then run the repository's test suite from
# outside the source tree, so that `import cookbook_ops` is the installed package.
#
#   tools/test_installed.sh --venv DIR --torch SPEC --install ARTIFACT [--expect-cuda]
#
#   --venv DIR        the environment (created anew)
#   --torch SPEC      pip requirement for torch in it, e.g. torch==2.13.0
#   --install FILE    dist/cookbook_ops-<version>.tar.gz (built here against that torch, with
#                     `pip install --no-build-isolation`) or a wheel
#   --expect-cuda     fail unless the installed package has CUDA kernels
#
# The suite fails if the installed package has no compiled C++ kernels
# (COOKBOOK_OPS_EXPECT_EXTENSION=1) or if cookbook_ops is imported from the source tree
# (COOKBOOK_OPS_EXPECT_INSTALLED=1). PYTHON picks the interpreter (default python3);
# PYTEST_ARGS adds pytest arguments.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

venv="" torch_spec="" artifact="" expect_cuda=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) venv=$2; shift 2 ;;
    --torch) torch_spec=$2; shift 2 ;;
    --install) artifact=$2; shift 2 ;;
    --expect-cuda) expect_cuda=1; shift ;;
    *) echo "usage: $0 --venv DIR --torch SPEC --install ARTIFACT [--expect-cuda]" >&2; exit 2 ;;
  esac
done
if [[ -z "$venv" || -z "$torch_spec" || -z "$artifact" ]]; then
  echo "usage: $0 --venv DIR --torch SPEC --install ARTIFACT [--expect-cuda]" >&2
  exit 2
fi
if [[ ! -f "$artifact" ]]; then
  echo "test-installed: $artifact does not exist (make dist builds it)" >&2
  exit 2
fi
artifact=$(realpath "$artifact")
start=$SECONDS

echo "== fresh environment $venv with $torch_spec"
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
venv=$(realpath "$venv")
py=$venv/bin/python
"$py" -m pip install --quiet --upgrade pip setuptools wheel
"$py" -m pip install --quiet "$torch_spec"
torch_version=$("$py" -c "import torch; print(torch.__version__)")
# Pins name the public version (2.14.1, not 2.14.1+cu130): an installed local build satisfies
# it, while an upper-bound constraint such as torch<=2.14.1 rejects the local label.
torch_pin="torch==${torch_version%%+*}"
# The test tools, with torch pinned so that nothing swaps it out.
"$py" -m pip install --quiet -r requirements-dev.txt "$torch_pin"
# torchvision and timm are the parity oracles of normalize_images and Mixup; a build that does
# not match this torch fails to import, and is removed so that those tests skip cleanly.
if "$py" -m pip install --quiet torchvision timm "$torch_pin" >/dev/null 2>&1 &&
  "$py" -c "import torchvision, timm" >/dev/null 2>&1; then
  echo "test-installed: torchvision and timm installed for torch $torch_version"
else
  "$py" -m pip uninstall --quiet -y torchvision timm >/dev/null 2>&1 || true
  echo "test-installed: no torchvision/timm build imports with torch $torch_version;" \
    "their parity tests skip here (they run in the main environment)"
fi

echo "== pip install --no-build-isolation $(basename "$artifact")"
log=$venv/install.log
export MAX_JOBS=${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}
if ! "$py" -m pip install --no-build-isolation --no-deps -v "$artifact" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "test-installed: installing $(basename "$artifact") failed (log: $log)" >&2
  exit 1
fi
# The lines a user sees with -v: what was built and why anything was skipped.
grep -o "cookbook_ops setup: .*" "$log" | grep -v "sources:" | sort -u || true

echo "== python -m cookbook_ops"
(cd "$venv" && "$py" -m cookbook_ops)

echo "== test suite against the installed package (run from $venv)"
expect=(COOKBOOK_OPS_EXPECT_EXTENSION=1 COOKBOOK_OPS_EXPECT_INSTALLED=1
  COOKBOOK_OPS_EXPECT_CUDA=$expect_cuda)
status=0
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
(cd "$venv" && env "${expect[@]}" "$py" -m pytest "$root/tests" -q -p no:cacheprovider \
  ${PYTEST_ARGS:-}) || status=$?
echo "test-installed: $(basename "$artifact") with torch $torch_version:" \
  "$([[ $status == 0 ]] && echo passed || echo FAILED) in $((SECONDS - start))s"
exit "$status"
