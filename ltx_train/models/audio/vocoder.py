"""HiFi-GAN generator (Kong et al. 2020): log-mel -> waveform.

conv_pre -> [leaky ReLU -> transposed conv (x rate) -> multi-receptive-field fusion] per rate ->
leaky ReLU -> conv_post -> tanh. The product of ``upsample_rates`` must equal the mel hop (250 =
5*5*5*2 at 24 kHz), so F mel frames become exactly F * hop samples and sample ``m*hop`` lines up
with mel frame m, the time axis of ``ltx_train.timing``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

LRELU_SLOPE = 0.1


@dataclass
class HiFiGANConfig:
    n_mels: int = 64
    upsample_rates: tuple[int, ...] = (5, 5, 5, 2)
    # kernel = 2 * rate (+1 for odd rates) keeps (kernel - rate) even, so padding makes length x rate exact
    upsample_kernel_sizes: tuple[int, ...] = (11, 11, 11, 4)
    upsample_initial_channel: int = 512  # halved after every upsampling
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_rates)

    def __post_init__(self):
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        for r, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if k < r or (k - r) % 2:
                raise ValueError(f"upsample kernel {k} for rate {r}: need kernel >= rate and "
                                 "(kernel - rate) even so the output is exactly rate x longer")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilations):
            raise ValueError("resblock_kernel_sizes and resblock_dilations must have the same length")


def _wn(conv: nn.Module) -> nn.Module:
    """HiFi-GAN's N(0, 0.01) init (quiet outputs at the start), then weight norm on top of it."""
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return weight_norm(conv)


class ResBlock(nn.Module):
    """Pairs of (dilated conv, plain conv) with residuals; one receptive field of the MRF."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.dilated = nn.ModuleList(
            _wn(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2))
            for d in dilations)
        self.plain = nn.ModuleList(
            _wn(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.dilated, self.plain):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HiFiGAN(nn.Module):
    """log-mel (B, n_mels, F) -> waveform (B, F * hop) in [-1, 1]."""

    def __init__(self, cfg: HiFiGANConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HiFiGANConfig()
        ch = cfg.upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(cfg.n_mels, ch, 7, padding=3))
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        for rate, kernel in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
            self.ups.append(_wn(nn.ConvTranspose1d(ch, ch // 2, kernel, rate, padding=(kernel - rate) // 2)))
            ch //= 2
            self.mrfs.append(nn.ModuleList(ResBlock(ch, k, d)
                                           for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilations)))
        self.conv_post = _wn(nn.Conv1d(ch, 1, 7, padding=3))

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for up, mrf in zip(self.ups, self.mrfs):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = sum(block(x) for block in mrf) / len(mrf)
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as in the reference
        return torch.tanh(x).squeeze(1)
