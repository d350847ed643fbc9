"""HiFi-GAN discriminators and GAN losses.

Multi-period (MPD): the waveform folded into (S/p, p) images for periods 2, 3, 5, 7, 11, so each
sub-discriminator sees one phase of a periodic structure (pitch, harmonics). Multi-scale (MSD): the
raw waveform and two average-pooled copies, for structure over longer spans. Every discriminator
returns its logits and its feature maps (for feature matching).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from ltx_train.models.audio.vocoder import LRELU_SLOPE

Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]  # per discriminator: logits, feature maps


@dataclass
class DiscriminatorConfig:
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (32, 128, 512, 1024, 1024)
    num_scales: int = 3
    # kernel 15 first, 5 last, 41 between (HiFi-GAN's DiscriminatorS)
    msd_channels: tuple[int, ...] = (128, 128, 256, 512, 1024, 1024, 1024)
    msd_strides: tuple[int, ...] = (1, 2, 2, 4, 4, 1, 1)
    # grouped convs keep the wide MSD layers cheap; each group count must divide both sides
    msd_groups: tuple[int, ...] = (1, 4, 16, 16, 16, 16, 1)

    def __post_init__(self):
        if not len(self.msd_groups) == len(self.msd_strides) == len(self.msd_channels):
            raise ValueError("msd_groups and msd_strides need one entry per msd_channels entry")
        ins = (1,) + tuple(self.msd_channels[:-1])
        for i, (cin, cout, g) in enumerate(zip(ins, self.msd_channels, self.msd_groups)):
            if cin % g or cout % g:
                raise ValueError(f"msd layer {i}: groups={g} must divide channels {cin} -> {cout}")


class PeriodDiscriminator(nn.Module):
    """(B, 1, S) -> folded (B, 1, S/p, p) -> 2D convs striding along S/p only."""

    def __init__(self, period: int, channels: tuple[int, ...]):
        super().__init__()
        self.period = period
        layers, cin = [], 1
        for i, cout in enumerate(channels):
            stride = 1 if i == len(channels) - 1 else 3
            layers.append(weight_norm(nn.Conv2d(cin, cout, (5, 1), (stride, 1), padding=(2, 0))))
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv2d(cin, 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, s = x.shape
        if s % self.period:
            x = F.pad(x, (0, self.period - s % self.period), mode="reflect")
        x = x.view(b, c, -1, self.period)
        return _conv_stack(self.convs, self.conv_post, x)


def _conv_stack(convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Leaky-ReLU conv stack -> (flattened logits, every layer's output for feature matching)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        feats.append(x)
    x = conv_post(x)
    feats.append(x)
    return x.flatten(1), feats


class ScaleDiscriminator(nn.Module):
    """(B, 1, S) -> strided grouped 1D convs; spectral norm on the raw-scale one, as in HiFi-GAN."""

    def __init__(self, cfg: DiscriminatorConfig, use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        n = len(cfg.msd_channels)
        layers, cin = [], 1
        for i, (cout, stride, g) in enumerate(zip(cfg.msd_channels, cfg.msd_strides, cfg.msd_groups)):
            kernel = 15 if i == 0 else 5 if i == n - 1 else 41
            layers.append(norm(nn.Conv1d(cin, cout, kernel, stride, groups=g, padding=kernel // 2)))
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.conv_post = norm(nn.Conv1d(cin, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.conv_post, x)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.discs = nn.ModuleList(PeriodDiscriminator(p, cfg.mpd_channels) for p in cfg.periods)

    def forward(self, wav: torch.Tensor) -> Outputs:
        outs = [d(wav) for d in self.discs]
        return [o[0] for o in outs], [o[1] for o in outs]


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.discs = nn.ModuleList(
            ScaleDiscriminator(cfg, use_spectral_norm=(i == 0))
            for i in range(cfg.num_scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: torch.Tensor) -> Outputs:
        logits, feats = [], []
        for i, d in enumerate(self.discs):
            if i > 0:
                wav = self.pool(wav)
            out = d(wav)
            logits.append(out[0])
            feats.append(out[1])
        return logits, feats


class Discriminators(nn.Module):
    """MPD + MSD as one module: waveform (B, S) -> (logits, feature maps) of every sub-discriminator."""

    def __init__(self, cfg: DiscriminatorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DiscriminatorConfig()
        self.mpd = MultiPeriodDiscriminator(cfg)
        self.msd = MultiScaleDiscriminator(cfg)

    def forward(self, wav: torch.Tensor) -> Outputs:
        x = wav.unsqueeze(1)
        l1, f1 = self.mpd(x)
        l2, f2 = self.msd(x)
        return l1 + l2, f1 + f2


# LSGAN losses, per clip (B,) so clips without audio can be masked out before averaging.
def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """sum_D mean (1 - D(real))^2 + mean D(fake)^2 -> (B,)."""
    return sum(((1 - r).pow(2).mean(1) + f.pow(2).mean(1)) for r, f in zip(real_logits, fake_logits))


def generator_adversarial_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """sum_D mean (1 - D(fake))^2 -> (B,)."""
    return sum((1 - f).pow(2).mean(1) for f in fake_logits)


def feature_matching_loss(real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    """sum over discriminators and layers of mean |f_real - f_fake| -> (B,); real features are targets."""
    return sum((r.detach() - f).abs().flatten(1).mean(1)
               for rs, fs in zip(real_feats, fake_feats) for r, f in zip(rs, fs))
