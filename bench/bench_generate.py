"""Generation throughput: clips/s and frames/s of ``LTXVideoPipeline`` one prompt at a time against
batches of prompts, on the same prompts, seed and settings (CPU or GPU); with ``--quantize int8`` also
the INT8 pipeline: its model weight bytes, speed, and PSNR of its clips against the float clips.

    python bench/bench_generate.py --pretrained assets/pretrained/ltx-mini-synth --prompts 8 --batch 8
    python bench/bench_generate.py --pretrained <dir> --device cuda --dtype bf16 --prompts 32 --batch 8 16
    python bench/bench_generate.py --quantize int8 --batch 8
    python bench/bench_generate.py --pretrained <dir> --device cuda --dtype bf16 --batch --offload

Prompts are synthetic-world style captions (colours and shapes varied). Each run generates every prompt once
after one warm-up call; the figures are wall-clock, text encoding, sampling, VAE decoding and the
vocoder included. Prints one JSON line per batch size (on a GPU with the peak allocated memory of that
run, and ``resident_gib``: what was already allocated when it started; the variants run one after the
other in one process, so each is collected before the next); ``--offload`` also times ``pipe.enable_model_cpu_offload`` (every component in host memory, moved
to the GPU only while it runs) against everything on the GPU.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ltx_train.pipeline import LTXVideoPipeline  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "cyan"]
SHAPES = ["rubber ball", "wooden box", "metal ball", "glass sphere"]


def prompts_of(n: int) -> list[str]:
    return [f"A {COLOURS[i % len(COLOURS)]} {SHAPES[i % len(SHAPES)]} moves inside a closed box. Gravity pulls "
            f"downward. After {0.2 + 0.1 * (i % 5):.1f} seconds it hits the floor. The camera is static."
            for i in range(n)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pretrained", default="assets/pretrained/ltx-mini-synth")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--batch", type=int, nargs="*", default=[8], help="batch sizes to time besides 1")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--quantize", default=None, choices=["int8"], help="also time the quantized pipeline")
    p.add_argument("--offload", action="store_true", help="also time model CPU offload (a GPU device)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    prompts = prompts_of(args.prompts)
    kw = dict(seconds=args.seconds, height=args.size, width=args.size, steps=args.steps, seed=0)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    from ltx_train.quantize import weight_bytes
    reference = None
    variants = [(None, False)] + ([(args.quantize, False)] if args.quantize else [])
    variants += [(None, True)] if args.offload else []
    for quantize, offload in variants:
        pipe = LTXVideoPipeline.from_pretrained(args.pretrained, device="cpu" if offload else device,
                                                dtype=DTYPES[args.dtype], quantize=quantize)
        if offload:
            pipe.enable_model_cpu_offload(device)
        clips = run(pipe, prompts, kw, args, name, quantize, weight_bytes(pipe.model), offload, device)
        if reference is None:
            reference = clips
        else:
            import numpy as np
            mse = np.mean([((a.frames.astype(np.float64) - b.frames.astype(np.float64)) ** 2).mean()
                           for a, b in zip(reference, clips)])
            print(json.dumps({"bench": "generate/psnr", "quantize": quantize, "offload": offload, "vs": args.dtype,
                              "psnr_db": round(float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12))), 2)}))
        del pipe, clips
        gc.collect()   # modules hold reference cycles: without this a variant's weights outlive it on the GPU
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


def run(pipe, prompts, kw, args, name, quantize, model_bytes, offload, device) -> list:
    pipe(prompts[:1], **kw)                                       # warm-up: first-call allocations, caches
    base, clips = None, None
    for bs in [1, *args.batch]:
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            resident = torch.cuda.memory_allocated()
        start = time.perf_counter()
        clips = pipe(prompts, batch_size=bs, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()
        took = time.perf_counter() - start
        frames = sum(c.frames.shape[0] for c in clips)
        r = {"bench": "generate", "batch": bs, "prompts": len(prompts), "seconds": round(took, 3),
             "clips_per_s": round(len(clips) / took, 4), "frames_per_s": round(frames / took, 2),
             "size": args.size, "clip_seconds": args.seconds, "steps": args.steps, "dtype": args.dtype,
             "quantize": quantize, "offload": offload, "model_mib": round(model_bytes / 2**20, 2),
             "seconds_per_clip": round(took / len(clips), 4), "device": name}
        if device.type == "cuda":
            r["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            r["resident_gib"] = round(resident / 2**30, 3)
        base = base or r["clips_per_s"]
        r["vs_batch_1"] = round(r["clips_per_s"] / base, 2)
        print(json.dumps(r))
    return clips


if __name__ == "__main__":
    sys.exit(main())
