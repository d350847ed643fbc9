#!/usr/bin/env bash
# One short device call (foreground, < 10 min): the video VAE's patch shortcut as a conv against the same
# map as one matmul (`blocks.block_linear*`), then `bench_vae.py` against diffusers with tiled decode and a
# profile of each decoder (issue 12).
#   carry: [".wheels", ".gpu_assets/diffusers-0.42.1-py3-none-any.whl"]
#   bash scripts/gpu_vae_decode.sh      # writes $OUT/shortcut_ab.jsonl, $OUT/bench_vae.jsonl, bench_vae_tile512.jsonl
# (the ConvTranspose3d probe is cut at 75 s: its first call did not end in ~140 s in session 15)
set -uo pipefail
PY=${PY:-python3}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
. "$(dirname "$0")/gpu_env.sh"   # site_install
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if ! $PY -c "import hydra, webdataset, diffusers" 2>/dev/null; then   # the device lacks hydra & co.
  site_install $(ls .wheels/*.whl | grep -v "torchao\|deepspeed") .gpu_assets/diffusers-*.whl || exit 1
fi
export PYTHONPATH=$PWD:/tmp/site
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
# the shortcut alone, at the shapes of vae/ltx at 49x512x768: conv / transposed conv (cuDNN, autotuned) vs matmul
timeout -s INT 75 $PY - <<'EOF' 2>&1 | tee "$OUT/shortcut_ab.jsonl"
import json, time, torch
from torch import nn
from ltx_train.models.vae.blocks import block_linear, block_linear_transpose
torch.backends.cudnn.benchmark = True
dev, blk = "cuda", (8, 32, 32)
x = torch.rand(1, 3, 56, 512, 768, device=dev) * 2 - 1          # frame 0 padded to a block, as the encoder does
z = torch.randn(1, 128, 7, 16, 24, device=dev)
enc = nn.Conv3d(3, 256, blk, stride=blk).to(dev)
dec = nn.ConvTranspose3d(128, 3, blk, stride=blk).to(dev)
def run(name, fn, iters=10):
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        torch.cuda.synchronize(); t0 = time.perf_counter(); fn(); torch.cuda.synchronize()
        first = time.perf_counter() - t0
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t0)
    print(json.dumps({"op": name, "first_call_s": round(first, 3), "median_ms": round(1e3 * sorted(ts)[iters // 2], 3)}))
run("decode shortcut: matmul", lambda: block_linear_transpose(z, dec))
run("encode shortcut: matmul", lambda: block_linear(x, enc))
run("encode shortcut: Conv3d", lambda: enc(x))
print("ConvTranspose3d: first call starts", time.strftime("%H:%M:%S"), flush=True)
run("decode shortcut: ConvTranspose3d", lambda: dec(z), iters=3)
with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
    print(json.dumps({"max_abs_diff_encode": (enc(x).float() - block_linear(x, enc).float()).abs().max().item(),
                      "max_abs_diff_decode": (dec(z).float() - block_linear_transpose(z, dec).float()).abs().max().item()}))
EOF
timeout -s INT 300 $PY bench/bench_vae.py --preset ltx --device cuda --dtype bf16 --batch 1 --frames 49 --height 512 \
  --width 768 --diffusers --tiled --profile --warmup 1 --iters 3 2>&1 | grep -v "^USDT" | tee "$OUT/bench_vae.jsonl"
# our tiled decode at diffusers' tile (512 px, 64 px overlap) rather than TileConfig's default 256/64
timeout -s INT 120 $PY bench/bench_vae.py --preset ltx --device cuda --dtype bf16 --batch 1 --frames 49 --height 512 \
  --width 768 --tiled --tile 512,64 --warmup 1 --iters 3 2>&1 | grep -v "^USDT" | tee "$OUT/bench_vae_tile512.jsonl"
