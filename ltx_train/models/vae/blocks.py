"""Building blocks of the video VAE: norms, residual block, space-to-depth down / depth-to-space up.

Every block keeps the causal time layout ``1 + st*k`` frames <-> ``1 + k`` frames: downsampling
prepends ``st - 1`` copies of frame 0 before folding time into channels, so frame 0 forms a group on
its own and group j >= 1 holds frames ``(j-1)*st + 1 .. j*st``; upsampling unfolds and drops those
``st - 1`` leading frames again.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .causal_conv import CausalConv3d


class PixelNorm(nn.Module):
    """RMS norm over channels at each (t, h, w) with a per-channel gain.

    Purely local, so it is causal in time and tiles without seams (a statistic over H, W, like
    GroupNorm's, would differ between a tile and the whole frame).
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        x = x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)
        return x * self.weight.view(1, -1, 1, 1, 1)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per frame (time folded into batch) so it stays causal."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        b = x.shape[0]
        y = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", b=b)


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "pixel":
        return PixelNorm(channels)
    if kind == "group":
        return FrameGroupNorm(math.gcd(32, channels), channels, eps=1e-6)
    raise ValueError(f"unknown norm {kind!r}; use 'pixel' or 'group'")


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, :, None, None, None]) + shift[:, :, None, None, None]


class ResBlock3d(nn.Module):
    """norm-SiLU-conv twice plus a skip; with ``temb_dim`` the norms are modulated (adaLN style).

    The modulation projection is zero-initialised so a timestep-conditioned decoder starts out
    identical to an unconditioned one.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str = "pixel", causal: bool = True,
                 temb_dim: int = 0):
        super().__init__()
        self.norm1 = make_norm(norm, in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, causal=causal)
        self.norm2 = make_norm(norm, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, causal=causal)
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.mod = None
        if temb_dim:
            self.mod = nn.Linear(temb_dim, 2 * in_channels + 2 * out_channels)
            nn.init.zeros_(self.mod.weight)
            nn.init.zeros_(self.mod.bias)
        self.splits = (in_channels, in_channels, out_channels, out_channels)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        if self.mod is not None and temb is not None:
            shift1, scale1, shift2, scale2 = self.mod(temb).split(self.splits, dim=1)
            h = _modulate(h, shift1, scale1)
        h = self.conv1(F.silu(h))
        h = self.norm2(h)
        if self.mod is not None and temb is not None:
            h = _modulate(h, shift2, scale2)
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


def space_to_depth(x: torch.Tensor, st: int, ss: int) -> torch.Tensor:
    return rearrange(x, "b c (t pt) (h ph) (w pw) -> b (c pt ph pw) t h w", pt=st, ph=ss, pw=ss)


def depth_to_space(x: torch.Tensor, st: int, ss: int) -> torch.Tensor:
    return rearrange(x, "b (c pt ph pw) t h w -> b c (t pt) (h ph) (w pw)", pt=st, ph=ss, pw=ss)


class Downsample(nn.Module):
    """(B, C_in, 1 + st*k, H, W) -> (B, C_out, 1 + k, H/ss, W/ss).

    A causal conv to C_out / (st*ss*ss) channels followed by space-to-depth, plus a parameter-free
    shortcut (space-to-depth of the input, channel groups averaged) so gradients reach the shallow
    layers directly — the same trick LTX-Video uses.
    """

    def __init__(self, in_channels: int, out_channels: int, st: int, ss: int, causal: bool = True):
        super().__init__()
        self.st, self.ss = st, ss
        r = st * ss * ss
        if out_channels % r:
            raise ValueError(f"Downsample: out_channels={out_channels} must be divisible by {r}")
        self.conv = CausalConv3d(in_channels, out_channels // r, 3, causal=causal)
        self.groups = in_channels * r // out_channels if (in_channels * r) % out_channels == 0 else 0
        self.proj = None if self.groups else nn.Conv3d(in_channels * r, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.st > 1:  # frame 0 becomes a group of its own
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.st - 1, -1, -1), x], dim=2)
        h = space_to_depth(self.conv(x), self.st, self.ss)
        s = space_to_depth(x, self.st, self.ss)
        if self.proj is not None:
            s = self.proj(s)
        else:
            s = s.unflatten(1, (-1, self.groups)).mean(2)
        return h + s


class Upsample(nn.Module):
    """(B, C_in, 1 + k, h, w) -> (B, C_out, 1 + st*k, h*ss, w*ss); mirror of ``Downsample``."""

    def __init__(self, in_channels: int, out_channels: int, st: int, ss: int, causal: bool = False):
        super().__init__()
        self.st, self.ss = st, ss
        r = st * ss * ss
        self.conv = CausalConv3d(in_channels, out_channels * r, 3, causal=causal)
        self.repeats = out_channels * r // in_channels if (out_channels * r) % in_channels == 0 else 0
        self.proj = None if self.repeats else nn.Conv3d(in_channels, out_channels * r, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the shortcut is added before depth-to-space (which is a permutation, so the sum is the same to
        # the bit); the channel-repeating one by broadcasting: no repeated copy of x is ever built
        h = self.conv(x)
        if self.proj is not None:
            h = h + self.proj(x)
        else:
            b, c, t, hh, ww = x.shape
            h = h.view(b, c, self.repeats, t, hh, ww).add_(x.unsqueeze(2)).view(b, -1, t, hh, ww)
        return depth_to_space(h, self.st, self.ss)[:, :, self.st - 1:]
