"""Synthetic-world throughput: clips/s rendered, and rendered + encoded to mp4, for small and large clips.

    python scripts/bench_render.py                       # 64x64x25 and 256x256x121, one process
    python scripts/bench_render.py --shards 256 --workers 2   # also time write_synthetic_shards end to end

Results are recorded in experiments/synthetic_render_speed.md.
"""
import argparse
import os
import platform
import tempfile
import time

from ltx_train.data.shard_writer import mp4_bytes, write_synthetic_shards
from ltx_train.data.synth import SynthConfig, render_clip


def clips_per_second(cfg: SynthConfig, n: int, encode: bool) -> float:
    t0 = time.perf_counter()
    for seed in range(n):
        clip = render_clip(seed, cfg)
        if encode:
            mp4_bytes(clip.frames, cfg.fps, clip.audio, cfg.sample_rate, cfg.crf)
    return n / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-small", type=int, default=64, help="clips timed at 64x64x25")
    p.add_argument("--n-large", type=int, default=6, help="clips timed at 256x256x121")
    p.add_argument("--shards", type=int, default=0, help="also write this many 64x64x25 train clips to shards")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible")
    for cfg, n in ((SynthConfig(), args.n_small), (SynthConfig(width=256, height=256, num_frames=121), args.n_large)):
        render_clip(0, cfg)  # warm-up: imports, first allocations
        r, e = clips_per_second(cfg, n, False), clips_per_second(cfg, n, True)
        print(f"{cfg.width}x{cfg.height}x{cfg.num_frames}: render {r:.2f} clips/s, render+encode {e:.2f} clips/s "
              f"({n} clips, 1 process)")
    if args.shards:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            write_synthetic_shards(out, args.shards, 0, SynthConfig(), shard_size=64, workers=args.workers)
            dt = time.perf_counter() - t0
        print(f"write_synthetic_shards: {args.shards} clips 64x64x25 with {args.workers} workers in {dt:.1f} s "
              f"({args.shards / dt:.2f} clips/s, including pool start-up)")


if __name__ == "__main__":
    main()
