# The two commands of this project (each prepares .venv and builds the extension first):
#   make bench   the benchmark comparisons on this machine's device (the main job): the headline
#                shape of every op; `make bench-full` (or BENCH=full) runs the full sweep
#   make test    the test suite
# CI runs `make ci`: lint, the test suite, the static GPU checks, the CMake build, the release
# artifacts and the installed-package tests on the newest and the oldest supported torch.

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
DEVICE ?= $(shell nvidia-smi >/dev/null 2>&1 && echo cuda || echo cpu)

.PHONY: setup bench bench-full bench-overhead test lint format format-check gpu-static-check \
	cmake-check sdist dist \
	test-installed compat ci clean

setup:
	bash tools/bootstrap.sh

# Every benchmark runs even when an earlier one fails (a mismatch, an error) or its script is
# missing; the target fails if any did, and says which.
BENCHMARKS := label_smoothing_cross_entropy bilinear_pool mixup mixup_cross_entropy normalize_images linear_cross_entropy soft_target_cross_entropy resized_crop_normalize

# BENCH=full: every shape of the sweep (tens of minutes on a 2-core CPU); BENCH=overhead: each
# op's per-call host cost on tiny shapes against eager (--overhead); default: the headline
# shape of each op, every implementation, fwd and fwd+bwd (a few minutes).
BENCH ?= headline
BENCH_FLAGS := $(if $(filter full,$(BENCH)),--full,$(if $(filter overhead,$(BENCH)),--overhead,))

bench: setup
	@failed=""; \
	for name in $(BENCHMARKS); do \
	  script=benchmarks/bench_$$name.py; \
	  if [ ! -f "$$script" ]; then \
	    echo "bench: $$script is missing" >&2; failed="$$failed $$name(missing)"; continue; \
	  fi; \
	  echo "+ $(PY) $$script --device $(DEVICE) --out benchmarks/out $(BENCH_FLAGS)"; \
	  $(PY) "$$script" --device $(DEVICE) --out benchmarks/out $(BENCH_FLAGS) || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "bench: failed:$$failed" >&2; exit 1; fi

bench-full:
	$(MAKE) bench BENCH=full

bench-overhead:
	$(MAKE) bench BENCH=overhead

test: setup
	COOKBOOK_OPS_EXPECT_EXTENSION=1 $(PY) -m pytest tests -q

lint:
	$(VENV)/bin/ruff check .
	bash tools/format_check.sh

gpu-static-check: setup
	$(PY) tools/gpu_static_check.py

cmake-check: setup
	bash tools/cmake_check.sh

format:
	bash tools/format_check.sh --fix

# Release artifacts: the sdist, then a wheel built from that sdist (as an index would), both
# checked for content (tools/check_dist.py) and metadata (twine check).
VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' cookbook_ops/_version.py)
SDIST = dist/cookbook_ops-$(VERSION).tar.gz
# The oldest torch that pyproject.toml claims (dependencies: torch>=X).
OLDEST_TORCH = $(shell sed -n 's/.*"torch>=\([0-9.]*\)".*/\1/p' pyproject.toml)

sdist: setup
	rm -f dist/cookbook_ops-*.tar.gz
	$(PY) -m build --sdist --no-isolation --outdir dist .

dist: setup
	rm -rf dist
	MAX_JOBS=$${MAX_JOBS:-$$(nproc)} $(PY) -m build --no-isolation --outdir dist .
	$(PY) tools/check_dist.py dist
	$(PY) -m twine check --strict dist/*

# The wheel from `make dist` in a fresh environment with the torch of .venv (CUDA kernels
# included when .venv's torch has CUDA), tested from outside the source tree.
test-installed:
	@ls dist/cookbook_ops-$(VERSION)-*.whl >/dev/null 2>&1 || $(MAKE) dist
	bash tools/test_installed.sh --venv build/venv-installed \
	  --torch "torch==$$($(PY) -c 'import torch; print(torch.__version__.split("+")[0])')" \
	  --install "$$(ls dist/cookbook_ops-$(VERSION)-*.whl | head -n1)" \
	  $$($(PY) -c 'import cookbook_ops; print("--expect-cuda" if cookbook_ops.build_info()["built_with_cuda"] else "")')

# The sdist built from source against the oldest claimed torch (its CPU build), in a fresh
# environment, tested from outside the source tree.
compat:
	@test -f $(SDIST) || $(MAKE) sdist
	bash tools/test_installed.sh --venv build/venv-oldest --torch "torch==$(OLDEST_TORCH)" \
	  --install $(SDIST)

ci: lint test gpu-static-check cmake-check dist test-installed compat

clean:
	rm -rf build build-cmake dist *.egg-info cookbook_ops/_C*.so cookbook_ops/_build_config.py
