"""Track coloured objects in frames and fit their motion as piecewise constant-acceleration flight.

Tracking is by hue in rg-chromaticity ``(r, g) / (r + g + b)``: Lambert shading and shadows scale
an object's RGB by a brightness factor, which chromaticity ignores, so the lit and the dark side of
a ball match the same target while the low-saturation textured wall does not. Rim pixels count by
their share of the colour (sub-pixel centroids), and views of an object that are cut by the frame
edge or hidden behind another object are dropped (NaN) rather than measured wrongly.

Motion is split into ballistic pieces by an optimal segmentation (dynamic programming over
breakpoints, a penalty per extra piece scaled by the measured tracking noise); each piece is
fitted with a quadratic in time. A breakpoint is a contact (bounce, landing or collision); its
instant is where the two neighbouring parabolas meet, which lands between frames.
Positions are normalised screen coordinates (x right, y down), times in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class TrackConfig:
    max_hue_deg: float = 15.0       # widest accepted hue difference (chromaticity angle around grey)
    min_saturation: float = 0.35    # palest accepted pixel, as a fraction of the target's saturation
    min_brightness: float = 0.12    # darkest accepted pixel, as a fraction of the target's r+g+b
    min_pixels: int = 3             # smaller blobs are noise, not an object


@dataclass
class Segment:
    start: int                       # first frame index (inclusive)
    stop: int                        # last frame index + 1
    t0: float                        # time origin of the polynomial (s)
    coef: np.ndarray                 # (3, 2): p(t) = c0 + c1 (t - t0) + c2 (t - t0)^2
    accel_var: float = np.inf        # variance of each acceleration component (inf: not fitted)
    free: np.ndarray = field(default_factory=lambda: np.ones(2, bool))  # axes in free flight

    @property
    def accel(self) -> np.ndarray:
        return 2.0 * self.coef[2]

    def position(self, t: np.ndarray | float) -> np.ndarray:
        dt = np.asarray(t, dtype=np.float64)[..., None] - self.t0
        return self.coef[0] + self.coef[1] * dt + self.coef[2] * dt ** 2

    def velocity(self, t: np.ndarray | float) -> np.ndarray:
        dt = np.asarray(t, dtype=np.float64)[..., None] - self.t0
        return self.coef[1] + 2.0 * self.coef[2] * dt


@dataclass
class MotionFit:
    segments: list[Segment]
    contact_times: np.ndarray        # (B,) seconds, one per breakpoint
    accel: np.ndarray                # (2,) combined free-flight acceleration, frame heights / s^2
    accel_std: np.ndarray            # (2,) std of each component of ``accel`` (inf: unobserved)
    noise: float                     # estimated tracking noise (frame heights)
    num_valid: int = 0

    @property
    def num_bounces(self) -> int:
        return len(self.contact_times)


# ----------------------------------------------------------------------------- tracking
def chromaticity(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3) -> (chroma (..., 2) = (r, g) / (r + g + b), brightness r + g + b)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    s = rgb.sum(axis=-1)
    return rgb[..., :2] / np.maximum(s, 1.0)[..., None], s


def hue_tolerances(colors: np.ndarray, cfg: TrackConfig = TrackConfig()) -> np.ndarray:
    """(K,) accepted hue difference in degrees per target: at most ``max_hue_deg`` and under half
    the hue gap to any other target, so two objects never claim the same pixel."""
    hue, _ = hue_saturation(chromaticity(np.asarray(colors, dtype=np.float32))[0])
    tol = np.full(len(hue), cfg.max_hue_deg)
    if len(hue) > 1:
        gap = np.abs((hue[:, None] - hue[None] + 180.0) % 360.0 - 180.0)
        np.fill_diagonal(gap, np.inf)
        tol = np.minimum(tol, 0.45 * gap.min(axis=1))
    return tol


def hue_saturation(chroma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 2) chromaticity -> (hue in degrees, saturation = distance from grey)."""
    d = chroma - 1.0 / 3.0
    return np.degrees(np.arctan2(d[..., 1], d[..., 0])), np.hypot(d[..., 0], d[..., 1])


def colour_mask(chroma: np.ndarray, bright: np.ndarray, target: np.ndarray, hue_tol: float,
                cfg: TrackConfig = TrackConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) pixels of the target's hue, and (H, W) weight in [0, 1]: the share of the target's
    saturation along its hue. Blending with the grey-ish wall (glass, anti-aliased edges) moves
    a colour towards grey along its own hue, so saturation may drop to a fraction of the
    target's; the low-saturation wall and white highlights stay out."""
    t_chroma, t_bright = chromaticity(target)
    t_hue, t_sat = hue_saturation(t_chroma)
    hue, sat = hue_saturation(chroma)
    dhue = np.abs((hue - t_hue + 180.0) % 360.0 - 180.0)
    mask = ((dhue <= hue_tol) & (sat >= cfg.min_saturation * t_sat)
            & (bright >= max(30.0, cfg.min_brightness * float(t_bright))))
    along = sat * np.cos(np.radians(np.minimum(dhue, 90.0)))
    ref = np.median(along[mask]) if mask.any() else t_sat
    return mask, np.clip(along / max(ref, 1e-6), 0.0, 1.0)


