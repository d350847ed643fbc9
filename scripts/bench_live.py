"""Live synthetic data throughput: clips/s one worker renders into the batch contract (no mp4).

    python scripts/bench_live.py                      # 64x64x25, 64 clips, one process, one torch thread
    python scripts/bench_live.py --size 128 --frames 49 --workers 2   # also through the DataLoader

"per worker" is one process rendering alone: render_clip (NumPy) plus the log-mel and tensor steps
of ``render_sample``; a DataLoader with W workers gives at most W times that on W free cores.
"""
import argparse
import os
import platform
import time

import torch

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.data.live import LiveSyntheticDataModule
from ltx_train.data.live_stream import render_sample
from ltx_train.data.synth import SynthConfig, render_clip


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=25)
    p.add_argument("--n", type=int, default=64, help="clips timed")
    p.add_argument("--palette", default="default")
    p.add_argument("--workers", type=int, default=0, help="also time a DataLoader with this many workers")
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = SynthConfig(width=args.size, height=args.size, num_frames=args.frames, palette=args.palette)
    mel = LogMel(MelConfig(win_length=1000))
    render_sample(0, cfg, mel, 3, "live://bench")  # warm-up (allocations, mel filterbank)
    t0 = time.perf_counter()
    for seed in range(args.n):
        render_clip(seed, cfg)
    t1 = time.perf_counter()
    for seed in range(args.n):
        render_sample(seed, cfg, mel, 3, "live://bench")
    t2 = time.perf_counter()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{args.size}x{args.size}x{args.frames}, palette {args.palette}, {args.n} clips")
    print(f"render_clip only:        {args.n / (t1 - t0):7.1f} clips/s per worker")
    print(f"render_sample (batch):   {args.n / (t2 - t1):7.1f} clips/s per worker")
    if args.workers:
        dm = LiveSyntheticDataModule(num_train=args.n, num_val=0, height=args.size, width=args.size,
                                     num_frames=args.frames, batch_size=4, num_workers=args.workers,
                                     palette=args.palette)
        t0 = time.perf_counter()
        n = sum(len(b["key"]) for b in dm.train_dataloader())
        print(f"DataLoader, {args.workers} workers: {n / (time.perf_counter() - t0):7.1f} clips/s "
              "(includes worker start-up)")


if __name__ == "__main__":
    main()
