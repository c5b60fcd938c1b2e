#!/usr/bin/env bash
# One device run for issue 3: the CUDA tests, then the GPU benchmark of the set encoders.
#
#   bash bench/gpu_run.sh                      # on the GPU machine, writes everything under $OUT
#   DEVICE=cpu SHAPES=5x8 BATCH=2 OUT=/tmp/gpu-dry bash bench/gpu_run.sh   # dry run of the same steps on CPU
#
# Every step has its own timeout and its output is kept, so a failure in one does not lose the others;
# bench/encoders.py writes its JSON lines after every configuration and catches out-of-memory per row.
# The training steps run first (they are what the last runs measured), then inference, then the reference.
# Worst case: TEST_TIMEOUT + TRAIN_BUDGET + INFER_BUDGET + 2 x 45 s (model build, the last configuration) + the
# reference's 50 s.
#
# Settings (environment): MODES, TRAIN_MODES (modes of the inference and the training rows; "sia+explicit" is
# SIA's older training path), SHAPES, BATCH, TRAIN_BUDGET and INFER_BUDGET (seconds after which configurations
# are skipped), TESTS and TEST_TIMEOUT, REF_SHAPES (empty: no reference run).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${DEVICE:-cuda}
SHAPES=${SHAPES:-5x16,46x8,128x16,512x16}
BATCH=${BATCH:-0}
if [ -z "${MODES:-}" ]; then
  MODES=nia,sia,fia
  [ "$DEVICE" = cuda ] && MODES=$MODES,nia+graph,sia+graph
fi
TRAIN_MODES=${TRAIN_MODES:-nia,sia,sia+explicit,fia}
TRAIN_BUDGET=${TRAIN_BUDGET:-120}
INFER_BUDGET=${INFER_BUDGET:-100}
TEST_TIMEOUT=${TEST_TIMEOUT:-100}
REF_SHAPES=${REF_SHAPES-5x16}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
start=$(date +%s)

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import torch, transformers, platform; print('python', platform.python_version(), 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'transformers', transformers.__version__, \
'gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
} 2>&1 | tee "$OUT/env.txt"

# 1. Tests: the CUDA checks (fp32 SIA vs the dense reference in values and gradients, bf16 autocast forward and
#    backward, attention dropout's gradient), and by default the CPU suite under this machine's versions.
#    tests.xml keeps the measured differences (record_property).
TESTS=${TESTS:-tests/test_encoders_cuda.py tests/test_encoders.py tests/test_encoders_api.py tests/test_encoders_packing.py tests/test_encoders_training.py}
# shellcheck disable=SC2086
timeout "$TEST_TIMEOUT" $PY -m pytest -q -p no:cacheprovider -o addopts="" -o junit_family=legacy \
  --junitxml="$OUT/tests.xml" $TESTS 2>&1 | tail -n 40 | tee "$OUT/tests.log"
echo "tests: $(( $(date +%s) - start )) s" | tee -a "$OUT/tests.log"

# 2. Benchmark: random-weight Flan-T5-base, bf16 autocast, the issue's shapes; training steps, then inference
#    ("+graph" rows replay the same inference forward from a CUDA graph: launch overhead removed).
bench() {  # bench PHASE MODES BUDGET NAME
  timeout $(($3 + 45)) $PY bench/encoders.py --backbone t5-base-random --device "$DEVICE" --dtype bf16 \
    --modes "$2" --shapes "$SHAPES" --batch "$BATCH" --phase "$1" --budget "$3" --config-seconds 25 \
    --out "$OUT/$4.jsonl" 2>&1 | tee "$OUT/$4.log" | grep -v '^{"mode"'
  echo "$4: $(( $(date +%s) - start )) s"
}
bench train "$TRAIN_MODES" "$TRAIN_BUDGET" encoders_gpu_train
bench infer "$MODES" "$INFER_BUDGET" encoders_gpu_infer

# 3. The slow reference at the small shapes, if asked for.
if [ -n "$REF_SHAPES" ]; then
  timeout 50 $PY bench/encoders.py --backbone t5-base-random --device "$DEVICE" --dtype bf16 --modes reference,sia \
    --shapes "$REF_SHAPES" --batch "$BATCH" --phase infer --config-seconds 12 --budget 35 \
    --out "$OUT/encoders_gpu_reference.jsonl" 2>&1 | tee "$OUT/bench_reference.log" | grep -v '^{"mode"'
fi
echo "total: $(( $(date +%s) - start )) s"
