#!/usr/bin/env bash
# One short device call (foreground, < 10 min): issue 13's ZeRO test of the vocoder stage and issue 12's
# video-VAE benchmark against diffusers, one after the other (the bench alone on the GPU).
#   carry: [".wheels", ".gpu_assets/diffusers-0.42.1-py3-none-any.whl"]
#   bash scripts/gpu_zero_vocoder_vae_bench.sh      # writes $OUT/tests.log, $OUT/bench_vae.jsonl
set -uo pipefail
PY=${PY:-python3}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
. "$(dirname "$0")/gpu_env.sh"   # site_install
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if ! $PY -c "import hydra, webdataset, deepspeed" 2>/dev/null; then   # the device lacks hydra & co.
  site_install $(ls .wheels/*.whl | grep -v torchao) .gpu_assets/diffusers-*.whl || exit 1
fi
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
timeout -s INT 240 $PY -m pytest -v -m gpu tests/test_gpu_strategies.py -k "vae_stage and vocoder" -p no:cacheprovider \
  --basetemp /tmp/pt >"$OUT/tests.log" 2>&1; echo "tests rc=$?" | tee -a "$OUT/tests.log"
tail -n 30 "$OUT/tests.log"
timeout -s INT 300 $PY bench/bench_vae.py --preset ltx --device cuda --dtype bf16 --batch 1 --frames 49 --height 512 \
  --width 768 --diffusers --tiled --warmup 1 --iters 3 2>&1 | tee "$OUT/bench_vae.jsonl"
