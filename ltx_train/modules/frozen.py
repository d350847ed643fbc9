"""Load trained parts from their Lightning checkpoints as frozen, eval-mode ``nn.Module``s.

The DiT trains on latents of the video and audio VAEs, and generation needs the vocoder; each of
those is trained by its own LightningModule, and these loaders pull the plain model out of it.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch.nn as nn

from ltx_train.config import ConfigError


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


def _load(module_cls, path: str | Path, attr: str, what: str) -> nn.Module:
    model = getattr(load_module(module_cls, path, what), attr)
    return model.requires_grad_(False).eval()


def load_video_vae(path: str | Path) -> nn.Module:
    from ltx_train.modules.vae_module import VAEModule
    return _load(VAEModule, path, "vae", "video VAE")


def load_audio_vae(path: str | Path) -> nn.Module:
    from ltx_train.modules.audio_vae_module import AudioVAEModule
    return _load(AudioVAEModule, path, "vae", "audio VAE")


def load_vocoder(path: str | Path) -> nn.Module:
    from ltx_train.modules.vocoder_module import VocoderModule
    return _load(VocoderModule, path, "generator", "vocoder")
