"""Copy a pretrained directory, giving each component whose weights were left behind (the device's
64 MiB tree limit) randomly initialised weights of the same config: the same shapes, hence the same
step time and memory, for runs that measure speed and memory only (never quality).

    python scripts/shape_alike_base.py assets/pretrained/ltx-mini-synth /tmp/base [--text-encoder DIR]
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
    args = ap.parse_args()
    src, dst = Path(args.src), Path(args.dst)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    torch.manual_seed(0)
    for part in sorted(p for p in dst.iterdir() if (p / "config.json").is_file()):
        if not (part / WEIGHTS_NAME).is_file():
            cfg = read_config(part)
            module = build_component(cfg["_class_name"], {k: v for k, v in cfg.items() if not k.startswith("_")}, str(part))
            save_component(module, part)
            print(f"{part.name}: random weights of its config ({sum(p.numel() for p in module.parameters()):,} params)")
    if args.text_encoder:
        index = json.loads((dst / "model_index.json").read_text())
        index["text_encoder_config"]["path"] = str(Path(args.text_encoder).resolve())
        (dst / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
