"""Load trained parts from their Lightning checkpoints as frozen, eval-mode ``nn.Module``s.

The DiT trains on latents of the video and audio VAEs, and generation needs the vocoder; each of
those is trained by its own LightningModule, which records its model's architecture in every
checkpoint (``pretrained.record_component``). These loaders rebuild the plain model from a
``weights_only`` load: no LightningModule is instantiated and no pickled object is trusted.
"""
from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ltx_train.pretrained import component_from_checkpoint


def load_video_vae(path: str | Path) -> nn.Module:
    return component_from_checkpoint(path, "vae")


def load_audio_vae(path: str | Path) -> nn.Module:
    return component_from_checkpoint(path, "audio_vae")


def load_vocoder(path: str | Path) -> nn.Module:
    return component_from_checkpoint(path, "vocoder")
