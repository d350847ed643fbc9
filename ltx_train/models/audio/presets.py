"""Named sizes of the audio models: ``tiny`` trains on a laptop CPU, ``base`` is the GPU size.

``audio_vae_config("tiny", latent_channels=16)`` returns the preset with fields overridden.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import OmegaConf

from ltx_train.config import to_dataclass
from ltx_train.models.audio.audio_vae import AudioVAEConfig
from ltx_train.models.audio.discriminators import DiscriminatorConfig
from ltx_train.models.audio.vocoder import HiFiGANConfig

AUDIO_VAE_PRESETS: dict[str, AudioVAEConfig] = {
    "tiny": AudioVAEConfig(channels=(16, 32, 64), blocks_per_stage=1, mel_downsample=4),
    # mel folded 8x: bottleneck 256 channels x 8 bins, like the 8-channel, 4x-time LTX-2 audio latents
    "base": AudioVAEConfig(channels=(64, 128, 256, 256), blocks_per_stage=2, mel_downsample=8),
}

VOCODER_PRESETS: dict[str, HiFiGANConfig] = {
    "tiny": HiFiGANConfig(upsample_initial_channel=64, resblock_kernel_sizes=(3, 7),
                          resblock_dilations=((1, 3), (1, 3))),
    "base": HiFiGANConfig(),  # HiFi-GAN V1 widths: 512 channels, kernels (3, 7, 11), dilations (1, 3, 5)
}

DISCRIMINATOR_PRESETS: dict[str, DiscriminatorConfig] = {
    "tiny": DiscriminatorConfig(mpd_channels=(8, 16, 32, 64, 64),
                                msd_channels=(16, 16, 32, 64, 64, 64, 64), msd_groups=(1, 4, 8, 8, 8, 8, 1)),
    "base": DiscriminatorConfig(),  # HiFi-GAN's MPD + MSD
}


def _pick(presets: dict[str, Any], kind: str, name: str, overrides: dict[str, Any]):
    overrides = OmegaConf.to_container(OmegaConf.create(dict(overrides)))  # Hydra's ListConfig -> list
    if name not in presets:
        raise ValueError(f"unknown {kind} preset {name!r}; choose one of {sorted(presets)}")
    base = presets[name]
    # through to_dataclass so Hydra's lists become tuples and a misspelt key fails naming itself
    return to_dataclass(type(base), {**dataclasses.asdict(base), **overrides}, path=f"{kind} preset {name}")


def audio_vae_config(name: str = "tiny", **overrides: Any) -> AudioVAEConfig:
    return _pick(AUDIO_VAE_PRESETS, "audio VAE", name, overrides)


def vocoder_config(name: str = "tiny", **overrides: Any) -> HiFiGANConfig:
    return _pick(VOCODER_PRESETS, "vocoder", name, overrides)


def discriminator_config(name: str = "tiny", **overrides: Any) -> DiscriminatorConfig:
    return _pick(DISCRIMINATOR_PRESETS, "discriminator", name, overrides)