def largest_blob(mask: np.ndarray, min_pixels: int) -> np.ndarray | None:
    """(H, W) bool: the largest connected blob of ``mask`` with its holes filled, or None.

    Holes are filled because a specular highlight (white, so not the object's colour) sits
    inside the object, and leaving it out would pull the centroid away from the light."""
    closed = ndimage.binary_closing(mask, structure=np.ones((3, 3), bool)) | mask
    labels, n = ndimage.label(closed)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    best = int(np.argmax(sizes)) + 1
    if sizes[best - 1] < min_pixels:
        return None
    return ndimage.binary_fill_holes(labels == best)


def soft_centroid(blob: np.ndarray, weight: np.ndarray) -> tuple[float, float, float]:
    """(row, col, area) of a blob whose rim pixels count by ``weight`` (their share of the
    object's colour): anti-aliased edges then move the centroid smoothly, not in half-pixel steps."""
    inner = ndimage.binary_erosion(blob)
    rim = ndimage.binary_dilation(blob) & ~inner
    w = np.where(inner, 1.0, np.where(rim, weight, 0.0))
    rows, cols = np.nonzero(w)
    ww = w[rows, cols]
    return float((rows * ww).sum() / ww.sum()), float((cols * ww).sum() / ww.sum()), float(ww.sum())


def touches_border(blob: np.ndarray) -> tuple[bool, bool]:
    """Whether the blob reaches the (left or right, top or bottom) frame edge."""
    return bool(blob[:, 0].any() or blob[:, -1].any()), bool(blob[0].any() or blob[-1].any())


def cut_by_border(blob: np.ndarray) -> bool:
    """A ball or an (unrotated) box is as wide as it is tall; touching a side edge while clearly
    narrower than tall (or the top or bottom edge while clearly flatter) means part of it is
    outside the frame."""
    side, top = touches_border(blob)
    rows, cols = np.nonzero(blob)
    h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
    return (side and not top and w < 0.9 * h) or (top and not side and h < 0.9 * w)


def partial_views(areas: np.ndarray, clean: np.ndarray, window: int = 13, keep: float = 0.85) -> np.ndarray:
    """(T,) True where a blob that might be cut (at the frame edge, or touching another object
    that may be in front) is clearly smaller than the same object nearby in time; its centroid is
    then not the object's centre. The reference is the median area of the clean frames in a
    window short enough to follow a camera zoom, or a high percentile of all its areas when none
    is clean (cutting and occlusion only ever shrink a blob). An occlusion longer than the window
    is caught against the clean frames of the whole clip, with a margin for a zoom (area x 2.25)."""
    T, half = len(areas), window // 2
    ok = clean & np.isfinite(areas)
    overall = np.median(areas[ok]) if ok.any() else np.nan
    ref = np.full(T, np.nan)
    for t in range(T):
        win = slice(max(0, t - half), t + half + 1)
        a, c = areas[win], ok[win]
        if c.any():
            ref[t] = np.median(a[c])
        elif np.isfinite(a).any():
            ref[t] = np.nanpercentile(a, 80)
    with np.errstate(invalid="ignore"):
        return ~clean & ((areas < keep * ref) | (areas < 0.4 * overall))


def track_objects(frames: np.ndarray, colors, cfg: TrackConfig = TrackConfig()) -> np.ndarray:
    """frames (T, H, W, 3) uint8, colors (K, 3) RGB -> centres (T, K, 2) normalised (x, y); NaN
    where an object is not found or only partly visible. Pixel (row, col) has centre
    ((col + 0.5) / W, (row + 0.5) / H)."""
    frames = np.asarray(frames)
    colors = np.asarray(colors, dtype=np.float32).reshape(-1, 3)
    T, H, W, _ = frames.shape
    K = len(colors)
    out = np.full((T, K, 2), np.nan)
    areas = np.full((T, K), np.nan)
    clean = np.zeros((T, K), bool)
    cut = np.zeros((T, K), bool)
    tol = hue_tolerances(colors, cfg)
    for t in range(T):
        chroma, bright = chromaticity(frames[t])
        blobs = []
        for k in range(K):
            mask, weight = colour_mask(chroma, bright, colors[k], tol[k], cfg)
            blob = largest_blob(mask, cfg.min_pixels)
            blobs.append(blob)
            if blob is not None:
                row, col, areas[t, k] = soft_centroid(blob, weight)
                out[t, k] = ((col + 0.5) / W, (row + 0.5) / H)
        for k, blob in enumerate(blobs):
            if blob is not None:
                grown = ndimage.binary_dilation(blob, iterations=2)
                near = any(b is not None and (grown & b).any() for j, b in enumerate(blobs) if j != k)
                clean[t, k] = not (near or any(touches_border(blob)))
                cut[t, k] = cut_by_border(blob)
    for k in range(K):
        out[partial_views(areas[:, k], clean[:, k]) | cut[:, k], k] = np.nan
    return out


