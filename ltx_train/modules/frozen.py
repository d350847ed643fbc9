"""Load trained parts from their Lightning checkpoints as frozen, eval-mode ``nn.Module``s.

The DiT trains on latents of the video and audio VAEs, and generation needs the vocoder; each of
those is trained by its own LightningModule, and these loaders pull the plain model out of it.
"""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ltx_train.config import ConfigError


def _load(module_cls, path: str | Path, attr: str, what: str) -> nn.Module:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} checkpoint not found: {path}")
    try:
        module = module_cls.load_from_checkpoint(str(path), map_location="cpu", weights_only=False)
    except (KeyError, RuntimeError, TypeError) as e:
        raise ConfigError(f"{path} is not a {module_cls.__name__} checkpoint ({what}): {e}") from e
    model = getattr(module, attr)
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
