"""Copy a pretrained directory, giving each component whose weights were left behind (the device's
64 MiB tree limit) randomly initialised weights of the same config: the same shapes, hence the same
step time and memory, for runs that measure speed and memory only (never quality).

    python scripts/shape_alike_base.py assets/pretrained/ltx-mini-synth /tmp/base [--text-encoder DIR]
    python scripts/shape_alike_base.py assets/pretrained/ltx-mini-synth /tmp/base1b --dit 1b --patch 1 1 1 --perturb 0.02

``--dit PRESET`` gives the model the trunk of a larger preset (depth, width, heads; the VAEs' channels, the
connector width and the patch stay the base's unless ``--patch``), with random weights. The model's own
initialisation zeroes the adaLN-Zero gates and output layers, so such a model predicts exactly 0;
``--perturb S`` adds N(0, S^2) to every weight so that the output depends on every layer (for comparing
the numerics of two ways of running one model, e.g. INT8 against bf16: still not a model of anything).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from ltx_train.pretrained import WEIGHTS_NAME, build_component, read_config, save_component


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--text-encoder", help="the text encoder's folder, written into model_index.json")
    ap.add_argument("--dit", help="a DiT preset (ltx_train/models/dit/presets.py) for the model's trunk")
    ap.add_argument("--patch", type=int, nargs=3, help="the DiT's patch size (pt ph pw) with --dit")
    ap.add_argument("--perturb", type=float, default=0.0, help="std of the noise added to the new weights")
    args = ap.parse_args()
    src, dst = Path(args.src), Path(args.dst)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    torch.manual_seed(0)
    if args.dit:
        _retrunk(dst / "model", args.dit, args.patch)
    for part in sorted(p for p in dst.iterdir() if (p / "config.json").is_file()):
        if not (part / WEIGHTS_NAME).is_file():
            cfg = read_config(part)
            module = build_component(cfg["_class_name"], {k: v for k, v in cfg.items() if not k.startswith("_")}, str(part))
            if args.perturb > 0:
                with torch.no_grad():
                    for prm in module.parameters():
                        prm.add_(torch.randn_like(prm) * args.perturb)
            save_component(module, part)
            print(f"{part.name}: random weights of its config ({sum(p.numel() for p in module.parameters()):,} params)")
    if args.text_encoder:
        index = json.loads((dst / "model_index.json").read_text())
        index["text_encoder_config"]["path"] = str(Path(args.text_encoder).resolve())
        (dst / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def _retrunk(model_dir: Path, name: str, patch) -> None:
    """Rewrite the model's config with the preset's depth, width and heads (weights removed)."""
    from ltx_train.models.dit.presets import preset
    cfg = read_config(model_dir)
    p = preset(name)
    cfg["dit"].update(width=p.width, depth=p.depth, heads=p.heads, mlp_ratio=p.mlp_ratio, rope_axes_dim=None)
    if patch:
        cfg["dit"]["patch_size"] = list(patch)
    if cfg.get("physics"):
        cfg["physics"]["width"] = p.width
    (model_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (model_dir / WEIGHTS_NAME).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