# ----------------------------------------------------------------------------- segmentation
def estimate_noise(y: np.ndarray, floor: float) -> float:
    """Tracking noise std from third differences (zero for any parabola; var = 20 sigma^2).
    The median ignores the few differences that straddle a bounce."""
    if len(y) < 8:
        return floor
    d3 = np.diff(y, n=3, axis=0).ravel()
    return max(floor, 1.4826 * float(np.median(np.abs(d3))) / np.sqrt(20.0))


def segment_costs(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n+1, n+1) residual sum of squares of a quadratic fit of points [i, j); inf where j - i < 3.

    Moments of the whole track are accumulated once, so every segment costs O(1)."""
    n = len(t)
    tau = (t - t.mean()) / max(np.ptp(t), 1e-9)          # scaled time keeps the 3x3 systems well posed
    pw = np.stack([tau ** k for k in range(5)], axis=1)             # (n, 5)
    S = np.vstack([np.zeros(5), np.cumsum(pw, axis=0)])             # (n+1, 5)
    Y = np.vstack([np.zeros((3, 2))[None], np.cumsum(pw[:, :3, None] * y[:, None, :], axis=0)])
    YY = np.r_[0.0, np.cumsum((y ** 2).sum(axis=1))]
    i, j = np.triu_indices(n + 1, k=3)
    s = S[j] - S[i]                                                 # (P, 5)
    A = np.stack([s[:, 0:3], s[:, 1:4], s[:, 2:5]], axis=1)         # (P, 3, 3)
    b = Y[j] - Y[i]                                                 # (P, 3, 2)
    coef = np.linalg.solve(A, b)
    rss = (YY[j] - YY[i]) - (coef * b).sum(axis=(1, 2))
    cost = np.full((n + 1, n + 1), np.inf)
    cost[i, j] = np.maximum(rss, 0.0)
    return cost


def segment_track(t: np.ndarray, y: np.ndarray, noise: float) -> list[tuple[int, int]]:
    """Optimal split of points into quadratic pieces: [(i, j), ...] over point indices.

    Inner pieces need >= 3 points; the first and last may have 1-2 points (a bounce right after
    the first or before the last frame). Each extra piece costs ``penalty`` (BIC-like: 6 more
    parameters, plus a margin for choosing the best of n breakpoints)."""
    n = len(t)
    cost = segment_costs(t, y)
    for m in (1, 2):
        if m < n:
            cost[0, m] = 0.0
            cost[n - m, n] = 0.0
    penalty = (6.0 * np.log(max(n, 2)) + 12.0) * noise ** 2
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    prev = np.zeros(n + 1, dtype=int)
    for j in range(1, n + 1):
        total = best[:j] + cost[:j, j] + penalty
        prev[j] = int(np.argmin(total))
        best[j] = total[prev[j]]
    pieces, j = [], n
    while j > 0:
        pieces.append((prev[j], j))
        j = prev[j]
    return pieces[::-1]


def fit_piece(t: np.ndarray, y: np.ndarray, noise: float) -> tuple[float, np.ndarray, float]:
    """Least-squares polynomial of degree min(2, m - 1) -> (t0, coef (3, 2), accel component var).

    The variance uses the piece's own residual when it exceeds the tracking noise, so a piece that
    is not one clean parabola (an unseen bounce inside it, a bad centroid) weighs less."""
    t0 = float(t.mean())
    deg = min(2, len(t) - 1)
    X = np.stack([(t - t0) ** k for k in range(deg + 1)], axis=1)
    coef = np.zeros((3, 2))
    coef[: deg + 1] = np.linalg.lstsq(X, y, rcond=None)[0]
    var = np.inf
    if deg == 2:
        sigma2 = noise ** 2
        if len(t) > 3:
            rss = float(((X @ coef[:3] - y) ** 2).sum())
            sigma2 = max(sigma2, rss / (2 * (len(t) - 3)))
        var = 4.0 * sigma2 * float(np.linalg.inv(X.T @ X)[2, 2])
    return t0, coef, var


def contact_time(a: Segment, b: Segment, t_last: float, t_first: float, dt: float) -> float:
    """Instant between two pieces where their parabolas are closest (continuous position at an
    impact); searched from half a frame before the last point of ``a`` to half after ``b``'s first."""
    grid = np.linspace(t_last - 0.5 * dt, t_first + 0.5 * dt, 201)
    gap = np.linalg.norm(a.position(grid) - b.position(grid), axis=-1)
    return float(grid[int(np.argmin(gap))])


