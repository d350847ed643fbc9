"""3D patch-GAN discriminator and hinge losses for the video VAE's optional adversarial term."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PatchDiscriminatorConfig:
    in_channels: int = 3
    channels: int = 32
    layers: int = 3          # each halves H and W; time is halved from the second layer on


class PatchDiscriminator3d(nn.Module):
    """(B, 3, T, H, W) -> (B, 1, T', H / 2**layers, W / 2**layers) realness logits per patch.

    Patch outputs (rather than one logit per clip) judge local texture and motion, which is what
    L1 + SSIM leave blurry. GroupNorm, not BatchNorm, so real and fake batches don't share statistics.
    """

    def __init__(self, cfg: PatchDiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or PatchDiscriminatorConfig()
        layers: list[nn.Module] = []
        c_in, c = cfg.in_channels, cfg.channels
        for i in range(cfg.layers):
            stride = (1 if i == 0 else 2, 2, 2)
            layers.append(nn.Conv3d(c_in, c, (3, 4, 4), stride=stride, padding=1))
            if i > 0:
                layers.append(nn.GroupNorm(min(32, c // 4), c))
            layers.append(nn.LeakyReLU(0.2))
            c_in, c = c, min(c * 2, cfg.channels * 8)
        layers.append(nn.Conv3d(c_in, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    return -logits_fake.mean()
