"""3D convolution that pads time by replicating the first (and, non-causally, last) frame.

Causal mode pads ``kt - 1`` copies of frame 0 on the past side only, so output frame t depends on
input frames <= t: the encoder built from it never looks ahead, and a clip's first frame is treated
exactly like a still image. Non-causal mode (used by the decoder, which may look ahead) pads
``(kt - 1) / 2`` replicated frames on each side. Space is zero-padded symmetrically.
"""
from __future__ import annotations

import torch
from torch import nn


def _triple(k: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (k, k, k) if isinstance(k, int) else tuple(k)


class CausalConv3d(nn.Module):
    """x: (B, C_in, T, H, W) -> (B, C_out, T', H', W'); T' = T for stride 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int] = 3,
                 stride: int | tuple[int, int, int] = 1, causal: bool = True, bias: bool = True):
        super().__init__()
        kt, kh, kw = _triple(kernel_size)
        if kt % 2 == 0 and not causal:
            raise ValueError("non-causal CausalConv3d needs an odd temporal kernel")
        self.kt, self.causal = kt, causal
        self.conv = nn.Conv3d(in_channels, out_channels, (kt, kh, kw), stride=_triple(stride),
                              padding=(0, kh // 2, kw // 2), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kt > 1:
            if self.causal:
                x = torch.cat([x[:, :, :1].expand(-1, -1, self.kt - 1, -1, -1), x], dim=2)
            else:
                p = (self.kt - 1) // 2
                x = torch.cat([x[:, :, :1].expand(-1, -1, p, -1, -1), x,
                               x[:, :, -1:].expand(-1, -1, p, -1, -1)], dim=2)
        return self.conv(x)
