#!/usr/bin/env bash
# The one script for a GPU machine (H100/H200, possibly offline): build the extension for
# sm_90, run the test suite on CUDA, run every CUDA kernel once under compute-sanitizer, run the
# benchmarks (every op's, see DEVICE_CHECK_BENCHES), and leave everything under $OUT. Run from
# the repository root:
#
#     OUT=/path/to/empty/dir [BENCH_GIT_COMMIT=<sha>] bash benchmarks/device_check.sh
#
# The machine gets a copy of the working tree without .git, so pass BENCH_GIT_COMMIT to have
# the commit recorded in the results. Each stage is time-boxed so that the whole run ends within
# DEVICE_CHECK_TOTAL_S seconds (default 285, leaving time for a rerun); a
# stage that fails or times out is recorded and the later stages still run. Exit status 0 means
# every stage passed. DEVICE_CHECK_STAGES=build,build_info,bench (say) runs only those stages,
# for a rerun that needs less than the whole check. All ops no longer fit one run's sanitizer
# and bench stages: DEVICE_CHECK_SANITIZER_OPS=mixup,cutmix (the --ops of sanitizer_cases.py;
# default all) and DEVICE_CHECK_BENCHES=mixup:1,mixup_cross_entropy:1 (benchmark:weight items,
# each benchmark's share of the bench stage in proportion to its weight) narrow them to the ops
# under test.

set -u -o pipefail

export OUT="${OUT:-benchmarks/out/device_check}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export PY="${PYTHON:-$(command -v python || command -v python3)}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONUNBUFFERED=1
TOTAL_S="${DEVICE_CHECK_TOTAL_S:-285}"
export SANITIZER_OPS="${DEVICE_CHECK_SANITIZER_OPS:-}"
export BENCHES="${DEVICE_CHECK_BENCHES:-label_smoothing_cross_entropy:2,bilinear_pool:1,mixup:3,mixup_cross_entropy:2,normalize_images:2,linear_cross_entropy:2,soft_target_cross_entropy:2,resized_crop_normalize:2}"
SELECTED=",${DEVICE_CHECK_STAGES:-gpu,build,build_info,tests,sanitizer,bench},"
START=$(date +%s)
STAGES_TSV="$OUT/stages.tsv"
printf 'stage\tstatus\tseconds\tdetail\n' >"$STAGES_TSV"
FAILED=0

remaining() { echo $((TOTAL_S - ($(date +%s) - START))); }

record() { # name status seconds detail
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$STAGES_TSV"
  [ "$2" = PASS ] || FAILED=1
}

# run_stage NAME CAP RESERVE COMMAND
# Runs COMMAND (a bash string) for at most min(CAP, time left - RESERVE) seconds, RESERVE being
# the least the later stages need. The limit is exported as STAGE_LIMIT for the command.
run_stage() {
  local name=$1 cap=$2 reserve=$3 cmd=$4
  if [[ "$SELECTED" != *",$name,"* ]]; then
    printf '%s\t%s\t%s\t%s\n' "$name" "not run" 0 "not in DEVICE_CHECK_STAGES" >>"$STAGES_TSV"
    return
  fi
  local left=$(($(remaining) - reserve))
  local limit=$((cap < left ? cap : left))
  if ((limit < 10)); then
    echo "=== [$name] skipped: no time left"
    record "$name" SKIP 0 "no time left"
    return
  fi
  echo
  echo "=== [$name] (limit ${limit}s) ==="
  local t0 rc dt
  t0=$(date +%s)
  STAGE_LIMIT=$limit timeout --kill-after=10 "$limit" bash -c "$cmd"
  rc=$?
  dt=$(($(date +%s) - t0))
  if ((rc == 0)); then
    record "$name" PASS "$dt" ""
  elif ((rc == 124 || rc == 137)); then
    record "$name" TIMEOUT "$dt" "killed after ${limit}s"
  else
    record "$name" FAIL "$dt" "exit $rc"
  fi
  echo "=== [$name] exit $rc after ${dt}s"
}

