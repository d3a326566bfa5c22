#!/usr/bin/env bash
# Prepare a working environment from nothing but Python 3.11+ and a C++ compiler (nvcc optional):
# create the virtual environment if it is missing, install torch and the test/benchmark tools,
# then build the extension in place against that torch.
#
#   PYTHON   interpreter used to create the environment (default: python3)
#   VENV     environment folder (default: .venv)
#   TORCH_SPEC  pip requirement for torch (default: torch>=2.13, the oldest supported)
# Build switches (COOKBOOK_OPS_CUDA, FORCE_CUDA, TORCH_CUDA_ARCH_LIST, MAX_JOBS) pass through to setup.py.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch>=2.13}

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
export PATH="$PWD/$VENV/bin:$PATH"

if ! python -c "import setuptools, wheel" >/dev/null 2>&1; then
  python -m pip install --quiet --upgrade pip setuptools wheel
fi
# A no-op when an installed torch already satisfies the requirement.
python -m pip install --quiet "$TORCH_SPEC"
python -m pip install --quiet -r requirements-dev.txt
# torchvision is the parity oracle of normalize_images. Only a build made for the installed torch
# will do: pinning torch keeps pip from swapping it out for the one torchvision would pull in.
if ! python -c "import torchvision" >/dev/null 2>&1; then
  torch_version=$(python -c "import torch; print(torch.__version__.split('+')[0])")
  if ! python -m pip install --quiet torchvision "torch==$torch_version"; then
    echo "bootstrap: no torchvision release matches torch $torch_version; the torchvision" \
      "parity tests will skip (the reference parity tests still run)" >&2
  fi
fi
# timm is the parity oracle of nn.Mixup and the soft-target loss; installed with torch and
# torchvision pinned to what is there, and optional like torchvision.
if python -c "import torchvision" >/dev/null 2>&1 && ! python -c "import timm" >/dev/null 2>&1; then
  pins=$(python -c "import torch, torchvision; print(f'torch=={torch.__version__.split(\"+\")[0]} torchvision=={torchvision.__version__.split(\"+\")[0]}')")
  # shellcheck disable=SC2086  # two pins, split on purpose
  if ! python -m pip install --quiet timm $pins; then
    echo "bootstrap: could not install timm; the timm parity tests will skip" >&2
  fi
fi

# Rebuild only when something that goes into the build changed: the sources, setup.py, the
# torch it builds against, or a build switch.
mkdir -p build
stamp=$( {
  find csrc setup.py pyproject.toml -type f -print0 | sort -z | xargs -0 sha256sum
  python -c "import torch; print(torch.__version__)"
  env | grep -E "^(COOKBOOK_OPS_CUDA|COOKBOOK_OPS_EXTENSION|FORCE_CUDA|TORCH_CUDA_ARCH_LIST|CUDA_HOME)=" | sort || true
} | sha256sum | cut -d" " -f1)
if [ -f build/.bootstrap-stamp ] && [ "$(cat build/.bootstrap-stamp)" = "$stamp" ] \
  && [ -f cookbook_ops/_build_config.py ]; then
  echo "bootstrap: cookbook_ops is up to date"
else
  echo "bootstrap: building cookbook_ops in place"
  export MAX_JOBS=${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)}
  if ! python -m pip install --no-build-isolation --no-deps -v -e . >build/pip-build.log 2>&1; then
    tail -n 60 build/pip-build.log
    echo "bootstrap: building cookbook_ops failed (full log: build/pip-build.log)" >&2
    exit 1
  fi
  echo "$stamp" >build/.bootstrap-stamp
  grep "cookbook_ops setup:" build/pip-build.log | sort -u || true
fi
python -c "import cookbook_ops, json; print('bootstrap: ' + json.dumps({k: cookbook_ops.build_info()[k] for k in ('available_backends', 'cpu_kernels', 'cuda_kernels', 'extension_error', 'built_with_cuda')}))"
