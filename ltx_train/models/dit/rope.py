"""Rotary position embedding over several axes, with time measured in seconds.

Every token carries a position vector ``pos (..., A)`` (A axes, e.g. t, h, w). Each axis owns a slice
of the head dimension; the angle of rotary pair i on axis a is ``pos[a] * theta_a ** (-2i / dim_a)``
(the flux / LTX-Video multi-axis RoPE). Attention logits then depend on position *differences*
only, so what matters is that "the same instant" gives the same temporal coordinate for every
modality. That is why the time axis is seconds (from ``ltx_train.timing``) times
``time_scale`` rather than a per-modality index: a video latent at 0.5 s and an audio latent at
0.5 s get identical temporal rotations although their indices differ.

Conventions used by the DiT (see ``JointDiT.positions``):
- video token: (t_seconds * time_scale, h, w) with h, w the patch-grid indices;
- audio token: (t_seconds * time_scale, 0, 0): no spatial position (angle 0 = no spatial rotation);
- text token:  (0, 0, 0): angle 0 on every axis is the identity rotation, i.e. text is not rotated.
"""
from __future__ import annotations

import torch


def default_axes_dim(head_dim: int, num_axes: int = 3) -> tuple[int, ...]:
    """Split ``head_dim`` over axes: half to time (axis 0), the rest evenly; every part even."""
    if head_dim % 2 or head_dim < 2 * num_axes:
        raise ValueError(f"head_dim={head_dim} must be even and >= {2 * num_axes} for {num_axes}-axis RoPE")
    if num_axes == 1:
        return (head_dim,)
    pairs = head_dim // 2
    t_pairs = pairs // 2
    rest = pairs - t_pairs
    others = [rest // (num_axes - 1)] * (num_axes - 1)
    others[0] += rest - sum(others)
    return tuple(2 * p for p in (t_pairs, *others))


def rope_frequencies(dim: int, theta: float) -> torch.Tensor:
    """(dim // 2,) angular frequency of each rotary pair on one axis, float64."""
    return theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def rope_angles(pos: torch.Tensor, axes_dim: tuple[int, ...], theta: float = 10000.0) -> torch.Tensor:
    """pos (..., A) -> angles (..., sum(axes_dim) // 2), float32.

    Angles are computed in float64 so that large time positions keep sub-radian precision.
    """
    if pos.shape[-1] != len(axes_dim):
        raise ValueError(f"pos has {pos.shape[-1]} axes, axes_dim has {len(axes_dim)}")
    parts = []
    for a, dim in enumerate(axes_dim):
        freqs = rope_frequencies(dim, theta).to(pos.device)
        parts.append(pos[..., a : a + 1].double() * freqs)
    return torch.cat(parts, dim=-1).float()


def rope_cos_sin(pos: torch.Tensor, axes_dim: tuple[int, ...],
                 theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """pos (B, N, A) -> (cos, sin), each (B, 1, N, head_dim // 2), ready to broadcast over heads."""
    angles = rope_angles(pos, axes_dim, theta).unsqueeze(1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of x (B, H, N, D) by the given angles (B, 1, N, D/2).

    Done in float32 (bf16 rotations of long sequences drift); returns x's dtype.
    """
    xf = x.float().unflatten(-1, (-1, 2))
    x1, x2 = xf[..., 0], xf[..., 1]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)
