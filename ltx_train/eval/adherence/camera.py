"""Camera layer: robust background registration (pan and zoom), the modelled wall behind the objects."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ltx_train.eval.adherence.config import AdherenceConfig
from ltx_train.eval.look import grey, outside_band_growth
from ltx_train.eval.look import object_pixels as saturated_pixels
from ltx_train.eval.physics import chromaticity


@dataclass
class CameraEstimate:
    """Background motion from frame 0 to frame t: a pixel at x in frame 0 is at
    centre + zoom[t] * (x - centre) + shift[t] in frame t (x right, y down, pixels)."""
    zoom: np.ndarray                 # (T,)
    shift: np.ndarray                # (T, 2)
    height: int
    width: int
    edge_growth: tuple[float, float] | None = None   # left / right outside band, px/frame (look.outside_band_growth)

    @property
    def total_log_zoom(self) -> float:
        return float(np.log(self.zoom[-1]))

    @property
    def total_pan(self) -> float:
        """Horizontal shift of the background over the clip, frame heights (+ = the scene moves right)."""
        return float(self.shift[-1, 0] / self.height)

    def motion(self, cfg: AdherenceConfig) -> str:
        """The room's edges first: a pan uncovers the outside of the box on one side only, a zoom out on
        both, so a band that grows on one side alone is a pan whatever the wall does (a generated wall can
        carry a grain that stays put while the edge enters, which registers as a zoom or a still camera).
        Then the registration, zoom first: a zoom about the centre shifts nothing on average, while a pan
        changes no scale."""
        if self.edge_growth is not None:   # px/frame -> frame heights over the clip
            left, right = (g * (len(self.zoom) - 1) / self.height for g in self.edge_growth)
            if max(left, right) >= cfg.pan and min(left, right) < cfg.pan / 2:
                return "pan_left" if left > right else "pan_right"
        if abs(self.total_log_zoom) >= cfg.zoom:
            return "zoom_in" if self.total_log_zoom > 0 else "zoom_out"
        if abs(self.total_pan) >= cfg.pan:
            return "pan_left" if self.total_pan > 0 else "pan_right"  # the scene moving right = camera going left
        return "static"

    def to_frame0(self, t: int, x: float, y: float) -> tuple[float, float]:
        """Frame-t pixel position -> where that point of the back wall is in frame 0."""
        cx, cy = self.width / 2, self.height / 2
        return (cx + (x - cx - self.shift[t, 0]) / self.zoom[t], cy + (y - cy - self.shift[t, 1]) / self.zoom[t])


def _tukey_weights(r: np.ndarray) -> np.ndarray:
    u = r / (4.685 * (1.4826 * np.median(np.abs(r)) + 1e-3))
    return np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)


def _tukey_step(A: np.ndarray, y: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Robust least squares ``A d = y``: Tukey-biweight IRLS (scale from the median residual), with a
    small ridge so that a direction the wall does not constrain (along stripes) stays put. The first
    weights come from the residual at d = 0, i.e. at the current estimate: started from plain least
    squares instead, the moving shadows of a static shot can pull the first answer far enough off
    that the wall itself looks like the outlier."""
    weight = _tukey_weights(y)
    d = np.zeros(A.shape[1])
    for _ in range(iterations):
        Aw = A * np.sqrt(weight)[:, None]
        M = Aw.T @ Aw
        d = np.linalg.solve(M + 1e-3 * np.trace(M) / len(M) * np.eye(len(M)) + 1e-12 * np.eye(len(M)),
                            Aw.T @ (y * np.sqrt(weight)))
        weight = _tukey_weights(y - A @ d)
    return d


def register_background(ref: np.ndarray, ref_wall: np.ndarray, cur: np.ndarray, cur_objects: np.ndarray,
                        guess: np.ndarray, sigmas: tuple[float, ...] = (1.5, 0.8), iterations: int = 3) -> np.ndarray:
    """(tx, ty, ln zoom) such that grey frame ``cur`` at centre + zoom (x - centre) + t shows the wall
    that grey frame ``ref`` shows at x.

    Gauss-Newton on the wall pixels of ``ref`` (``ref_wall``) whose image in ``cur`` is inside the
    frame and not an object, coarse (blur 1.5 px) then fine (0.8 px), from ``guess``; steps are
    capped at a pixel so a periodic wall cannot throw the estimate a period away. Registering every
    frame to the first one, rather than chaining neighbours, matters for sharp patterns: a tile edge
    sampled at pixel centres moves in whole-pixel jumps, invisible between most neighbouring frames."""
    h, w = ref.shape
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    xc, yc = xx - w / 2, yy - h / 2
    p = np.array(guess, dtype=np.float64)
    for sigma in sigmas:
        gr, gc = ndimage.gaussian_filter(ref, sigma), ndimage.gaussian_filter(cur, sigma)
        gy, gx = np.gradient(gc)
        for _ in range(iterations):
            z = np.exp(p[2])
            X, Y = w / 2 + z * xc + p[0], h / 2 + z * yc + p[1]
            where = [Y - 0.5, X - 0.5]
            sample = lambda img: ndimage.map_coordinates(img, where, order=1, mode="nearest")  # noqa: E731
            use = (ref_wall & (X > 2) & (X < w - 2) & (Y > 2) & (Y < h - 2)
                   & (sample(cur_objects.astype(np.float64)) < 0.01))
            if use.sum() < 50:
                return p
            sx, sy = sample(gx), sample(gy)
            A = np.stack([sx, sy, (sx * xc + sy * yc) * z], -1)[use]
            d = _tukey_step(A, (gr - sample(gc))[use])
            p += d * min(1.0, 1.0 / max(abs(d[0]), abs(d[1]), abs(d[2]) * max(h, w) / 2, 1e-12))
    return p


