"""Stacked adapters at chosen weights, scored from the frames (palette and the two camera-pan statistics).

    python scripts/lora_mix.py --base assets/pretrained/ltx-mini-synth --lora style=<dir> --lora motion=<dir> \\
        --mix 0,1 --mix 0.5,1 --mix 1,1 --prompts 4 --palette sepia [--drop-caption camera]

Each ``--mix`` is one weight per adapter, in ``--lora`` order, set with the seed's API
(``pipe.set_adapters(names, weights=[...])``); the same held-out prompts and seed are generated for
every mix (``ltx-eval task=lora`` sets all adapters to one weight; this sets each its own).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ltx_train.eval.look import camera_pan_score, palette_score, room_edge_pan_score
from ltx_train.eval.lora_effect import default_prompts, means, readable
from ltx_train.pipeline import LTXVideoPipeline


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--lora", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--mix", action="append", required=True, metavar="W1,W2,...")
    p.add_argument("--prompts", type=int, default=4, help="held-out default-world captions (val seeds)")
    p.add_argument("--drop-caption", action="append", default=[], metavar="LAYER",
                   help="leave this layer's sentence out of the prompts (e.g. camera), as `ltx-shards --drop-caption`")
    p.add_argument("--palette", default="sepia")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (the pipeline's default: 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the report here (JSON)")
    p.add_argument("--frames", metavar="DIR", help="also save each mix's clips as DIR/<mix>.npz (uint8 (N, T, H, W, 3)), to rescore")
    args = p.parse_args(argv)
    pipe = LTXVideoPipeline.from_pretrained(args.base)
    names = []
    for spec in args.lora:
        name, _, path = spec.partition("=")
        names.append(pipe.load_lora_weights(path, adapter_name=name))
    prompts = default_prompts(args.prompts, drop_caption=tuple(args.drop_caption))
    report = {"base": args.base, "adapters": args.lora, "prompts": prompts, "steps": args.steps,
              "guidance": args.guidance, "mixes": {}}
    for mix in args.mix:
        weights = [float(w) for w in mix.split(",")]
        pipe.set_adapters(names, weights=weights)
        clips = pipe(prompts, steps=args.steps, seed=args.seed, guidance_scale=args.guidance)
        pan = [camera_pan_score(c.frames) for c in clips]
        edge = [readable(room_edge_pan_score(c.frames)) for c in clips]   # None: unreadable
        mean_edge = means([{"edge": x} for x in edge])["mean_edge"]
        n_read = sum(x is not None for x in edge)
        look = [palette_score(c.frames, args.palette) for c in clips]
        if args.frames:
            Path(args.frames).mkdir(parents=True, exist_ok=True)
            np.savez_compressed(Path(args.frames) / f"{mix}.npz", frames=np.stack([c.frames for c in clips]))
        report["mixes"][mix] = {"pan_px_per_frame": pan, "edge_pan_px_per_frame": edge, "palette": look,
                                "mean_pan": float(np.mean(pan)), "mean_edge_pan": mean_edge,
                                "edge_readable": n_read, "mean_palette": float(np.mean(look))}
        print(f"{dict(zip(names, weights))}: {args.palette} score {np.mean(look):.3f}, pan {np.mean(pan):.3f} px/frame "
              f"(clips {', '.join(f'{x:.3f}' for x in pan)}); room-edge pan "
              f"{'-' if mean_edge is None else f'{mean_edge:.3f}'} ({n_read} of {len(edge)} readable)", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == "__main__":
    main()
