"""Re-save a checkpoint you trust (one written before checkpoints were plain) so it loads with weights_only=True.

    python -m ltx_train.modules.convert_checkpoint old.ckpt new.ckpt

This is the one place that unpickles with ``weights_only=False``: run it only on files you made.
OmegaConf containers become plain dicts / lists; anything else that is not plain is reported by key.
"""
from __future__ import annotations

import argparse

import torch

from ltx_train.modules.checkpointing import AtomicCheckpointIO


def convert(src: str, dst: str) -> None:
    checkpoint = torch.load(src, map_location="cpu", weights_only=False)  # trusted by the caller, see above
    AtomicCheckpointIO().save_checkpoint(checkpoint, dst)  # makes it plain, refuses what cannot be


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    args = parser.parse_args(argv)
    convert(args.src, args.dst)
    torch.load(args.dst, map_location="cpu", weights_only=True)
    print(f"wrote {args.dst} (loads with weights_only=True)")


if __name__ == "__main__":
    main()
