"""``ltx-shards``: write WebDataset shards of the synthetic world or of a folder of videos.

    ltx-shards synth --out data/shards/synthetic --train 256 --val 32 --size 64 --frames 25 --fps 24 \\
        --seed 0 --shard-size 64 --workers 2
    ltx-shards synth --out data/shards/sepia_pan --train 48 --val 8 --palette sepia --camera pan_left
    ltx-shards folder --src my_videos --out data/shards/mine --captions captions.csv --clip-seconds 4 \\
        --val-fraction 0.1
    ltx-shards cache --shards data/shards/synthetic --pretrained <dir> --out data/latents/synthetic
    ltx-shards cache --synthetic 4096 --val 32 --pretrained <dir> --out data/latents/world --device cuda

``cache`` runs the frozen VAEs and text encoder once and writes latent shards for ``data=latents``
(``ltx_train.data.latent_cache``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ltx_train.data.captions import CAPTION_LAYERS
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
    s.add_argument("--drop-caption", action="append", choices=CAPTION_LAYERS, default=[], metavar="LAYER",
                   help="leave this caption layer out (repeatable), e.g. camera for a motion LoRA's clips")
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
    c = sub.add_parser("cache", help="encode shards (or rendered clips) once into latent shards for data=latents")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--shards", help="shard spec (dataset directory, glob or brace pattern) to encode")
    src.add_argument("--synthetic", type=int, metavar="N", help="render N synthetic-world train clips instead")
    c.add_argument("--splits", default="train,val", help="splits of --shards to encode (comma-separated)")
    c.add_argument("--val", type=int, default=32, help="with --synthetic: val clips (seeds seed + 1e9 + i)")
    c.add_argument("--out", required=True)
    c.add_argument("--pretrained", help="pretrained directory whose VAEs and text encoder encode")
    c.add_argument("--vae-checkpoint")
    c.add_argument("--audio-vae-checkpoint")
    c.add_argument("--text-encoder", help="text encoder folder (default: the pretrained dir's, else the packaged MiniLM)")
    c.add_argument("--max-length", type=int, help="caption tokens (default: the pretrained dir's, else 64)")
    c.add_argument("--size", type=int, default=64, help="square frame size; --width/--height override")
    c.add_argument("--width", type=int)
    c.add_argument("--height", type=int)
    c.add_argument("--frames", type=int, default=25)
    c.add_argument("--fps", type=float, default=24.0)
    c.add_argument("--sample-rate", type=int, default=24000)
    c.add_argument("--hop-length", type=int, default=250)
    c.add_argument("--n-mels", type=int, default=64)
    c.add_argument("--n-fft", type=int, default=1024)
    c.add_argument("--max-objects", type=int, default=3)
    c.add_argument("--seed", type=int, default=0, help="with --synthetic: first train seed")
    c.add_argument("--palette", choices=tuple(PALETTES), default="default")
    c.add_argument("--camera", choices=CAMERA_MOTIONS)
    c.add_argument("--gravity", choices=GRAVITY_NAMES)
    c.add_argument("--drop-caption", action="append", choices=CAPTION_LAYERS, default=[], metavar="LAYER",
                   help="with --synthetic: leave this caption layer out (repeatable)")
    c.add_argument("--shard-size", type=int, default=256, help="with --synthetic: clips per latent shard")
    c.add_argument("--batch-size", type=int, default=16, help="clips per encoder call")
    c.add_argument("--workers", type=int, default=0, help="decode / render processes")
    c.add_argument("--device", default="cpu")
    c.add_argument("--dtype", default="float16", help="float16 | bfloat16 | float32")
    return p


def _cache(args) -> dict:
    from ltx_train.data.latent_cache import _Units, build_cache, load_encoders, synthetic_units
    from ltx_train.data.shardlist import resolve_shards
    from ltx_train.data.synth import VAL_SEED_OFFSET

    mel = {"sample_rate": args.sample_rate, "n_fft": args.n_fft, "hop_length": args.hop_length,
           "win_length": min(args.n_fft, 4 * args.hop_length), "n_mels": args.n_mels}
    height, width = args.height or args.size, args.width or args.size
    clip = {"num_frames": args.frames, "fps": args.fps, "height": height, "width": width,
            "max_objects": args.max_objects, "mel": mel}
    if args.shards:
        splits = {s: _Units(s, resolve_shards(args.shards, s), clip) for s in args.splits.split(",") if s}
        source = {"kind": "shards", "spec": args.shards}
    else:
        synth = SynthConfig(width=width, height=height, num_frames=args.frames, fps=args.fps,
                            sample_rate=args.sample_rate, max_objects=args.max_objects, palette=args.palette,
                            camera=args.camera, gravity=args.gravity, drop_caption=args.drop_caption)
        splits = {"train": _Units("train", synthetic_units(args.synthetic, args.seed, args.shard_size), clip, synth)}
        if args.val:
            val_seed = args.seed + VAL_SEED_OFFSET
            splits["val"] = _Units("val", synthetic_units(args.val, val_seed, args.shard_size), clip, synth)
        source = {"kind": "synthetic", "train": args.synthetic, "val": args.val, "seed": args.seed,
                  "palette": args.palette, "camera": args.camera, "gravity": args.gravity,
                  "drop_caption": list(args.drop_caption)}
    enc = load_encoders(args.pretrained, args.vae_checkpoint, args.audio_vae_checkpoint, args.text_encoder,
                        args.max_length)
    t0 = time.perf_counter()
    manifest = build_cache(args.out, splits, enc, clip=clip, source=source, batch_size=args.batch_size,
                           workers=args.workers, device=args.device, dtype=args.dtype)
    dt = time.perf_counter() - t0
    counts = {k: v["num_samples"] for k, v in manifest["splits"].items()}
    skipped = {k: v["skipped"] for k, v in manifest["splits"].items() if v["skipped"]}
    size = sum(f.stat().st_size for f in Path(args.out).iterdir() if f.is_file())
    print(f"cached {json.dumps(counts)} clips into {args.out} ({size / 2**20:.1f} MiB) in {dt:.1f} s"
          + (f"; skipped {json.dumps(skipped)}" if skipped else ""))
    return manifest


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` and do the work; returns the manifest (synth) or the conversion summary (folder)."""
    args = _parser().parse_args(argv)
    if args.command == "cache":   # needs neither PyAV nor webdataset for rendered clips
        return _cache(args)
    from ltx_train.data.folder import convert_folder
    from ltx_train.data.shard_writer import write_synthetic_shards
    if args.command == "synth":
        cfg = SynthConfig(width=args.width or args.size, height=args.height or args.size, num_frames=args.frames,
                          fps=args.fps, sample_rate=args.sample_rate, min_objects=args.min_objects,
                          max_objects=args.max_objects, palette=args.palette, camera=args.camera,
                          gravity=args.gravity, drop_caption=args.drop_caption)
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
