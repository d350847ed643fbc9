"""Re-save a checkpoint you trust as one plain file that loads with weights_only=True: one written before
checkpoints were plain, or a DeepSpeed ZeRO checkpoint directory (``trainer=deepspeed_*``), whose
shards are merged (``ltx_train.modules.zero_checkpoint``: weights, EMA, Adam moments, step, loops).

    python -m ltx_train.modules.convert_checkpoint old.ckpt new.ckpt
    python -m ltx_train.modules.convert_checkpoint <run>/checkpoints/last.ckpt merged.ckpt   # a ZeRO directory

This unpickles with ``weights_only=False``: run it only on files you made.
OmegaConf containers become plain dicts / lists; anything else that is not plain is reported by key.
"""
from __future__ import annotations

import argparse

import torch

from ltx_train.modules.checkpointing import AtomicCheckpointIO


def convert(src: str, dst: str) -> None:
    from ltx_train.modules.zero_checkpoint import convert_zero_checkpoint, is_zero_checkpoint
    if is_zero_checkpoint(src):
        checkpoint = convert_zero_checkpoint(src)
    else:
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
