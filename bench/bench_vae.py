"""Video VAE throughput: encode, decode, encode+decode and (optionally) training steps per second.

    python bench/bench_vae.py --preset tiny --device cpu --batch 4 --frames 25 --size 64 --train
    python bench/bench_vae.py --preset ltx --device cuda --dtype bf16 --batch 1 --frames 49 --height 512 \
        --width 768 --diffusers --tiled

``--diffusers`` also times diffusers' ``AutoencoderKLLTXVideo`` (default LTX-Video config, random
weights) on the same input in the same process; skipped with a message when diffusers is missing.
``--tiled`` adds tiled decode (ours: ``tiled_decode`` with the default ``TileConfig``; diffusers':
``enable_tiling()`` at its defaults). Prints one JSON line per measurement, with the peak GPU memory of
that measurement on CUDA.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable

import torch

from ltx_train.models.vae import TileConfig, VideoVAE, preset, tiled_decode
from ltx_train.modules.vae_module import VAEModule

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> tuple[float, float]:
    """(median seconds per call of ``fn`` after ``warmup`` calls, seconds of the first call).

    The first call includes cuDNN's autotuning of every new convolution shape (``cudnn.benchmark``)."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    first = None
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        sync()
        first = time.perf_counter() - t0 if first is None else first
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], first if first is not None else times[0]


def measure(fn: Callable[[], object], device: torch.device, args) -> tuple[float, float, float | None]:
    """(median seconds, first call's seconds, peak GiB allocated during the calls; None off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    t, first = timed(fn, device, args.warmup, args.iters)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return t, first, peak


def report(name: str, measured: tuple[float, float, float | None], args, **extra) -> None:
    seconds, first, peak = measured
    clips = args.batch / seconds
    mem = {} if peak is None else {"peak_gib": round(peak, 2)}
    print(json.dumps({"bench": name, "seconds": round(seconds, 5), "first_call_s": round(first, 3),
                      "clips_per_s": round(clips, 3),
                      "frames_per_s": round(clips * args.frames, 1), "batch": args.batch, "frames": args.frames,
                      "height": args.height, "width": args.width, "device": args.device, "dtype": args.dtype,
                      **mem, **extra}), flush=True)


def profile(name: str, fn: Callable[[], object], device: torch.device, rows: int = 15) -> None:
    """One more call of ``fn`` under torch.profiler: its kernels by total device time, as a table."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=acts) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"# profile {name}\n" + prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60),
          flush=True)


def bench_ours(args, x: torch.Tensor, device: torch.device, dtype: torch.dtype):
    """Times encode, decode, both (and a training step); returns (tiled decode, its report fields)."""
    vae = VideoVAE(preset(args.preset)).to(device).eval()
    params = sum(p.numel() for p in vae.parameters())
    enc, dec = vae.encode_params, vae.decoder
    if args.compile:
        enc, dec = torch.compile(enc), torch.compile(dec)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.no_grad(), autocast:
        z = enc(x).chunk(2, dim=1)[0]
        extra = {"preset": args.preset, "params_m": round(params / 1e6, 2), "latent": list(z.shape[1:])}
        report("ours/encode", measure(lambda: enc(x), device, args), args, **extra)
        report("ours/decode", measure(lambda: dec(z), device, args), args, **extra)
        report("ours/encode+decode", measure(lambda: dec(enc(x).chunk(2, dim=1)[0]), device, args), args, **extra)
        if args.profile:
            profile("ours/decode", lambda: dec(z), device)
    tile = TileConfig(spatial=args.tile[0], spatial_overlap=args.tile[1]) if args.tile else TileConfig()
    tiled = (lambda: tiled_decode(vae, z, tile), {"tile": dataclasses.asdict(tile), **extra})
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
        t = measure(step, device, args)
        report("ours/train_step", t, args, steps_per_s=round(1 / t[0], 3), **extra)
    return tiled


def bench_diffusers(args, x: torch.Tensor, device: torch.device, dtype: torch.dtype):
    """As ``bench_ours`` for diffusers' VAE; None when diffusers is missing."""
    try:
        from diffusers import AutoencoderKLLTXVideo
    except ImportError as e:
        print(json.dumps({"bench": "diffusers", "skipped": f"diffusers not importable: {e}"}), flush=True)
        return None
    vae = AutoencoderKLLTXVideo().to(device).eval()  # LTX-Video 0.9 layout: 32x32 x 8, 128 channels
    params = sum(p.numel() for p in vae.parameters())
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.no_grad(), autocast:
        z = vae.encode(x).latent_dist.mode()
        extra = {"params_m": round(params / 1e6, 2), "latent": list(z.shape[1:])}
        report("diffusers/encode", measure(lambda: vae.encode(x).latent_dist.mode(), device, args), args, **extra)
        report("diffusers/decode", measure(lambda: vae.decode(z).sample, device, args), args, **extra)
        report("diffusers/encode+decode", measure(lambda: vae.decode(vae.encode(x).latent_dist.mode()).sample,
                                                  device, args), args, **extra)
        if args.profile:
            profile("diffusers/decode", lambda: vae.decode(z).sample, device)

    def tiled_decode_theirs():
        vae.enable_tiling()
        return vae.decode(z).sample
    return tiled_decode_theirs, extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--size", type=int, default=64, help="height and width, unless --height / --width")
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--train", action="store_true", help="also time a training step (loss of VAEModule)")
    ap.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder")
    ap.add_argument("--diffusers", action="store_true", help="also time diffusers' AutoencoderKLLTXVideo")
    ap.add_argument("--tile", type=lambda s: tuple(int(v) for v in s.split(",")), default=None,
                    metavar="EDGE,OVERLAP", help="our spatial tile edge and overlap in pixels (diffusers' "
                    "defaults are 512,64); default: TileConfig()")
    ap.add_argument("--profile", action="store_true", help="print the top kernels of one decode call (ours and theirs)")
    ap.add_argument("--tiled", action="store_true", help="also time tiled decode (ours and diffusers')")
    args = ap.parse_args()
    args.height, args.width = args.height or args.size, args.width or args.size
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.frames, args.height, args.width, device=device) * 2 - 1
    # whole-clip figures of both first, then the tiled ones (cuDNN tunes each new tile shape)
    tiled = {"ours": bench_ours(args, x, device, dtype)}
    if args.diffusers:
        tiled["diffusers"] = bench_diffusers(args, x, device, dtype)
    if args.tiled:
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
        for name, job in tiled.items():
            if job is not None:
                with torch.no_grad(), autocast:
                    report(f"{name}/tiled_decode", measure(job[0], device, args), args, **job[1])


if __name__ == "__main__":
    main()