def free_axes(seg: Segment, t: np.ndarray, y: np.ndarray, noise: float, dv: np.ndarray | None,
              held_before: np.ndarray, rest_speed: float) -> np.ndarray:
    """(2,) which axes of a piece move freely under gravity.

    A still piece tells nothing about gravity. An object stopped by a wall (a contact changed its
    velocity along an axis, and it now stays slow along that axis) is held by the wall on that
    axis until it moves away, so only the other axis is free: e.g. a box sliding along the floor
    under tilted gravity still measures gravity's horizontal part, but its zero vertical
    acceleration must not count. ``dv``: velocity change at the contact that starts the piece;
    ``held_before``: axes held in the previous piece."""
    if len(y) >= 3 and float(np.ptp(y, axis=0).max()) <= 4.0 * noise:
        return np.zeros(2, bool)
    if dv is None or len(y) < 3:
        return np.ones(2, bool)
    slow = np.abs(seg.velocity(t)).max(axis=0) <= rest_speed
    stopped = (np.abs(dv) > rest_speed) | held_before
    return ~(slow & stopped)


def combine_accelerations(segments: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis inverse-variance mean of the accelerations of the free axes of fitted pieces."""
    w = np.array([[1.0 / max(s.accel_var, 1e-300) if f else 0.0 for f in s.free] for s in segments])
    w = w.reshape(-1, 2)
    acc_all = np.stack([s.accel for s in segments]) if segments else np.zeros((0, 2))
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(total > 0, (w * np.nan_to_num(acc_all)).sum(axis=0) / total, np.nan)
        std = np.where(total > 0, np.sqrt(1.0 / total), np.inf)
    return acc, std


def fit_motion(track: np.ndarray, fps: float, aspect: float = 1.0, noise_floor: float = 0.001,
               rest_speed: float = 0.2) -> MotionFit:
    """track (T, 2) normalised screen positions with NaN gaps -> piecewise ballistic fit.

    Everything is fitted in frame heights (x scaled by ``aspect`` = W / H) so directions are the
    physical on-screen ones. ``noise_floor`` (frame heights) keeps a clean render (near-exact
    centroids) from turning every small modelling error into a bounce; ~0.15 px is a good floor.
    ``rest_speed`` (frame heights / s): slower motion along a contact normal is resting on the wall
    (a camera zoom alone moves a resting object up to ~0.15 on screen); a rebound that slow rises
    under a pixel at 128 px under everyday gravity, so it could not be seen as a bounce anyway.
    """
    track = np.asarray(track, dtype=np.float64) * np.array([aspect, 1.0])
    frame = np.flatnonzero(np.all(np.isfinite(track), axis=1))
    if len(frame) < 3:
        return MotionFit([], np.zeros(0), np.full(2, np.nan), np.full(2, np.inf), noise_floor, len(frame))
    t, y = frame / fps, track[frame]
    noise = estimate_noise(y, noise_floor)
    segments: list[Segment] = []
    pieces = segment_track(t, y, noise)
    for i, j in pieces:
        t0, coef, var = fit_piece(t[i:j], y[i:j], noise)
        segments.append(Segment(int(frame[i]), int(frame[j - 1]) + 1, t0, coef, var))
    contacts, dvs = [], [None]
    for a, b in zip(segments[:-1], segments[1:]):
        tc = contact_time(a, b, (a.stop - 1) / fps, b.start / fps, 1.0 / fps)
        contacts.append(tc)
        dvs.append(b.velocity(tc) - a.velocity(tc))
    held = np.zeros(2, bool)
    for seg, (i, j), dv in zip(segments, pieces, dvs):
        seg.free = free_axes(seg, t[i:j], y[i:j], noise, dv, held, rest_speed)
        held = ~seg.free
    acc, std = combine_accelerations(segments)
    return MotionFit(segments, np.array(contacts), acc, std, noise, len(frame))


def angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Angle in degrees between two 2D vectors (NaN if either is zero or not finite)."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if not (np.isfinite(nu) and np.isfinite(nv)) or nu == 0 or nv == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(u @ v / (nu * nv), -1.0, 1.0))))
