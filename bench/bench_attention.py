"""One self-attention call, forward and forward + backward, per SDPA backend and per memory layout of
q, k, v (the attention ceiling of the DiT step; ``experiments/gpu_speed.md``).

    python bench/bench_attention.py                      # 10,273 tokens (ltx2b's 9,984 video + 97 audio + 192 text)
    python bench/bench_attention.py --heads 32 --head-dim 64 --mask

Layouts (all shaped (B, H, N, D) when SDPA sees them):
- ``bhnd``: three contiguous (B, H, N, D) tensors (what a kernel benchmark usually times);
- ``model``: as ``layers.Attention`` builds them: one qkv projection output (B, N, 3 * H * D) split into
  strided views, and the output turned back into (B, N, H * D), so the gradient arrives in that layout;
- ``bhnd_in``: contiguous (B, H, N, D) inputs, the output turned back into (B, N, H * D) as in ``model``
  (what ``bench_dit.py --qkv-contiguous`` gives the kernel).
FLOPs: forward 4 * B * H * N^2 * D (QK^T and PV), forward + backward 3x that.
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench_dit import time_steps   # CUDA-event timing after warm-up (bench/ is on sys.path when run as a script)

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def inputs(layout: str, b: int, h: int, n: int, d: int, device, dtype):
    g = torch.Generator(device).manual_seed(0)
    if layout in ("bhnd", "bhnd_in"):
        leaves = [torch.randn(b, h, n, d, device=device, dtype=dtype, generator=g).requires_grad_() for _ in range(3)]
        return leaves, tuple(leaves)
    qkv = torch.randn(b, n, 3 * h * d, device=device, dtype=dtype, generator=g).requires_grad_()
    q, k, v = qkv.view(b, n, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
    return [qkv], (q, k, v)


def run(layout: str, backend: str, args, device) -> dict:
    b, h, n, d = args.batch, args.heads, args.tokens, args.head_dim
    leaves, (q, k, v) = inputs(layout, b, h, n, d, device, torch.bfloat16)
    mask = None
    if args.mask:   # a key-padding mask: the last quarter of the text tokens padded, as in bench_dit.py
        mask = torch.ones(b, 1, 1, n, dtype=torch.bool, device=device)
        mask[..., n - args.text_tokens // 4:] = False
    grad = torch.randn(b, n, h * d, device=device, dtype=torch.bfloat16)

    def fwd():
        with sdpa_kernel([BACKENDS[backend]]):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out if layout == "bhnd" else out.transpose(1, 2).reshape(b, n, h * d)

    def fwd_bwd():
        out = fwd()
        g = grad.view(b, n, h, d).transpose(1, 2).contiguous() if layout == "bhnd" else grad
        torch.autograd.grad(out, leaves, g)

    try:
        with torch.no_grad():
            t_f = 1000.0 * time_steps(fwd, args.warmup, args.iters)   # ms
        t_fb = 1000.0 * time_steps(fwd_bwd, args.warmup, args.iters)
    except RuntimeError as e:   # a backend that cannot take this call
        return {"layout": layout, "backend": backend, "error": str(e).splitlines()[0][:160]}
    flops = 4.0 * b * h * n * n * d
    return {"layout": layout, "backend": backend, "heads": h, "head_dim": d, "tokens": n, "mask": args.mask,
            "fwd_ms": t_f, "fwd_bwd_ms": t_fb, "bwd_ms": t_fb - t_f,
            "fwd_tflops": flops / t_f / 1e9, "bwd_tflops": 2 * flops / (t_fb - t_f) / 1e9,
            "fwd_bwd_tflops": 3 * flops / t_fb / 1e9}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=10273)
    p.add_argument("--text-tokens", type=int, default=192)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--mask", action="store_true", help="a boolean key-padding mask (a quarter of the text padded)")
    p.add_argument("--backends", nargs="+", default=["cudnn", "flash"], choices=list(BACKENDS))
    p.add_argument("--layouts", nargs="+", default=["bhnd", "model", "bhnd_in"],
                   choices=["bhnd", "model", "bhnd_in"])
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--json", default=None, help="append one JSON line per measurement to this file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_attention.py times CUDA kernels: no GPU here")
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}: B={args.batch} N={args.tokens} "
          f"H={args.heads} D={args.head_dim} mask={args.mask}, bf16")
    for layout in args.layouts:
        for backend in args.backends:
            r = run(layout, backend, args, device)
            if "error" in r:
                print(f"{layout:>5} {backend:>9}: not available ({r['error']})")
            else:
                print(f"{layout:>5} {backend:>9}: fwd {r['fwd_ms']:6.2f} ms ({r['fwd_tflops']:4.0f} TFLOP/s)  "
                      f"bwd {r['bwd_ms']:6.2f} ms ({r['bwd_tflops']:4.0f})  fwd+bwd {r['fwd_bwd_ms']:6.2f} ms "
                      f"({r['fwd_bwd_tflops']:4.0f})")
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
