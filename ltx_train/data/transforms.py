"""Resize (shorter side) + crop of decoded frames, and the same geometry applied to screen-space labels.

Annotations are in normalised screen coordinates of the *source* frame (x right, y down, [0, 1]).
A crop changes what "the frame" is, so every position, velocity and direction is mapped through
the same scale and offset as the pixels; otherwise a random crop would silently shift the labels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropGeometry:
    """Scale a (src_h, src_w) frame to (scaled_h, scaled_w), then cut (out_h, out_w) at (top, left)."""

    src_h: int
    src_w: int
    scaled_h: int
    scaled_w: int
    top: int
    left: int
    out_h: int
    out_w: int

    def points(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) normalised source positions -> normalised output positions (may leave [0, 1])."""
        xy = np.asarray(xy, dtype=np.float64)
        x = (xy[..., 0] * self.scaled_w - self.left) / self.out_w
        y = (xy[..., 1] * self.scaled_h - self.top) / self.out_h
        return np.stack([x, y], axis=-1).astype(np.float32)

    def vectors(self, v: np.ndarray) -> np.ndarray:
        """(..., 2) displacements/velocities in source screen units -> output screen units."""
        v = np.asarray(v, dtype=np.float64)
        scale = np.array([self.scaled_w / self.out_w, self.scaled_h / self.out_h])
        return (v * scale).astype(np.float32)

    def direction(self, d: np.ndarray) -> np.ndarray:
        """(2,) unit direction -> unit direction in the output frame (unchanged for isotropic crops)."""
        v = self.vectors(d).astype(np.float64)
        n = float(np.linalg.norm(v))
        return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)


def plan_resize_crop(src_h: int, src_w: int, out_h: int, out_w: int,
                     rng: np.random.Generator | None = None) -> CropGeometry:
    """Scale so the frame just covers (out_h, out_w) (shorter side fits), then crop.

    ``rng`` None gives the centre crop (validation); otherwise a uniformly random offset (training).
    """
    scale = max(out_h / src_h, out_w / src_w)
    # ceil with a tolerance so float noise never leaves a side one pixel short of the crop
    sh = max(out_h, math.ceil(src_h * scale - 1e-6))
    sw = max(out_w, math.ceil(src_w * scale - 1e-6))
    if rng is None:
        top, left = (sh - out_h) // 2, (sw - out_w) // 2
    else:
        top = int(rng.integers(0, sh - out_h + 1))
        left = int(rng.integers(0, sw - out_w + 1))
    return CropGeometry(src_h, src_w, sh, sw, top, left, out_h, out_w)


def frames_to_clip(frames: np.ndarray, geom: CropGeometry) -> torch.Tensor:
    """frames: (T, h, w, 3) uint8 -> video (3, T, out_h, out_w) float32 in [-1, 1]."""
    crop = (slice(None), slice(geom.top, geom.top + geom.out_h), slice(geom.left, geom.left + geom.out_w))
    if (geom.scaled_h, geom.scaled_w) == (geom.src_h, geom.src_w):
        # crop, then one transposing copy of uint8 and one conversion: the cheapest order for big clips
        x = torch.from_numpy(np.ascontiguousarray(frames[crop].transpose(3, 0, 1, 2))).float()
        return x.div_(127.5).sub_(1.0)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (T, 3, h, w)
    # antialias so downscaling a large user clip does not alias fine texture into the crop
    x = F.interpolate(x, size=(geom.scaled_h, geom.scaled_w), mode="bilinear", antialias=True,
                      align_corners=False).clamp_(0.0, 255.0)
    x = x[:, :, crop[1], crop[2]].div_(127.5).sub_(1.0)
    return x.permute(1, 0, 2, 3).contiguous()  # (3, T, H, W)
