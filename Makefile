# The two commands of this project (each prepares .venv and builds the extension first):
#   make bench   the benchmark comparisons on this machine's device (the main job)
#   make test    the test suite
# CI runs `make ci`: lint, the test suite, the static GPU checks and the CMake build.

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
DEVICE ?= $(shell nvidia-smi >/dev/null 2>&1 && echo cuda || echo cpu)

.PHONY: setup bench test lint format-check gpu-static-check cmake-check ci clean

setup:
	bash tools/bootstrap.sh

# Every benchmark runs even when an earlier one fails (a mismatch, an error) or its script is
# missing; the target fails if any did, and says which.
BENCHMARKS := label_smoothing_cross_entropy bilinear_pool mixup mixup_cross_entropy normalize_images

bench: setup
	@failed=""; \
	for name in $(BENCHMARKS); do \
	  script=benchmarks/bench_$$name.py; \
	  if [ ! -f "$$script" ]; then \
	    echo "bench: $$script is missing" >&2; failed="$$failed $$name(missing)"; continue; \
	  fi; \
	  echo "+ $(PY) $$script --device $(DEVICE) --out benchmarks/out"; \
	  $(PY) "$$script" --device $(DEVICE) --out benchmarks/out || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "bench: failed:$$failed" >&2; exit 1; fi

test: setup
	COOKBOOK_OPS_EXPECT_EXTENSION=1 $(PY) -m pytest tests -q

lint:
	$(VENV)/bin/ruff check .
	bash tools/format_check.sh

gpu-static-check: setup
	$(PY) tools/gpu_static_check.py

cmake-check: setup
	bash tools/cmake_check.sh

ci: lint test gpu-static-check cmake-check

clean:
	rm -rf build build-cmake dist *.egg-info cookbook_ops/_C*.so cookbook_ops/_build_config.py
