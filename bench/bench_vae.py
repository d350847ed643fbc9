"""Video VAE throughput: encode, decode, encode+decode and (optionally) training steps per second.

    python bench/bench_vae.py --preset tiny --device cpu --batch 4 --frames 25 --size 64 --train
    python bench/bench_vae.py --preset ltx --device cuda --dtype bf16 --batch 1 --frames 65 --size 256 --diffusers

``--diffusers`` also times diffusers' ``AutoencoderKLLTXVideo`` (default LTX-Video config, random
weights) on the same input in the same process; skipped with a message when diffusers is missing.
Prints one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from ltx_train.models.vae import VideoVAE, preset
from ltx_train.modules.vae_module import VAEModule

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` calls."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def report(name: str, seconds: float, args, **extra) -> None:
    clips = args.batch / seconds
    print(json.dumps({"bench": name, "seconds": round(seconds, 5), "clips_per_s": round(clips, 3),
                      "frames_per_s": round(clips * args.frames, 1), "batch": args.batch, "frames": args.frames,
                      "size": args.size, "device": args.device, "dtype": args.dtype, **extra}), flush=True)


def bench_ours(args, x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> None:
    vae = VideoVAE(preset(args.preset)).to(device).eval()
    params = sum(p.numel() for p in vae.parameters())
    enc, dec = vae.encode_params, vae.decoder
    if args.compile:
        enc, dec = torch.compile(enc), torch.compile(dec)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.no_grad(), autocast:
        z = enc(x).chunk(2, dim=1)[0]
        t_enc = timed(lambda: enc(x), device, args.warmup, args.iters)
        t_dec = timed(lambda: dec(z), device, args.warmup, args.iters)
        t_both = timed(lambda: dec(enc(x).chunk(2, dim=1)[0]), device, args.warmup, args.iters)
    extra = {"preset": args.preset, "params_m": round(params / 1e6, 2), "latent": list(z.shape[1:])}
    report("ours/encode", t_enc, args, **extra)
    report("ours/decode", t_dec, args, **extra)
    report("ours/encode+decode", t_both, args, **extra)
    if args.train:
        module = VAEModule(args.preset).to(device)
        opt = torch.optim.AdamW(module.vae.parameters(), 1e-4)

        def step():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                recon, posterior = module.vae(x)
                loss = module.reconstruction_losses(x, recon.float(), posterior)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t = timed(step, device, args.warmup, args.iters)
        report("ours/train_step", t, args, steps_per_s=round(1 / t, 3), **extra)


def bench_diffusers(args, x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> None:
    try:
        from diffusers import AutoencoderKLLTXVideo
    except ImportError as e:
        print(json.dumps({"bench": "diffusers", "skipped": f"diffusers not importable: {e}"}), flush=True)
        return
    vae = AutoencoderKLLTXVideo().to(device).eval()  # LTX-Video 0.9 layout: 32x32 x 8, 128 channels
    params = sum(p.numel() for p in vae.parameters())
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.no_grad(), autocast:
        z = vae.encode(x).latent_dist.mode()
        t_enc = timed(lambda: vae.encode(x).latent_dist.mode(), device, args.warmup, args.iters)
        t_dec = timed(lambda: vae.decode(z).sample, device, args.warmup, args.iters)
        t_both = timed(lambda: vae.decode(vae.encode(x).latent_dist.mode()).sample, device, args.warmup, args.iters)
    extra = {"params_m": round(params / 1e6, 2), "latent": list(z.shape[1:])}
    report("diffusers/encode", t_enc, args, **extra)
    report("diffusers/decode", t_dec, args, **extra)
    report("diffusers/encode+decode", t_both, args, **extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--train", action="store_true", help="also time a training step (loss of VAEModule)")
    ap.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder")
    ap.add_argument("--diffusers", action="store_true", help="also time diffusers' AutoencoderKLLTXVideo")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.frames, args.size, args.size, device=device) * 2 - 1
    bench_ours(args, x, device, dtype)
    if args.diffusers:
        bench_diffusers(args, x, device, dtype)


if __name__ == "__main__":
    main()
