"""Draw the synthetic world with NumPy: textured back wall, cast shadows, shaded balls and boxes.

Everything is evaluated per pixel centre in world coordinates, so camera pans and zooms move the
texture, shadows and objects consistently. Edges are anti-aliased with a one-pixel ramp, which keeps
the colour centroid of an object within a fraction of a pixel of its true (annotated) centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltx_train.data.synth_palette import PALETTES
from ltx_train.data.synth_world import Scene, camera_transform


@dataclass(frozen=True)
class Look:
    ambient: float
    diffuse: float
    specular: float
    shininess: float
    alpha: float   # glass lets the wall show through
    grain: float   # clay has a rough, blotchy surface


LOOKS = {
    "rubber": Look(0.4, 0.7, 0.15, 10.0, 1.0, 0.0),
    "metal": Look(0.35, 0.55, 0.9, 40.0, 1.0, 0.0),
    "clay": Look(0.45, 0.6, 0.0, 1.0, 1.0, 0.06),
    "glass": Look(0.45, 0.55, 1.0, 80.0, 0.85, 0.0),
}
SHADOW_DARKNESS = 0.45
LAMP_RADIUS = 0.3    # world units; the penumbra grows with object depth / light height


def value_noise(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a periodic (n, n) random grid at continuous coords (u, v)."""
    n = grid.shape[0]
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)  # smoothstep hides the lattice
    i0, j0 = iu.astype(np.int64) % n, iv.astype(np.int64) % n
    i1, j1 = (i0 + 1) % n, (j0 + 1) % n
    top = grid[j0, i0] * (1 - fu) + grid[j0, i1] * fu
    bot = grid[j1, i0] * (1 - fu) + grid[j1, i1] * fu
    return top * (1 - fv) + bot * fv


class Backdrop:
    """Procedural back-wall texture of one scene, defined over the whole plane z = 0."""

    def __init__(self, scene: Scene):
        rng = np.random.default_rng([scene.seed, 1])
        palette = PALETTES[scene.palette]
        self.kind, self.aspect = scene.background, scene.aspect
        self.tone = np.array(dict(palette.wall_tones)[scene.wall_tone], np.float32)
        self.outside_dim = palette.outside_dim  # outside the world box is darker so the walls are visible
        self.tile = rng.uniform(0.08, 0.16)
        self.angle = rng.uniform(0, np.pi)
        self.contrast = rng.uniform(0.08, 0.14) * palette.contrast
        self.grid = rng.uniform(-1, 1, size=(16, 16)).astype(np.float32)
        self.noise_freq = rng.uniform(6, 12)

    def __call__(self, xw: np.ndarray, yw: np.ndarray) -> np.ndarray:
        """xw (W,), yw (H,) world coords of pixel centres -> (H, W, 3) float32 RGB in [0, 1]."""
        u, v = np.meshgrid(xw.astype(np.float32), yw.astype(np.float32))
        t = self.tile
        if self.kind == "checkered tiles":
            pat = ((np.floor(u / t) + np.floor(v / t)) % 2) * 2 - 1
        elif self.kind == "stripes":
            pat = np.sin(2 * np.pi * (u * np.cos(self.angle) + v * np.sin(self.angle)) / t)
        elif self.kind == "polka dots":
            du, dv = u / t - np.round(u / t), v / t - np.round(v / t)
            pat = np.clip((0.3 - np.hypot(du, dv)) * 12, -1, 1)
        elif self.kind == "bricks":
            row = np.floor(v / (0.5 * t))
            du = (u / t + 0.5 * (row % 2)) % 1.0
            dv = (v / (0.5 * t)) % 1.0
            mortar = np.minimum(np.minimum(du, 1 - du) * 2, np.minimum(dv, 1 - dv)) < 0.08
            pat = np.where(mortar, 1.0, -0.4)
        else:  # marble: warped veins
            warp = value_noise(self.grid, u * self.noise_freq / 2, v * self.noise_freq / 2)
            pat = np.sin((u + v) / t + 3 * warp)
        shade = 1 + self.contrast * pat + 0.05 * value_noise(self.grid, u * self.noise_freq, v * self.noise_freq)
        inside = (u >= 0) & (u <= self.aspect) & (v >= 0) & (v <= 1)
        shade = np.where(inside, shade, self.outside_dim * shade)
        return np.clip(shade[..., None] * self.tone, 0, 1).astype(np.float32)


def _ramp(signed_dist: np.ndarray, soft: float) -> np.ndarray:
    """Coverage in [0, 1] of a shape given a signed distance (pixels, positive inside)."""
    return np.clip(signed_dist / soft + 0.5, 0.0, 1.0)


def _coverage(shape: str, dx: np.ndarray, dy: np.ndarray, r: float, soft: float) -> np.ndarray:
    if shape == "ball":
        return _ramp(r - np.hypot(dx, dy), soft)
    return _ramp(r - np.abs(dx), soft) * _ramp(r - np.abs(dy), soft)


