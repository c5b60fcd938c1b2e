#!/usr/bin/env bash
# One device run for issue 11: the CUDA tests of the inference graphs, then bench/predict_gpu.py.
#
#   bash bench/gpu_issue11.sh                # on the GPU machine; everything goes under $OUT
#   DEVICE=cpu SETS=40 WARMUP=8 OUT=/tmp/gpu11-dry bash bench/gpu_issue11.sh   # dry run of the same steps
#
# BACKBONES (default minilm,t5-base-random) picks the backbones of the bench.
# Each step has its own timeout and keeps its output, so one failing does not lose the other.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu11-out}
DEVICE=${DEVICE:-cuda}
SETS=${SETS:-20000}
WARMUP=${WARMUP:-2000}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-.venv/bin/python}
{ nvidia-smi || true; $PY -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } > "$OUT/env.txt" 2>&1
timeout "${TEST_TIMEOUT:-120}" $PY -m pytest -q -p no:cacheprovider tests/test_inference_graphs.py \
  tests/test_encoders_cuda.py > "$OUT/tests.txt" 2>&1
echo "tests rc=$?" >> "$OUT/tests.txt"
timeout "${BENCH_TIMEOUT:-360}" $PY bench/predict_gpu.py --device "$DEVICE" --sets "$SETS" --warmup "$WARMUP" \
  --backbones "${BACKBONES:-minilm,t5-base-random}" \
  > "$OUT/predict_gpu.jsonl" 2> "$OUT/predict_gpu.err"
echo "bench rc=$?" >> "$OUT/predict_gpu.err"
tail -n 3 "$OUT/tests.txt"; cat "$OUT/predict_gpu.jsonl"