def estimate_camera(frames: np.ndarray) -> CameraEstimate:
    """Register every frame's background to frame 0 (``register_background``), each from the previous
    frame's answer. Objects (saturated pixels, grown by 2 px over their rims) are left out; their
    shadows, which move with them, lose their say through the robust weights."""
    T, H, W, _ = frames.shape
    greys = [grey(f) for f in frames]
    objects = [ndimage.binary_dilation(saturated_pixels(f), iterations=2) for f in frames]
    params = np.zeros((T, 3))
    for t in range(1, T):
        params[t] = register_background(greys[0], ~objects[0], greys[t], objects[t], params[t - 1])
    return CameraEstimate(np.exp(params[:, 2]), params[:, :2], H, W, outside_band_growth(frames))


def background_model(frames: np.ndarray, camera: CameraEstimate, pad: float = 0.5) -> np.ndarray:
    """(T, H, W, 3) float: the back wall each frame would show with no objects in it.

    The wall is static or moves rigidly with the camera (``estimate_camera``), so every frame is
    mapped into frame 0's coordinates (a canvas ``pad`` frame sizes wider on each side, for what pans
    and zoom-outs bring into view), the per-pixel temporal median of the frames that see a canvas
    pixel is the wall there (an object passing over it covers it in a minority of the frames), and
    the canvas is sampled back at each frame's view of it."""
    T, H, W, _ = frames.shape
    ph, pw = int(round(pad * H)), int(round(pad * W))
    vv, uu = np.mgrid[-ph:H + ph, -pw:W + pw] + 0.5             # canvas pixel centres, frame-0 coordinates
    cx, cy = W / 2, H / 2
    stack = np.full((T,) + uu.shape + (3,), np.nan, np.float32)
    f = frames.astype(np.float32)
    for t in range(T):
        X = cx + camera.zoom[t] * (uu - cx) + camera.shift[t, 0]
        Y = cy + camera.zoom[t] * (vv - cy) + camera.shift[t, 1]
        inside = (X >= 0.5) & (X <= W - 0.5) & (Y >= 0.5) & (Y <= H - 0.5)
        for c in range(3):
            s = ndimage.map_coordinates(f[t, ..., c], [Y - 0.5, X - 0.5], order=1, mode="nearest")
            stack[t, ..., c] = np.where(inside, s, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # canvas pixels no frame sees
        canvas = np.nanmedian(stack, axis=0)
    canvas = np.where(np.isnan(canvas), np.nanmedian(canvas.reshape(-1, 3), axis=0), canvas)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    out = np.empty(f.shape, np.float32)
    for t in range(T):
        u, v = camera.to_frame0(t, xx, yy)
        for c in range(3):
            out[t, ..., c] = ndimage.map_coordinates(canvas[..., c], [v + ph - 0.5, u + pw - 0.5], order=1,
                                                     mode="nearest")
    return out


def wall_pixels(frames: np.ndarray, background: np.ndarray, distance: float, wall_chroma: float) -> np.ndarray:
    """(T, H, W) bool: pixels within ``distance`` (RGB, 0-255, largest channel difference) of the
    modelled wall (``background_model``), where the modelled wall is itself wall-coloured
    (rg-chromaticity within ``wall_chroma`` of the frame's median), so that an object resting still
    all clip long, which the median takes for wall, is not taken for it."""
    out = np.zeros(frames.shape[:3], bool)
    for t, (f, b) in enumerate(zip(frames, background)):
        bc, _ = chromaticity(b)
        fc, _ = chromaticity(f)
        wallish = np.linalg.norm(bc - np.median(fc.reshape(-1, 2), axis=0), axis=-1) < wall_chroma
        out[t] = wallish & (np.abs(f.astype(np.float32) - b).max(axis=-1) < distance)
    return out


def drop_wall_blobs(mask: np.ndarray, wall: np.ndarray, share: float) -> np.ndarray:
    """``mask`` less its connected blobs (8-connected) of which at least ``share`` of the pixels are
    modelled wall (``wall_pixels``): tinted-wall speckle that H.264 pushed into an object's hue. Whole
    blobs are kept or dropped, so a real object whose dim side comes near the wall is not cut in two."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    on_wall = ndimage.mean(wall, labels, np.arange(1, n + 1))
    keep = np.concatenate([[False], np.asarray(on_wall) < share])
    return keep[labels]
