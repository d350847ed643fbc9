"""``ltx-shards``: write WebDataset shards of the synthetic world or of a folder of videos.

    ltx-shards synth --out data/shards/synthetic --train 256 --val 32 --size 64 --frames 25 --fps 24 \\
        --seed 0 --shard-size 64 --workers 2
    ltx-shards synth --out data/shards/sepia_pan --train 48 --val 8 --palette sepia --camera pan_left
    ltx-shards folder --src my_videos --out data/shards/mine --captions captions.csv --clip-seconds 4 \\
        --val-fraction 0.1
"""
from __future__ import annotations

import argparse
import json
import time

from ltx_train.data.folder import convert_folder
from ltx_train.data.shard_writer import write_synthetic_shards
from ltx_train.data.synth import SynthConfig
from ltx_train.data.synth_palette import PALETTES
from ltx_train.data.synth_world import CAMERA_MOTIONS, GRAVITY_NAMES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ltx-shards", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth", help="render synthetic physics-world clips into shards")
    s.add_argument("--out", required=True)
    s.add_argument("--train", type=int, default=256, help="number of train clips")
    s.add_argument("--val", type=int, default=32, help="number of val clips (seeds disjoint from train)")
    s.add_argument("--size", type=int, default=64, help="square frame size; --width/--height override")
    s.add_argument("--width", type=int)
    s.add_argument("--height", type=int)
    s.add_argument("--frames", type=int, default=25)
    s.add_argument("--fps", type=float, default=24.0)
    s.add_argument("--sample-rate", type=int, default=24000)
    s.add_argument("--min-objects", type=int, default=1)
    s.add_argument("--max-objects", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--palette", choices=tuple(PALETTES), default="default", help="look of the world")
    s.add_argument("--camera", choices=CAMERA_MOTIONS, help="force this camera motion in every clip")
    s.add_argument("--gravity", choices=GRAVITY_NAMES, help="force this gravity direction in every clip")
    s.add_argument("--shard-size", type=int, default=64, help="samples per shard")
    s.add_argument("--workers", type=int, default=1)
    f = sub.add_parser("folder", help="convert a folder of captioned videos into shards")
    f.add_argument("--src", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--captions", help="CSV or JSONL of path,caption (default: sidecar <video stem>.txt)")
    f.add_argument("--clip-seconds", type=float, help="cut videos into clips of this length (re-encoded)")
    f.add_argument("--val-fraction", type=float, default=0.0)
    f.add_argument("--shard-size", type=int, default=64)
    f.add_argument("--seed", type=int, default=0, help="seed of the train/val assignment")
    return p


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` and do the work; returns the manifest (synth) or the conversion summary (folder)."""
    args = _parser().parse_args(argv)
    if args.command == "synth":
        cfg = SynthConfig(width=args.width or args.size, height=args.height or args.size, num_frames=args.frames,
                          fps=args.fps, sample_rate=args.sample_rate, min_objects=args.min_objects,
                          max_objects=args.max_objects, palette=args.palette, camera=args.camera,
                          gravity=args.gravity)
        t0 = time.perf_counter()
        manifest = write_synthetic_shards(args.out, args.train, args.val, cfg, shard_size=args.shard_size,
                                          workers=args.workers, seed=args.seed)
        dt = time.perf_counter() - t0
        n = args.train + args.val
        counts = {k: v["num_samples"] for k, v in manifest["splits"].items()}
        print(f"wrote {json.dumps(counts)} samples to {args.out} in {dt:.1f} s ({n / max(dt, 1e-9):.1f} clips/s)")
        return manifest
    return convert_folder(args.src, args.out, captions=args.captions, clip_seconds=args.clip_seconds,
                          val_fraction=args.val_fraction, shard_size=args.shard_size, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns an exit status (the console script passes it to sys.exit)."""
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
