"""Load trained parts from their Lightning checkpoints, never unpickling anything but plain types.

The DiT trains on latents of the video and audio VAEs, and generation needs the vocoder; each of
those is trained by its own LightningModule, which records its model's architecture in every
checkpoint (``pretrained.record_component``). ``load_video_vae`` & co. rebuild the plain, frozen,
eval-mode model from a ``weights_only`` load without instantiating the LightningModule;
``load_module`` rebuilds a whole LightningModule (for evaluation code that wants its extras).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch.nn as nn

from ltx_train.config import ConfigError
from ltx_train.pretrained import component_from_checkpoint


def load_module(module_cls, path: str | Path, what: str):
    """``module_cls.load_from_checkpoint(path)`` on the CPU with ``weights_only=True``: a checkpoint that
    holds anything but plain types and tensors (e.g. a pickled object that would run code) is refused."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} checkpoint not found: {path}")
    try:
        return module_cls.load_from_checkpoint(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: refusing to load this {what} checkpoint: it holds objects other than plain "
                          f"types and tensors, and unpickling them could run code ({first}). Checkpoints written "
                          "by ltx-train hold plain types only; re-save an old, trusted one with "
                          "`python -m ltx_train.modules.convert_checkpoint SRC DST`") from e
    except (KeyError, RuntimeError, TypeError) as e:
        raise ConfigError(f"{path} is not a {module_cls.__name__} checkpoint ({what}): {e}") from e


def load_video_vae(path: str | Path) -> nn.Module:
    return component_from_checkpoint(path, "vae")


def load_audio_vae(path: str | Path) -> nn.Module:
    return component_from_checkpoint(path, "audio_vae")


def load_vocoder(path: str | Path) -> nn.Module:
    return component_from_checkpoint(path, "vocoder")
