#!/usr/bin/env bash
# One device run for issue 3: the CUDA tests, then the GPU benchmark of the set encoders.
#
#   bash bench/gpu_run.sh                      # on the GPU machine, writes everything under $OUT
#   DEVICE=cpu SHAPES=5x8 BATCH=2 OUT=/tmp/gpu-dry bash bench/gpu_run.sh   # dry run of the same steps on CPU
#
# Every step has its own timeout and its output is kept, so a failure in one does not lose the others;
# bench/encoders.py writes its JSON lines after every configuration and catches out-of-memory per row.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${DEVICE:-cuda}
SHAPES=${SHAPES:-5x16,46x8,128x16,512x16}
BATCH=${BATCH:-0}
BUDGET=${BUDGET:-220}
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

# 1. Tests: the CUDA checks (fp32 SIA vs the dense reference, bf16 autocast forward+backward), and the CPU suite
#    under this machine's torch/transformers versions.
TESTS=${TESTS:-tests/test_encoders_cuda.py tests/test_encoders.py tests/test_encoders_api.py tests/test_encoders_packing.py}
timeout 100 $PY -m pytest -q -p no:cacheprovider -o addopts="" $TESTS 2>&1 | tail -n 40 | tee "$OUT/tests.log"
echo "tests: $(( $(date +%s) - start )) s" | tee -a "$OUT/tests.log"

# 2. Benchmark: random-weight Flan-T5-base, bf16 autocast, the issue's shapes, inference and training step;
#    "+graph" rows replay the same inference forward from a CUDA graph (launch overhead removed).
MODES=nia,sia,fia
[ "$DEVICE" = cuda ] && MODES=nia,sia,fia,nia+graph,sia+graph
timeout $((BUDGET + 90)) $PY bench/encoders.py --backbone t5-base-random --device "$DEVICE" --dtype bf16 \
  --modes "$MODES" --shapes "$SHAPES" --batch "$BATCH" --phase both --budget "$BUDGET" --config-seconds 25 \
  --out "$OUT/encoders_gpu.jsonl" 2>&1 | tee "$OUT/bench.log" | grep -v '^{"mode"'
echo "bench: $(( $(date +%s) - start )) s"

# 3. The slow reference at the small shapes, if time is left.
if [ $(( $(date +%s) - start )) -lt $((BUDGET + 110)) ]; then
  timeout 50 $PY bench/encoders.py --backbone t5-base-random --device "$DEVICE" --dtype bf16 --modes reference,sia \
    --shapes "${REF_SHAPES:-5x16}" --batch "$BATCH" --phase infer --config-seconds 12 --budget 35 \
    --out "$OUT/encoders_gpu_reference.jsonl" 2>&1 | tee "$OUT/bench_reference.log" | grep -v '^{"mode"'
fi
echo "total: $(( $(date +%s) - start )) s"
