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
    """RMS norm over channels at each (t, h, w) with a per-channel gain, and an optional adaLN
    modulation ``* (1 + scale) + shift`` (per sample and channel) folded into the gain.

    Purely local, so it is causal in time and tiles without seams (a statistic over H, W, like
    GroupNorm's, would differ between a tile and the whole frame). The statistic is computed in fp32
    in one reduction and the output keeps x's dtype: under bf16 autocast a plain ``x.pow(2)`` runs in
    fp32 and carried the whole activation, and the SiLU and padding after it, in fp32.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None,
                scale: torch.Tensor | None = None) -> torch.Tensor:  # (B, C, T, H, W); shift, scale (B, C)
        sq = torch.linalg.vector_norm(x, dim=1, keepdim=True, dtype=torch.float32).square()
        inv = torch.rsqrt(sq / x.shape[1] + self.eps).to(x.dtype)
        gain = self.weight.to(x.dtype)[None, :]
        if scale is not None:
            gain = gain * (1 + scale.to(x.dtype))
        gain = gain[:, :, None, None, None]
        if shift is None:
            return x * inv * gain
        return torch.addcmul(shift.to(x.dtype)[:, :, None, None, None], x * inv, gain)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm with statistics per frame (time folded into batch) so it stays causal; an optional
    adaLN modulation ``* (1 + scale) + shift`` applied after it (not folded: GroupNorm's kernel takes no
    per-sample affine)."""

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None,
                scale: torch.Tensor | None = None) -> torch.Tensor:  # (B, C, T, H, W)
        b = x.shape[0]
        y = rearrange(super().forward(rearrange(x, "b c t h w -> (b t) c h w")), "(b t) c h w -> b c t h w", b=b)
        if scale is not None:
            y = y * (1 + scale[:, :, None, None, None])
        return y if shift is None else y + shift[:, :, None, None, None]


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "pixel":
        return PixelNorm(channels)
    if kind == "group":
        return FrameGroupNorm(math.gcd(32, channels), channels, eps=1e-6)
    raise ValueError(f"unknown norm {kind!r}; use 'pixel' or 'group'")


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
        shift1 = scale1 = shift2 = scale2 = None
        if self.mod is not None and temb is not None:
            shift1, scale1, shift2, scale2 = self.mod(temb).split(self.splits, dim=1)
        h = self.conv1(F.silu(self.norm1(x, shift1, scale1)))
        h = self.conv2(F.silu(self.norm2(h, shift2, scale2)))
        return self.skip(x) + h


def block_linear(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """``conv(x)`` for a Conv3d whose stride equals its kernel (no padding), as one matmul.

    Each output voxel is a linear map of its own input block, so the block is folded into channels
    and multiplied by the flattened weight. Same parameters and result as the conv (float rounding
    aside); cuDNN has no fast kernel for such large kernels (8 x 32 x 32 in ``vae/ltx``) and its
    autotuner spends minutes on each new shape.
    """
    kt, kh, kw = conv.kernel_size
    blocks = rearrange(x, "b c (t pt) (h ph) (w pw) -> b t h w (c pt ph pw)", pt=kt, ph=kh, pw=kw)
    return F.linear(blocks, conv.weight.flatten(1), conv.bias).permute(0, 4, 1, 2, 3)


def block_linear_transpose(z: torch.Tensor, conv: nn.ConvTranspose3d) -> torch.Tensor:
    """``conv(z)`` for a ConvTranspose3d whose stride equals its kernel, as one matmul (see ``block_linear``)."""
    kt, kh, kw = conv.kernel_size
    y = torch.matmul(z.movedim(1, -1), conv.weight.flatten(1))  # (b, t, h, w, out * kt * kh * kw)
    y = rearrange(y, "b t h w (c pt ph pw) -> b c (t pt) (h ph) (w pw)", pt=kt, ph=kh, pw=kw)
    return y if conv.bias is None else y + conv.bias.view(1, -1, 1, 1, 1).to(y.dtype)


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