def _patch(cx: float, cy: float, extent: float, h: int, w: int):
    """Pixel window around (cx, cy) and the offsets (dx (1, w'), dy (h', 1)) of its pixel centres."""
    x0, x1 = max(int(np.floor(cx - extent)), 0), min(int(np.ceil(cx + extent)) + 1, w)
    y0, y1 = max(int(np.floor(cy - extent)), 0), min(int(np.ceil(cy + extent)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None]
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    return (slice(y0, y1), slice(x0, x1)), dx, dy


def _shaded_colour(obj, look: Look, nx, ny, nz, light_dir, grain, tint: np.ndarray) -> np.ndarray:
    """Blinn-Phong: base colour * (ambient + diffuse * Lambert) plus a white highlight.

    A flat box face has one normal, so a full-strength highlight would wash the whole face out to
    white (and hide its colour from a tracker); faces get a quarter of it.
    """
    lam = np.clip(nx * light_dir[0] + ny * light_dir[1] + nz * light_dir[2], 0, None)
    half = light_dir + np.array([0.0, 0.0, 1.0])
    half = half / np.linalg.norm(half)
    spec = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0, None) ** look.shininess
    base = np.array(obj.color, np.float32) / 255.0 * tint  # the light's colour (white by default)
    shade = (look.ambient + look.diffuse * lam) * (1 + grain)
    strength = look.specular * (1.0 if obj.shape == "ball" else 0.25)
    return shade[..., None] * base + (strength * spec)[..., None]


def render_frames(scene: Scene, times: np.ndarray, pos: np.ndarray, width: int, height: int) -> np.ndarray:
    """times (T,), world positions pos (T, N, 2) -> frames (T, H, W, 3) uint8."""
    backdrop = Backdrop(scene)
    tint = np.array(PALETTES[scene.palette].object_tint, np.float32)
    centre, zoom = camera_transform(scene, times)
    px_per_unit = height * zoom                      # (T,) pixels per world unit
    cols = np.arange(width, dtype=np.float64) + 0.5
    rows = np.arange(height, dtype=np.float64) + 0.5
    light = scene.light
    static_bg = backdrop((cols - width / 2) / height + centre[0, 0], (rows - height / 2) / height + 0.5) \
        if scene.camera == "static" else None
    grain_rng = np.random.default_rng([scene.seed, 4])
    grains = [grain_rng.uniform(-1, 1, size=(8, 8)).astype(np.float32) for _ in scene.objects]
    out = np.empty((len(times), height, width, 3), np.uint8)
    for f in range(len(times)):
        s = px_per_unit[f]
        to_px = lambda wx, wy: ((wx - centre[f, 0]) * s + width / 2, (wy - centre[f, 1]) * s + height / 2)  # noqa: E731
        frame = static_bg.copy() if static_bg is not None else backdrop(
            (cols - width / 2) / s + centre[f, 0], (rows - height / 2) / s + centre[f, 1])
        # shadows: project each object from the point light onto the back wall z = 0
        for obj, p in zip(scene.objects, pos[f]):
            k = light[2] / (light[2] - obj.depth)
            sx, sy = to_px(light[0] + (p[0] - light[0]) * k, light[1] + (p[1] - light[1]) * k)
            r, soft = obj.size * k * s, max(1.0, (0.01 + LAMP_RADIUS * (k - 1)) * s)
            win = _patch(sx, sy, r + soft, height, width)
            if win is not None:
                idx, dx, dy = win
                frame[idx] *= (1 - SHADOW_DARKNESS * _coverage(obj.shape, dx, dy, r, soft))[..., None]
        for i, (obj, p) in enumerate(zip(scene.objects, pos[f])):
            look = LOOKS[obj.material]
            cx, cy = to_px(p[0], p[1])
            r = obj.size * s
            win = _patch(cx, cy, r + 1, height, width)
            if win is None:
                continue
            idx, dx, dy = win
            dx, dy = np.broadcast_arrays(dx, dy)  # (h', w') each
            cov = _coverage(obj.shape, dx, dy, r, 1.0) * look.alpha
            to_light = light - np.array([p[0], p[1], obj.depth])
            ldir = to_light / np.linalg.norm(to_light)
            if obj.shape == "ball":
                nx, ny = dx / r, dy / r
                nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0, 1))
            else:  # flat front face whose outer 20% bevels outwards
                bx = np.clip((np.abs(dx) / r - 0.8) / 0.2, 0, 1) * np.sign(dx) * 0.7
                by = np.clip((np.abs(dy) / r - 0.8) / 0.2, 0, 1) * np.sign(dy) * 0.7
                norm = np.sqrt(bx * bx + by * by + 1)
                nx, ny, nz = bx / norm, by / norm, 1 / norm
            grain = look.grain * value_noise(grains[i], dx / r * 3, dy / r * 3)
            colour = _shaded_colour(obj, look, nx, ny, nz, ldir, grain, tint)
            frame[idx] += cov[..., None] * (colour - frame[idx])
        out[f] = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)
    return out
