"""Decode throughput: clips/s per worker for 64x64x25 and 256x256x121 clips, and where the time goes.

    python scripts/bench_decode.py                     # both sizes, stages + DataModule with 0/1/2 workers
    python scripts/bench_decode.py --workers 0 1 2 4 --seconds 20

Test clips come from the synthetic-world generator (rendered once into a temporary shard); the
same few clips are decoded over and over, which is fine: nothing is cached between readers.
Results are recorded in experiments/data_decode_speed.md.
"""
import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.data.datamodule import VideoDataModule
from ltx_train.data.decode import ClipConfig, decode_sample, decode_video
from ltx_train.data.shard_writer import write_synthetic_shards
from ltx_train.data.synth import SynthConfig
from ltx_train.data.transforms import frames_to_clip, plan_resize_crop
from ltx_train.media import read_audio


def timed(fn, samples, seconds: float) -> float:
    """Mean seconds per call of fn(sample), cycling over samples for about ``seconds``."""
    fn(samples[0])  # warm-up
    n, t0 = 0, time.perf_counter()
    while n < len(samples) or time.perf_counter() - t0 < seconds:
        fn(samples[n % len(samples)])
        n += 1
    return (time.perf_counter() - t0) / n


def stage_times(samples, cfg: ClipConfig, mel: LogMel, seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    decoded = decode_video(samples[0]["mp4"], cfg, rng)[0]
    geom = plan_resize_crop(decoded.shape[1], decoded.shape[2], cfg.height, cfg.width, rng)
    clip_s = cfg.num_samples / cfg.sample_rate
    audio = torch.from_numpy(read_audio(samples[0]["mp4"], 0.0, clip_s, cfg.sample_rate, mono=True)[0])
    auto = ClipConfig(**{**cfg.__dict__, "decode_threads": 0})
    return {"video decode": timed(lambda s: decode_video(s["mp4"], cfg, rng), samples, seconds),
            "  (decord auto)": timed(lambda s: decode_video(s["mp4"], auto, rng), samples, seconds),
            "crop+normalise": timed(lambda s: frames_to_clip(decoded, geom), samples, seconds),
            "audio decode": timed(lambda s: read_audio(s["mp4"], 0.0, clip_s, cfg.sample_rate, mono=True),
                                  samples, seconds),
            "log-mel": timed(lambda s: mel(audio), samples, seconds),
            "whole sample": timed(lambda s: decode_sample(s, cfg, mel, rng), samples, seconds)}


def loader_rate(shard: str, cfg: ClipConfig, workers: int, seconds: float) -> float:
    """Clips/s through VideoDataModule's train loader (batch 4), after the first batch."""
    dm = VideoDataModule(train_shards=shard, num_frames=cfg.num_frames, fps=cfg.fps, height=cfg.height,
                         width=cfg.width, batch_size=4, num_workers=workers, shuffle_buffer=8,
                         epoch_size=100_000)  # default decode_threads: decord auto with 0 workers, else 1
    it = iter(dm.train_dataloader())
    next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += len(next(it)["key"])
    rate = n / (time.perf_counter() - t0)
    del it
    return rate


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--seconds", type=float, default=8.0, help="time per measurement")
    args = p.parse_args()
    torch.set_num_threads(1)  # what a DataLoader worker runs with
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"torch {torch.__version__}; stages run single-threaded like a DataLoader worker")
    sizes = [(SynthConfig(), 16), (SynthConfig(width=256, height=256, num_frames=121), 4)]
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        for synth, n_clips in sizes:
            name = f"{synth.width}x{synth.height}x{synth.num_frames}"
            out = Path(tmp) / name
            t0 = time.perf_counter()
            write_synthetic_shards(out, n_clips, 0, synth, shard_size=n_clips, workers=2)
            shard = str(out / "train-000000.tar")
            samples = list(wds.WebDataset(shard, shardshuffle=False))
            mb = np.mean([len(s["mp4"]) for s in samples]) / 1e6
            print(f"\n{name}: {n_clips} clips, {mb:.3f} MB mp4 each (made in {time.perf_counter() - t0:.0f} s)")
            cfg = ClipConfig(num_frames=synth.num_frames, fps=synth.fps, height=synth.height, width=synth.width)
            mel = LogMel(MelConfig())
            for stage, sec in stage_times(samples, cfg, mel, args.seconds / 2).items():
                print(f"  {stage:15s} {sec * 1e3:8.1f} ms/clip")
            for workers in args.workers:
                rate = loader_rate(shard, cfg, workers, args.seconds)
                per = rate / max(workers, 1)
                print(f"  DataModule num_workers={workers}: {rate:6.1f} clips/s total, {per:6.1f} clips/s per worker")


if __name__ == "__main__":
    main()