find_sanitizer() {
  local candidate nvcc_dir=""
  command -v nvcc >/dev/null 2>&1 && nvcc_dir="$(dirname "$(command -v nvcc)")"
  for candidate in "$(command -v compute-sanitizer 2>/dev/null)" \
    "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" \
    "$nvcc_dir/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda-*/bin/compute-sanitizer; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}
export SANITIZER="${SANITIZER:-$(find_sanitizer || true)}"

# Third argument: the least the later stages need, from build 60 s, build_info 10 s, tests 30 s,
# sanitizer 30 s, bench 60 s and the summary 10 s, so a slow build cannot starve them all.
run_stage gpu 20 200 '
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$PY" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
'

# sm_90 only: both lent GPUs are Hopper and one architecture halves the compile time.
run_stage build 150 140 '
  TORCH_CUDA_ARCH_LIST=9.0 FORCE_CUDA=1 COOKBOOK_OPS_CUDA=1 MAX_JOBS=16 \
    "$PY" -m pip install --no-build-isolation --no-deps --no-index -v -e . >"$OUT/build.log" 2>&1
  rc=$?
  tail -n 25 "$OUT/build.log"
  exit $rc
'

run_stage build_info 45 130 '
  "$PY" -c "import cookbook_ops; print(cookbook_ops.build_info())"
  # Kernels land op by op: list which ops have CUDA and Triton kernels; fail only when the
  # extension has none at all (a CPU-only build, or one that did not load).
  "$PY" - <<"EOF"
import sys

import cookbook_ops

info = cookbook_ops.build_info()
kernels = info["kernels_per_op"]
for op, k in kernels.items():
    print("%-40s cuda=%-5s triton=%s" % (op, k["cuda"], k["triton"]))
if not any(k["cuda"] for k in kernels.values()):
    sys.exit("no CUDA kernels are available: %s" % info.get("extension_error"))
EOF
'

run_stage tests 100 100 '
  # The CPU half of the suite runs in CI; here only what touches the GPU (test ids carry the
  # device, and the GPU-only tests say so in their names).
  "$PY" -m pytest tests -q -k "cuda or gpu" -p no:cacheprovider --junitxml="$OUT/junit.xml"
'

run_stage sanitizer 60 70 '
  if [ -z "$SANITIZER" ]; then echo "compute-sanitizer not found"; exit 3; fi
  # No caching allocator: each tensor its own cudaMalloc, so an overrun is visible to memcheck.
  ops=()
  [ -n "$SANITIZER_OPS" ] && ops=(--ops "$SANITIZER_OPS")
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck --error-exitcode 99 \
    "$PY" benchmarks/sanitizer_cases.py --device cuda ${ops[@]+"${ops[@]}"} >"$OUT/sanitizer.log" 2>&1
  rc=$?
  grep -E "ERROR SUMMARY|failing case|FAIL|no kernel" "$OUT/sanitizer.log" | head -n 20
  tail -n 5 "$OUT/sanitizer.log"
  exit $rc
'

# The benchmarks share the stage in proportion to their weights in BENCHES; each one's share
# is recomputed from the time actually left when it starts, so what an early one leaves unused
# goes to the later ones. A benchmark stops starting new cases once its budget is spent and
# still writes its results, so its budget is its share less the longest case and the writing;
# its own timeout keeps an overrun from eating the others' shares. A missing script is
# reported and fails the stage without stopping the others.
run_stage bench 240 10 '
  t0=$(date +%s)
  budget() { echo $(($1 > 45 ? $1 - 35 : 10)); }
  IFS=, read -r -a items <<<"$BENCHES"
  weight_left=0
  for item in "${items[@]}"; do
    [ -f "benchmarks/bench_${item%%:*}.py" ] && weight_left=$((weight_left + ${item#*:}))
  done
  rc=0
  for item in "${items[@]}"; do
    name=${item%%:*} weight=${item#*:}
    script=benchmarks/bench_$name.py
    if [ ! -f "$script" ]; then
      echo "--- $name: $script is missing"
      rc=1
      continue
    fi
    left=$((STAGE_LIMIT - ($(date +%s) - t0) - 5))
    share=$((left * weight / weight_left))
    weight_left=$((weight_left - weight))
    if ((share < 15)); then
      echo "--- $name: skipped, ${share}s left for it"
      rc=1
      continue
    fi
    echo "--- $name (${share}s)"
    timeout --kill-after=5 "$share" \
      "$PY" "$script" --device cuda --full --out "$OUT/bench" --time-budget "$(budget "$share")" || rc=1
  done
  cp "$OUT"/bench/*.json "$OUT"/bench/*.md "$OUT"/ 2>/dev/null
  exit $rc
'

echo
echo "=== summary ($(($(date +%s) - START))s) ==="
for json in "$OUT"/bench/*.json; do
  [ -e "$json" ] && "$PY" benchmarks/make_report.py --summary "$json"
done
column -t -s $'\t' "$STAGES_TSV" 2>/dev/null || cat "$STAGES_TSV"
exit $FAILED
