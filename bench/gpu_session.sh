#!/usr/bin/env bash
# Everything that needs the GPU host, in one call (see docs/benchmarks.md, "GPU figures").
#
#   bash bench/gpu_session.sh [STEP...]     STEP: env tests models decode crab-static autotune attention
#                                           (default: env tests models decode)
#
# The host has torch, transformers and torchaudio but neither PyAV nor wordllama: put their wheels
# (cp312, manylinux) under .whl/ and they are installed into /tmp/site first. Results land in $OUT
# (default /tmp/gpu_out): env.txt, tests.txt, bench_models_gpu.json, bench_decode_gpu.json.
# Each step gets what is left of BUDGET_S seconds (default 560), so a slow step cannot eat the rest.
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
BUDGET_S=${BUDGET_S:-560}
START=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site
fi

steps=${*:-env tests models decode}
for step in $steps; do
  t=$(left)
  if [ "$t" -lt 20 ]; then echo "# skipped $step: budget spent"; continue; fi
  echo "# ---- $step (budget left ${t}s)"
  case $step in
    env)
      { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
        python3 -c "import sys, torch, transformers; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
        python3 -c "import av; print('av', av.__version__)"
        python3 -c "import torchaudio; print('torchaudio', torchaudio.__version__)"
        echo "cpus $(nproc)"; } 2>&1 | tee "$OUT/env.txt" ;;
    tests)
      timeout "$t" python3 -m pytest -p no:django -p no:cacheprovider tests/models_zoo -q -rs 2>&1 \
        | tee "$OUT/tests.txt" | tail -20 ;;
    models)
      timeout "$t" python3 bench/bench_models.py --device cuda --json "$OUT/bench_models_gpu.json" 2>&1 \
        | tee "$OUT/bench_models.txt" | grep -v '^W[0-9]' ;;
    decode)
      timeout "$t" python3 bench/bench_decode.py --clips 512 --device cuda --json "$OUT/bench_decode_gpu.json" 2>&1 \
        | tee "$OUT/bench_decode.txt"
      t=$(left); [ "$t" -gt 60 ] && timeout "$t" python3 bench/bench_decode.py --clips 256 --device cuda --pool thread \
        --json "$OUT/bench_decode_gpu_threads.json" 2>&1 | tee -a "$OUT/bench_decode.txt" ;;
    crab-static)  # Crab's decoding step compiled with a static KV cache (CUDA graphs)
      timeout "$t" python3 bench/bench_models.py --device cuda --models crab --crab-cache static \
        --json "$OUT/bench_crab_static_gpu.json" 2>&1 | tee "$OUT/bench_crab_static.txt" | grep -v '^W[0-9]' ;;
    autotune)  # CAV-MAE multimodal: compiled blocks with autotuned Triton matmuls
      timeout "$t" python3 bench/bench_models.py --device cuda --models cavmae --precision bf16-autotune \
        --cavmae-modalities av --json "$OUT/bench_autotune_gpu.json" 2>&1 | tee "$OUT/bench_autotune.txt" \
        | grep -v '^W[0-9]' ;;
    attention)  # CAV-MAE with cuDNN's fused attention first, eager and compiled
      timeout "$t" python3 bench/bench_models.py --device cuda --models cavmae \
        --precision bf16-cudnn,bf16-compile-cudnn,bf16-compile --json "$OUT/bench_attention_gpu.json" 2>&1 \
        | tee "$OUT/bench_attention.txt" | grep -v '^W[0-9]' ;;
    *) echo "unknown step $step (allowed: env tests models decode crab-static autotune attention)"; exit 2 ;;
  esac
done
echo "# done in $(( $(date +%s) - START ))s"
