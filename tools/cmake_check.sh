#!/usr/bin/env bash
# CI step: build csrc/ with CMake into build-cmake/libcookbook_ops.so and check that
# torch.ops.load_library() registers working kernels from it (tools/cmake_load_check.py).
#
#   tools/cmake_check.sh            CPU kernels only
#   tools/cmake_check.sh --cuda     CPU and CUDA kernels (COOKBOOK_OPS_CUDA=1 does the same)
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3), MAX_JOBS (default
# nproc), TORCH_CUDA_ARCH_LIST (default 8.0;9.0 with --cuda), BUILD_DIR (default build-cmake).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

with_cuda=OFF
if [[ "${COOKBOOK_OPS_CUDA:-0}" == 1 ]]; then with_cuda=ON; fi
for arg in "$@"; do
  case "$arg" in
    --cuda) with_cuda=ON ;;
    *) echo "usage: $0 [--cuda]" >&2; exit 2 ;;
  esac
done

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi
build_dir=${BUILD_DIR:-build-cmake}
jobs=${MAX_JOBS:-$(nproc)}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
# A cache written by another generator cannot be reconfigured with this one.
if [[ -f "$build_dir/CMakeCache.txt" ]] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${generator[1]:-Unix Makefiles}$" "$build_dir/CMakeCache.txt"; then
  rm -rf "$build_dir"
fi

start=$SECONDS
torch_prefix=$("$PYTHON" -c "import torch.utils; print(torch.utils.cmake_prefix_path)")
cuda_args=(-DCOOKBOOK_OPS_WITH_CUDA="$with_cuda")
if [[ "$with_cuda" == ON && -n "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
  cuda_args+=(-DTORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST")
fi

echo "== configure ($build_dir, CUDA $with_cuda)"
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix" "${cuda_args[@]}"
configured=$SECONDS

echo "== build (-j $jobs)"
cmake --build "$build_dir" --parallel "$jobs"
built=$SECONDS

echo "== load check"
check_args=("$build_dir/libcookbook_ops.so")
if [[ "$with_cuda" == ON ]]; then check_args+=(--expect-cuda); fi
status=0
"$PYTHON" tools/cmake_load_check.py "${check_args[@]}" || status=$?
echo "cmake check: configure $((configured - start))s, build $((built - configured))s," \
  "load check $((SECONDS - built))s, total $((SECONDS - start))s"
exit "$status"
