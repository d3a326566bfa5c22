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

# A failing (mismatching) first benchmark must not keep the second from running; the target
# still fails if either does.
bench: setup
	$(PY) benchmarks/bench_label_smoothing_cross_entropy.py --device $(DEVICE) --out benchmarks/out; \
	status=$$?; \
	$(PY) benchmarks/bench_bilinear_pool.py --device $(DEVICE) --out benchmarks/out && exit $$status

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
