"""Prompt adherence of synthetic-world clips, layer by layer (the ``ltx-eval task=adherence`` backend).

A caption of ``ltx_train.data.captions`` makes claims in five sentences; ``parse_caption``
(``ltx_train.eval.claims``) reads them back (``claims_from_annotations`` gives the same claims from a real clip's annotation JSON, so
real and generated clips are judged on identical statements). The frames are then measured without
looking at the caption (``measure_clip``) and each layer is judged (``judge``):

- subject (object colours, shapes, count): the palette colours present (seen in >= 15% of the
  frames by the hue masks of ``physics.py``) are exactly the captioned ones, each with the
  captioned shape (ball / box from the blob's corner ratio), and the number of separate objects
  equals the captioned count. Under the tinted looks (sepia, neon, night, told from the wall
  colour) the wall is first modelled away (``background_model``: per-pixel temporal median of the
  camera-registered frames) so that its H.264 speckle is not taken for objects.
- action (gravity direction): the free-flight acceleration fitted to all tracked objects
  (``physics.fit_motion``, pooled as ``ltx-eval task=physics`` pools it) is within 15 degrees of
  the captioned gravity.
- environment (look and wall pattern): the look whose wall tone is nearest the clip's median
  colour is the captioned one, and the wall's orientation statistics classify as the captioned
  pattern (tiles, stripes, dots, bricks, marble).
- lighting (light side: left / centre / right): the light position triangulated from the balls'
  shading is on the captioned side (x < 0.4, 0.4-0.6, > 0.6 of the width: the caption's own cuts).
- camera (static / pan left / pan right / zoom in / zoom out): the background's translation and
  scale from frame 0 to the last frame (robust registration, objects masked) exceed 0.05 frame
  heights of pan or 0.09 of ln zoom in the captioned direction, or neither for ``static``.
- timing ("after N seconds the X hits ..."): the first contact (break between ballistic pieces)
  in object X's track is within 0.25 s of N; for "Nothing touches the walls", no tracked object
  has a contact.

A layer is None (not judged, left out of its score) when the caption does not state it, and the
lighting layer also when the frames show no ball: boxes are flat-faced and give no shading cue, and
shadows alone did not tell the side (see ``estimate_light``). Not judged at all, because the frames
cannot tell them apart at the demo resolution: materials (rubber / metal / clay / glass), the wall
tone within a look (beige and sand differ by 0.01 in RGB), shadow softness, the later timed events
and the impact count (``ltx-eval task=physics`` reports the bounce count with its own ceiling).
Reported as sub-checks, outside the layer scores: the vertical light words ("from above" = light
y < 0.2), the first contact within 0.1 s (the caption rounds times to 0.1 s, which alone can put
a perfect clip 0.05 s off) and the wall of the first contact (from the velocity reversal).

The timing tolerance is 0.25 s: the caption rounds times to 0.1 s (0.05 s off at worst), and the
tracked contact instant is a fraction of a frame off for most contacts but a frame or more for a
contact half hidden by another object or the frame edge. On 1-second clips 0.25 s is loose, which
the 0.1 s sub-check makes up for. What the timing test cannot forgive on real clips: a spurious
break in the named object's flight before its first contact, and a first contact with a wall the
camera has taken out of the frame (``experiments/adherence_ceiling.md``).

Real clips of annotated shards give the ceiling (what a perfect generator would score with these
estimators); ``experiments/adherence_ceiling.md`` has the figures and what each estimator gets
wrong. Frames are (T, H, W, 3) uint8, positions in pixels or fractions of the frame, times in s.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from scipy import ndimage

from ltx_train.data.synth_palette import PALETTES
from ltx_train.data.synth_world import PALETTE
from ltx_train.eval.claims import (COLOUR_BY_RGB, Claims, ContactClaim, ObjectClaim,  # noqa: F401 (re-exported)
                                   claims_from_annotations, light_side, parse_caption)
from ltx_train.eval.look import object_pixels as saturated_pixels
from ltx_train.eval.look import background_colour
from ltx_train.eval.physics import (TrackConfig, angle_deg, chromaticity, colour_mask, combine_accelerations,
                                    fit_motion, hue_tolerances, largest_blob, soft_centroid, touches_border,
                                    track_objects)
from ltx_train.eval.physics_eval import (ANGLE_TOLERANCE_DEG, MIN_FIT_FRAMES, NOISE_FLOOR_PX, clip_metric_main,
                                         read_shard_samples, score_sources)
from ltx_train.media import MediaError, probe, read_video

LAYERS = ("subject", "action", "environment", "lighting", "camera", "timing")


# ============================================================================= measuring frames
@dataclass(frozen=True)
class AdherenceConfig:
    """Thresholds of the frame measurements; each is explained where it is used."""
    min_presence: float = 0.15       # a colour is present when seen in this share of the frames (and >= 2)
    min_area: float = 0.003          # smallest median blob of an object, fraction of the frame (12 px at 64x64)
    second_blob: float = 0.3         # another blob of one colour is another object at >= this share of the largest
    wall_chroma: float = 0.04        # pixels this close to the wall's chromaticity are wall (see ``neutral_wall``)
    background_rgb: float = 40.0     # pixels this close to the modelled wall are wall (``wall_pixels``); 0 = off
    background_chroma: float = 0.2   # ... where the modelled wall is this close to the wall's chromaticity
    wall_blob_share: float = 0.5     # a blob this much modelled wall is wall speckle (``drop_wall_blobs``)
    box_corners: float = 1.18        # diagonal / axis extent between a disc's (~1.09 at 64 px) and a square's (~1.3)
    pan: float = 0.05                # total background shift, frame heights, above which the camera pans
    zoom: float = 0.09               # total |ln scale| of the background above which the camera zooms
    light_gain: float = 0.13         # ball brightness-centroid shift / radius per unit tan(light zenith angle)
    light_height: float = 1.58       # typical height of the light above an object, frame heights
    timing_tolerance_s: float = 0.25
    angle_tolerance_deg: float = ANGLE_TOLERANCE_DEG


@dataclass
class ObjectView:
    """The largest blob of one palette colour in one frame; positions in pixels (x right, y down)."""
    frame: int
    x: float                         # soft centroid (pixel centres at +0.5)
    y: float
    area: float                      # soft area
    corners: float                   # extent along the diagonals / along the axes (``corner_ratio``)
    shading: tuple[float, float]     # brightness-weighted minus plain centroid of the blob's inside (x, y)
    clean: bool                      # clear of the frame edge and of other objects
    isolated: bool                   # clear of other objects (may touch the frame edge)

    @property
    def radius(self) -> float:
        return float(np.sqrt(self.area / np.pi))


@dataclass
class ColourObservation:
    """Everything seen of one palette colour over a clip."""
    color_name: str
    views: list[ObjectView]
    blobs: np.ndarray                # (T,) separate sizeable blobs of this colour per frame
    frame_area: int = 0              # H x W of the frames, pixels

    def shape(self, cfg: "AdherenceConfig") -> str | None:
        """ball | box from the median corner ratio of the clean views (of all views if none is clean)."""
        ratios = [v.corners for v in self.views if v.clean] or [v.corners for v in self.views]
        return None if not ratios else ("box" if float(np.median(ratios)) >= cfg.box_corners else "ball")


def object_colours(palette: str = "default") -> dict[str, np.ndarray]:
    """Palette colour name -> RGB as drawn: a look's light tint (sepia, night) colours the objects."""
    tint = np.array(PALETTES[palette].object_tint)
    return {name: np.array(rgb, np.float64) * tint for name, rgb in PALETTE.items()}


def neutral_wall(frames: np.ndarray, distance: float) -> np.ndarray:
    """Frames with every pixel whose rg-chromaticity is within ``distance`` of the frame's median
    (the wall's: its pattern and the dimmer world outside the box change brightness, not colour)
    turned grey at the same brightness, so no colour mask can take it for an object.

    The other looks tint the walls (sepia brown, night blue, neon violet) enough that the tracker's
    saturation floor, a share of the target colour's, lets wall pixels through as yellow, red, blue
    or magenta. Measured on renders of every look: wall pixels lie within 0.01 of the median
    chromaticity (99.5th percentile), object pixels 0.085 or more away (5th percentile). H.264
    spreads a dark wall's chromaticity (neon: 0.07 at the 99.9th percentile), so the distance is
    raised to 6 robust standard deviations of the frame's own spread when that is larger."""
    out = np.array(frames, copy=True)
    for f in out:
        chroma, _ = chromaticity(f)
        d = np.linalg.norm(chroma - np.median(chroma.reshape(-1, 2), axis=0), axis=-1)
        wall = d < max(distance, 6.0 * 1.4826 * float(np.median(d)))
        f[wall] = f[wall].mean(axis=-1, keepdims=True).round().astype(np.uint8)
    return out


def estimate_palette(frames: np.ndarray) -> str:
    """The look whose mean wall tone is nearest the clip's median colour (``look.background_colour``)."""
    bg = background_colour(frames)
    return min(PALETTES, key=lambda p: float(np.linalg.norm(PALETTES[p].reference_colour - bg)))


def corner_ratio(w: np.ndarray, x: float, y: float) -> float:
    """How far a blob reaches along the diagonals from its centre (x, y), over how far along the axes
    (pixels covered >= half, extents averaged over the 4 directions of each kind). A disc reaches
    equally far everywhere (1; ~1.09 once pixelated at 64 px), an axis-aligned square sqrt(2) times
    farther into its corners (~1.3 at 64 px). Measured on H.264 shards (64 px, 400 objects) the
    ratio separates the two (balls <= 1.15, boxes >= 1.21 at the 95th / 5th percentiles), where the
    area / bounding-box fill overlapped: chroma subsampling rounds a small box's corners. The
    generator never turns a box; a box drawn at 45 degrees would read as a ball."""
    rows, cols = np.nonzero(w >= 0.5)
    if len(rows) == 0:
        return float("nan")
    dx, dy = cols + 0.5 - x, rows + 0.5 - y
    reach = [float(np.max(dx * np.cos(a) + dy * np.sin(a))) + 0.5 for a in np.arange(8) * np.pi / 4]
    return float(np.mean(reach[1::2]) / max(np.mean(reach[0::2]), 1e-9))


def observe_colours(frames: np.ndarray, palette: str = "default",
                    cfg: AdherenceConfig = AdherenceConfig(), track: TrackConfig = TrackConfig(),
                    wall: np.ndarray | None = None) -> dict[str, ColourObservation]:
    """Segment every palette colour in every frame with the physics tracker's colour masks
    (``physics.colour_mask`` / ``largest_blob``: hue in rg-chromaticity, so shading does not matter).

    Per colour and frame: the largest blob's soft centroid and area, its corner ratio (shape), the
    brightness-weighted centroid of its inside (where the light comes from) and how many separate
    sizeable blobs of that colour there are (object count)."""
    T, H, W, _ = frames.shape
    targets = object_colours(palette)
    names = list(targets)
    colours = np.stack([targets[n] for n in names]).astype(np.float32)
    tol = hue_tolerances(colours, track)
    out = {n: ColourObservation(n, [], np.zeros(T, int), H * W) for n in names}
    for t in range(T):
        chroma, bright = chromaticity(frames[t])
        blobs = []
        for k, name in enumerate(names):
            mask, weight = colour_mask(chroma, bright, colours[k], tol[k], track)
            if wall is not None:
                mask = drop_wall_blobs(mask, wall[t], cfg.wall_blob_share)
            blob = largest_blob(mask, track.min_pixels)
            blobs.append((blob, weight))
            if blob is None:
                continue
            labels, _ = ndimage.label(ndimage.binary_closing(mask, structure=np.ones((3, 3), bool)) | mask)
            sizes = np.bincount(labels.ravel())[1:]
            out[name].blobs[t] = int(((sizes >= track.min_pixels) & (sizes >= cfg.second_blob * sizes.max())).sum())
        for k, (blob, weight) in enumerate(blobs):
            if blob is None:
                continue
            inner = ndimage.binary_erosion(blob)
            rim = ndimage.binary_dilation(blob) & ~inner
            w = np.where(inner, 1.0, np.where(rim, weight, 0.0))
            row, col, area = soft_centroid(blob, weight)
            shade = (0.0, 0.0)
            if inner.sum() >= 5:
                rr, cc = np.nonzero(inner)
                b = bright[rr, cc].astype(np.float64)
                shade = (float((b * cc).sum() / b.sum() - cc.mean()), float((b * rr).sum() / b.sum() - rr.mean()))
            grown = ndimage.binary_dilation(blob, iterations=2)
            near = any(o is not None and (grown & o).any() for j, (o, _) in enumerate(blobs) if j != k)
            clean = not (near or any(touches_border(blob)))
            out[names[k]].views.append(ObjectView(t, col + 0.5, row + 0.5, area, corner_ratio(w, col + 0.5, row + 0.5),
                                                  shade, clean, not near))
    return out


def present_colours(observed: dict[str, ColourObservation], num_frames: int, cfg: AdherenceConfig) -> list[str]:
    """Palette colours seen in >= ``min_presence`` of the frames (and >= 2) as blobs of a median size
    of at least ``min_area`` of the frame (the generator's smallest object, zoomed out 1.5x, covers
    about 0.5%; H.264 colour fringes and tinted-wall speckle are smaller), less blending fringes.

    Where two objects overlap, H.264 blends their colours at the boundary into the hue between
    them (blue over green leaves a sliver of cyan), and the hue masks find it frame after frame. A
    colour is taken for such a fringe when it is never clear of other objects (fewer than 2 views),
    both its neighbours on the palette's hue circle are present, and its blob is under half the size
    of theirs; two real objects that stay in contact all clip long are kept (they are not small)."""
    need = _min_frames(num_frames, cfg)
    frame_area = next(iter(observed.values())).frame_area if observed else 0
    seen = {n: o for n, o in observed.items()
            if len(o.views) >= need and np.median([v.area for v in o.views]) >= cfg.min_area * frame_area}
    hues = list(PALETTE)   # red, yellow, green, cyan, blue, magenta: 60 degrees apart, in hue order
    size = {n: float(np.median([v.area for v in o.views])) for n, o in seen.items()}

    def fringe(name: str) -> bool:
        i = hues.index(name)
        sides = [hues[(i - 1) % len(hues)], hues[(i + 1) % len(hues)]]
        return (sum(v.isolated for v in seen[name].views) < 2 and all(s in seen for s in sides)
                and size[name] < 0.5 * min(size[s] for s in sides))

    return [n for n in seen if not fringe(n)]


def count_objects(observed: dict[str, ColourObservation], present: list[str], num_frames: int,
                  cfg: AdherenceConfig) -> int:
    """Objects in the clip: the largest n such that >= ``min_presence`` of the frames show n or more
    separate blobs of the present colours. An object that leaves the frame (pan, zoom) still counts
    from the frames it is in, and a short overlap of two objects does not hide one of them."""
    if not present:
        return 0
    per_frame = np.sum([observed[n].blobs for n in present], axis=0)
    need = _min_frames(num_frames, cfg)
    return int(max((n for n in range(int(per_frame.max()) + 1) if (per_frame >= n).sum() >= need), default=0))


def _min_frames(num_frames: int, cfg: AdherenceConfig) -> int:
    return max(2, int(np.ceil(cfg.min_presence * num_frames)))


# ----------------------------------------------------------------------------- camera
@dataclass
class CameraEstimate:
    """Background motion from frame 0 to frame t: a pixel at x in frame 0 is at
    centre + zoom[t] * (x - centre) + shift[t] in frame t (x right, y down, pixels)."""
    zoom: np.ndarray                 # (T,)
    shift: np.ndarray                # (T, 2)
    height: int
    width: int

    @property
    def total_log_zoom(self) -> float:
        return float(np.log(self.zoom[-1]))

    @property
    def total_pan(self) -> float:
        """Horizontal shift of the background over the clip, frame heights (+ = the scene moves right)."""
        return float(self.shift[-1, 0] / self.height)

    def motion(self, cfg: AdherenceConfig) -> str:
        """Zoom first: a zoom about the centre shifts nothing on average, while a pan changes no scale."""
        if abs(self.total_log_zoom) >= cfg.zoom:
            return "zoom_in" if self.total_log_zoom > 0 else "zoom_out"
        if abs(self.total_pan) >= cfg.pan:
            return "pan_left" if self.total_pan > 0 else "pan_right"  # the scene moving right = camera going left
        return "static"

    def to_frame0(self, t: int, x: float, y: float) -> tuple[float, float]:
        """Frame-t pixel position -> where that point of the back wall is in frame 0."""
        cx, cy = self.width / 2, self.height / 2
        return (cx + (x - cx - self.shift[t, 0]) / self.zoom[t], cy + (y - cy - self.shift[t, 1]) / self.zoom[t])


def _grey(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


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
    grey = [_grey(f) for f in frames]
    objects = [ndimage.binary_dilation(saturated_pixels(f), iterations=2) for f in frames]
    params = np.zeros((T, 3))
    for t in range(1, T):
        params[t] = register_background(grey[0], ~objects[0], grey[t], objects[t], params[t - 1])
    return CameraEstimate(np.exp(params[:, 2]), params[:, :2], H, W)


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

# ----------------------------------------------------------------------------- light
@dataclass
class LightEstimate:
    x: float                         # light position in frame 0 as a fraction of the width (nan: no cue)
    y: float                         # ... and of the height (y down; negative = above the top edge)
    num_views: int                   # ball views that voted

    @property
    def side(self) -> str | None:
        return None if not np.isfinite(self.x) else light_side(self.x)

    @property
    def above(self) -> bool | None:
        return None if not np.isfinite(self.y) else bool(self.y < 0.2)


def estimate_light(observed: dict[str, ColourObservation], camera: CameraEstimate,
                   cfg: AdherenceConfig = AdherenceConfig()) -> LightEstimate:
    """Where the point light is, in frame 0, from the shading of the balls.

    A Lambert-lit ball is brighter on the side facing the light, so the brightness-weighted centroid
    of its inside is off its centre towards the light, by ``light_gain`` x radius x tan(zenith angle
    of the light) (measured on rendered balls of every material: 0.13, 20% scatter; the direction is
    within 3 degrees for the median view, 11 at the 90th percentile). Each clean view of a ball thus
    gives a point, its centre plus that direction times ``light_height`` x tan(zenith), with an
    uncertainty that is tight across the direction and loose along it (the light is 1.05-2.1 frame
    heights above an object, so the distance is known to ~40%). Views are mapped into frame 0 with
    the estimated camera and combined by inverse covariance with a weak prior at the middle of the
    box's upper half (where the generator puts its lights); the views of one object are correlated
    frame to frame, so each object counts as at most 5; views far off the first answer are
    down-weighted (Tukey) and the answer recomputed.

    Boxes give no cue: their front face is flat (one normal, a uniform sheen). Shadows were tried
    (darkness-weighted centroid against a median wall plate): their direction is as good for boxes,
    but their length depends on the object's unknown depth, so a shadow gives a line, not a point,
    and on box-only clips the side came out right in 9 of 19 (seeds 0-99, 64 px), near guessing. A clip
    without a clean view of a ball therefore gets NaN: its light cannot be judged from the frames."""
    H, W = camera.height, camera.width
    points = []   # (point (2,), information matrix (2, 2)), frame-0 pixels
    for o in observed.values():
        if o.shape(cfg) != "ball":
            continue
        views = [v for v in o.views if v.clean and v.radius >= 2.0 and np.hypot(*v.shading) > 1e-9]
        share = min(1.0, 5.0 / max(len(views), 1))
        for v in views:
            m = np.array(v.shading) / camera.zoom[v.frame]       # a pan / zoom keeps its direction
            r = v.radius / camera.zoom[v.frame]
            u = m / np.linalg.norm(m)
            dist = float(np.linalg.norm(m)) / r / cfg.light_gain * cfg.light_height * H   # frame-0 pixels
            along, across = 0.4 * dist + 0.05 * H, np.tan(np.radians(8.0)) * dist + 0.03 * H
            info = (np.outer(u, u) / along ** 2 + (np.eye(2) - np.outer(u, u)) / across ** 2) * share
            points.append((np.array(camera.to_frame0(v.frame, v.x, v.y)) + u * dist, info))
    if not points:
        return LightEstimate(float("nan"), float("nan"), 0)
    prior_mean = np.array([0.5 * W, 0.125 * H])
    prior_info = np.diag([1.0 / (0.35 * W) ** 2, 1.0 / (0.35 * H) ** 2])
    weights = np.ones(len(points))
    for _ in range(3):
        info = prior_info + sum(w * I for w, (_, I) in zip(weights, points))
        vec = prior_info @ prior_mean + sum(w * I @ q for w, (q, I) in zip(weights, points))
        est = np.linalg.solve(info, vec)
        off = np.array([np.sqrt(max(float((est - q) @ I @ (est - q)), 0.0)) for q, I in points])
        u = off / 4.685
        weights = np.where(u < 1, (1 - u * u) ** 2, 0.0)
    return LightEstimate(float(est[0] / W), float(est[1] / H), len(points))


# ----------------------------------------------------------------------------- motion and contacts
@dataclass
class ObjectMotion:
    """The tracked flight of one palette colour (``physics.track_objects`` + ``fit_motion``)."""
    color_name: str
    valid_frames: int
    contact_times: list[float]       # breaks between ballistic pieces, seconds
    contact_surfaces: list[str | None]   # the wall each break bounced off (``contact_surface``)

    @property
    def first_contact(self) -> float | None:
        return self.contact_times[0] if self.contact_times else None


def surface_from_velocities(before: np.ndarray, after: np.ndarray) -> str:
    """The wall of a contact from the velocity (2,) just before and just after it, screen axes (y down).

    A wall reverses (or, for clay, stops) the velocity along its normal and only damps the one along
    it (friction), so the normal is the axis that lost the larger share of its incoming speed;
    the wall is on the side the object was moving towards along that axis."""
    lost = np.array([(before[k] - after[k]) * np.sign(before[k]) / max(abs(before[k]), 0.05) for k in (0, 1)])
    axis = int(np.argmax(lost))
    if axis == 1:
        return "floor" if before[1] > 0 else "ceiling"
    return "right_wall" if before[0] > 0 else "left_wall"


def contact_surface(track: np.ndarray, fps: float, tc: float) -> str | None:
    """The wall of a contact at ``tc`` s, from the tracked positions (T, 2) on either side of it:
    the mean velocity over the two frame steps after the contact minus over the two before (raw
    differences, not the fitted pieces, whose parabolas are wild when only 3 points follow a break).
    None when fewer than 3 tracked frames lie on a side (a contact in the first or last frames)."""
    t = np.arange(len(track)) / fps
    ok = np.all(np.isfinite(track), axis=1)
    before, after = np.flatnonzero(ok & (t < tc))[-3:], np.flatnonzero(ok & (t > tc))[:3]
    if len(before) < 3 or len(after) < 3:
        return None
    v = lambda idx: (track[idx[-1]] - track[idx[0]]) / ((idx[-1] - idx[0]) / fps)  # noqa: E731
    return surface_from_velocities(v(before), v(after))


def measure_motion(frames: np.ndarray, fps: float, names: list[str], palette: str = "default"
                   ) -> tuple[dict[str, ObjectMotion], np.ndarray]:
    """Track the named palette colours, fit piecewise free flight and read off each contact's time and
    wall, with the physics evaluation's settings (noise floor, minimum frames); returns the motions and
    the pooled free-flight acceleration (2,) of every object fitted on enough frames (NaN if none)."""
    T, H, W, _ = frames.shape
    if not names:
        return {}, np.full(2, np.nan)
    targets = object_colours(palette)
    tracks = track_objects(frames, np.stack([targets[n] for n in names]))
    out, used = {}, []
    for k, name in enumerate(names):
        fit = fit_motion(tracks[:, k], fps, aspect=W / H, noise_floor=NOISE_FLOOR_PX / H)
        ok = fit.num_valid >= MIN_FIT_FRAMES
        times, surfaces = [], []
        if ok:
            used.append(fit)
            times = [float(tc) for tc in fit.contact_times]
            surfaces = [contact_surface(tracks[:, k] * np.array([W / H, 1.0]), fps, tc) for tc in times]
        out[name] = ObjectMotion(name, fit.num_valid, times, surfaces)
    accel, _ = combine_accelerations([s for f in used for s in f.segments])
    return out, np.asarray(accel, dtype=np.float64)


# ----------------------------------------------------------------------------- wall pattern
@dataclass
class PatternFeatures:
    coherence: float                 # structure-tensor coherence: 1 = one orientation everywhere (stripes)
    axis_aligned: float              # share of gradient energy along the x / y axes (tiles, bricks: high)
    vertical: float                  # share of gradient energy along y, i.e. horizontal edges (brick rows)

    def pattern(self) -> str:
        """A decision tree on the three statistics; every split has a wide margin on rendered walls
        (10th-90th percentiles at 64 px, seeds 0-149: coherence stripes 0.91-0.96, marble 0.74-0.87,
        bricks 0.48-0.59, tiles and dots <= 0.43; vertical share bricks 0.65-0.74, the rest ~0.5 but
        marble up to 0.61 and stripes anything; axis share tiles 0.77-0.86, dots 0.48-0.50)."""
        if self.coherence >= 0.88:
            return "stripes"
        if self.vertical >= 0.6 and self.axis_aligned >= 0.6:
            return "bricks"
        if self.coherence >= 0.65:
            return "marble"
        return "checkered tiles" if self.axis_aligned >= 0.65 else "polka dots"


def pattern_features(frame: np.ndarray) -> PatternFeatures:
    """Orientation statistics of the back wall in one frame (objects and a 3-pixel border left out),
    from the gradients of the lightly blurred grey frame, averaged over 2-pixel neighbourhoods. They
    do not depend on the wall's colour, contrast or tile size, so they hold under every palette."""
    g = _grey(frame)
    wall = ~ndimage.binary_dilation(saturated_pixels(frame), iterations=3)
    wall[:3], wall[-3:], wall[:, :3], wall[:, -3:] = False, False, False, False
    gy, gx = np.gradient(ndimage.gaussian_filter(g, 0.7))
    jxx, jxy, jyy = (ndimage.gaussian_filter(a, 2.0)[wall] for a in (gx * gx, gx * gy, gy * gy))
    coherence = float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2).sum() / max((jxx + jyy).sum(), 1e-9))
    angle, energy = np.arctan2(gy, gx)[wall], (gx * gx + gy * gy)[wall]
    total = max(float(energy.sum()), 1e-9)
    return PatternFeatures(coherence, float((energy * np.cos(2 * angle) ** 2).sum() / total),
                           float((energy * np.sin(angle) ** 2).sum() / total))


# ============================================================================= one clip
@dataclass
class Measurement:
    """What the frames of one clip show, measured without looking at its caption."""
    num_frames: int
    fps: float
    palette: str
    pattern: str
    present: list[str]               # palette colours seen in enough frames
    shapes: dict[str, str | None]    # shape per present colour
    count: int
    camera: str
    camera_pan: float                # total background shift, frame heights (+ = scene moves right)
    camera_log_zoom: float
    light: LightEstimate
    motions: dict[str, ObjectMotion]  # per present colour
    accel: np.ndarray                # (2,) pooled free-flight acceleration, frame heights / s^2

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("num_frames", "fps", "palette", "pattern", "present", "shapes", "count",
                                           "camera", "camera_pan", "camera_log_zoom")}
        d["light"] = asdict(self.light)
        d["accel"] = self.accel.tolist()
        d["contacts"] = {n: {"times": m.contact_times, "surfaces": m.contact_surfaces, "valid_frames": m.valid_frames}
                         for n, m in self.motions.items()}
        return d


def measure_clip(frames: np.ndarray, fps: float, cfg: AdherenceConfig = AdherenceConfig()) -> Measurement:
    """All frame measurements of one clip: frames (T, H, W, 3) uint8 at ``fps``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"frames must be (T >= 2, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    T = len(frames)
    palette = estimate_palette(frames)
    # the default look's walls are already under the tracker's saturation floor: its frames are
    # tracked untouched, exactly as ``ltx-eval task=physics`` tracks them
    camera = estimate_camera(frames)
    objects_only = frames if palette == "default" else neutral_wall(frames, cfg.wall_chroma)
    observed = observe_colours(objects_only, palette, cfg)
    subject = observed
    shaped = observed
    if palette != "default" and cfg.background_rgb > 0:
        # the subject layer of the tinted looks: the wall, modelled from the registered frames, is
        # subtracted so that its H.264 speckle no longer passes as objects. Colours present and the
        # count come from the masks less their mostly-wall blobs (whole blobs, so no object is cut in
        # two), the shapes from the frames with the wall pixels greyed (speckle stuck to an object
        # changes its outline). The tracks and the shading cue keep ``objects_only``: tuned on neon /
        # night seeds 300-349, the wall model made action, timing and lighting no better.
        wall = wall_pixels(frames, background_model(frames, camera), cfg.background_rgb, cfg.background_chroma)
        subject = observe_colours(objects_only, palette, cfg, wall=wall)
        greyed = np.array(objects_only, copy=True)
        greyed[wall] = greyed[wall].mean(axis=-1, keepdims=True).round().astype(np.uint8)
        shaped = observe_colours(greyed, palette, cfg)
    present = present_colours(subject, T, cfg)
    motions, accel = measure_motion(objects_only, fps, present, palette)
    return Measurement(T, float(fps), palette, pattern_features(frames[0]).pattern(), present,
                       {n: shaped[n].shape(cfg) for n in present}, count_objects(subject, present, T, cfg),
                       camera.motion(cfg), camera.total_pan, camera.total_log_zoom,
                       estimate_light(observed, camera, cfg), motions, accel)


def judge(claims: Claims, m: Measurement, cfg: AdherenceConfig = AdherenceConfig()) -> dict:
    """Per layer True / False (claim shown / not shown) or None (the caption does not state it, or
    the frames cannot show it); ``details`` holds what each verdict was based on."""
    layers: dict[str, bool | None] = dict.fromkeys(LAYERS)
    details: dict = {}
    if claims.objects is not None:
        wanted = [o.color_name for o in claims.objects]
        wrong_shape = [o.color_name for o in claims.objects if o.color_name in m.shapes
                       and m.shapes[o.color_name] != o.shape]
        details["subject"] = {"missing": [c for c in wanted if c not in m.present],
                              "extra": [c for c in m.present if c not in wanted],
                              "wrong_shape": wrong_shape, "count": m.count, "count_claimed": len(wanted)}
        layers["subject"] = (set(wanted) == set(m.present) and not wrong_shape and m.count == len(wanted))
    g = claims.gravity_vector()
    if g is not None:
        angle = angle_deg(m.accel, g)
        details["action"] = {"angle_deg": angle}
        layers["action"] = bool(np.isfinite(angle) and angle <= cfg.angle_tolerance_deg)
    if claims.palette is not None or claims.pattern is not None:
        details["environment"] = {"palette": m.palette, "pattern": m.pattern}
        layers["environment"] = ((claims.palette is None or claims.palette == m.palette)
                                 and (claims.pattern is None or claims.pattern == m.pattern))
    if claims.light_side is not None:
        details["lighting"] = {"x": m.light.x, "y": m.light.y, "views": m.light.num_views, "side": m.light.side,
                               "above_ok": None if m.light.above is None or claims.light_above is None
                               else m.light.above == claims.light_above}
        layers["lighting"] = None if m.light.side is None else m.light.side == claims.light_side
    if claims.camera is not None:
        details["camera"] = {"motion": m.camera, "pan": m.camera_pan, "log_zoom": m.camera_log_zoom}
        layers["camera"] = m.camera == claims.camera
    if claims.contacts is not None:
        if not claims.contacts:   # "Nothing touches the walls": no break in any tracked flight
            seen = sorted(t for mo in m.motions.values() for t in mo.contact_times)
            details["timing"] = {"claimed": None, "first_seen": seen[0] if seen else None}
            layers["timing"] = not seen
        else:
            fc = claims.contacts[0]
            name = claims.objects[fc.object].color_name
            mo = m.motions.get(name)
            first = mo.first_contact if mo else None
            error = None if first is None else first - fc.time
            surface = mo.contact_surfaces[0] if first is not None else None
            details["timing"] = {"claimed": fc.time, "object": name, "first_seen": first, "error_s": error,
                                 "within_0.1s": error is not None and abs(error) <= 0.1,
                                 "surface_claimed": fc.surface, "surface_seen": surface,
                                 "surface_ok": surface == fc.surface}
            layers["timing"] = error is not None and abs(error) <= cfg.timing_tolerance_s
    return {"layers": layers, "details": details}


# ============================================================================= many clips
@dataclass
class AdherenceClip:
    key: str
    frames: np.ndarray               # (T, H, W, 3) uint8
    fps: float
    claims: Claims
    caption: str = ""
    meta: dict = field(default_factory=dict)


def evaluate_clip(clip: AdherenceClip, cfg: AdherenceConfig = AdherenceConfig()) -> dict:
    m = measure_clip(clip.frames, clip.fps, cfg)
    return {"key": clip.key, "caption": clip.caption, **clip.meta, "claims": clip.claims.to_dict(),
            "measured": m.to_dict(), **judge(clip.claims, m, cfg)}


def aggregate(rows: list[dict]) -> dict:
    """Per layer: the fraction of judged clips whose claim the frames show (``score``), over ``n``
    judged clips; ``all_layers``: clips whose every judged layer passes. Sub-checks that are reported
    but not part of a layer: ``light_above`` (the vertical light words), ``timing_within_0.1s`` and
    ``first_contact_surface`` (the wall the first contact is with)."""
    out: dict = {"num_clips": len(rows)}
    for layer in LAYERS:
        v = [r["layers"][layer] for r in rows if r["layers"][layer] is not None]
        out[layer] = {"score": float(np.mean(v)) if v else float("nan"), "n": len(v)}
    judged = [r for r in rows if any(v is not None for v in r["layers"].values())]
    out["all_layers"] = float(np.mean([all(v for v in r["layers"].values() if v is not None) for r in judged])) \
        if judged else float("nan")
    subs = {"light_above": ("lighting", "above_ok"), "timing_within_0.1s": ("timing", "within_0.1s"),
            "first_contact_surface": ("timing", "surface_ok")}
    for name, (layer, key) in subs.items():
        v = [r["details"][layer][key] for r in rows if layer in r["details"]
             and r["details"][layer].get(key) is not None
             and (layer != "timing" or r["details"][layer]["claimed"] is not None)]
        out[name] = {"score": float(np.mean(v)) if v else float("nan"), "n": len(v)}
    return out


def evaluate_clips(clips: Iterable[AdherenceClip], cfg: AdherenceConfig = AdherenceConfig()) -> dict:
    rows = [evaluate_clip(c, cfg) for c in clips]
    return {"summary": aggregate(rows), "clips": rows}


def claims_from_text(text: str, where: str) -> Claims:
    """``parse_caption`` that refuses a text stating nothing the metric could check."""
    claims = parse_caption(text)
    if claims == Claims():
        raise ValueError(f"{where}: the caption states no synthetic-world claim (objects, gravity, contacts, wall, "
                         f"light or camera sentences of ltx_train.data.captions): {text[:120]!r}")
    return claims


def _decode(src) -> tuple[np.ndarray, float]:
    info = probe(src)
    return read_video(src), info.fps


def shard_clips(paths: Iterable[str | Path], limit: int | None = None) -> Iterator[AdherenceClip]:
    """Real clips of shards (the ceiling), judged on the claims of their annotation JSON, or of their
    caption when they have no synthetic-world annotation; samples with neither are skipped with a
    warning, as are undecodable videos."""
    count = 0
    for path in paths:
        for s in read_shard_samples(path):
            if limit is not None and count >= limit:
                return
            where = f"{path}:{s['__key__']}"
            caption = s.get("txt", b"").decode("utf-8")
            claims = None
            if "json" in s:
                try:
                    claims = claims_from_annotations(json.loads(s["json"]), where)
                except ValueError as e:
                    warnings.warn(f"{where}: {e}; using the caption")
            if claims is None and caption:
                try:
                    claims = claims_from_text(caption, where)
                except ValueError as e:
                    warnings.warn(f"{e}; skipped")
            if claims is None or "mp4" not in s:
                if claims is not None:
                    warnings.warn(f"{where}: no video, skipped")
                continue
            try:
                frames, fps = _decode(s["mp4"])
            except MediaError as e:
                warnings.warn(f"{where}: undecodable video ({e}), skipped")
                continue
            yield AdherenceClip(s["__key__"], frames, fps, claims, caption, {"source": str(path)})
            count += 1


def generated_clips(folder: str | Path, limit: int | None = None) -> Iterator[AdherenceClip]:
    """Generated ``*.mp4`` in a folder, each judged on the prompt in the ``.txt`` beside it."""
    mp4s = sorted(Path(folder).glob("*.mp4"))
    if not mp4s:
        raise FileNotFoundError(f"generated: no .mp4 in {folder}")
    for i, mp4 in enumerate(mp4s):
        if limit is not None and i >= limit:
            return
        txt = mp4.with_suffix(".txt")
        if not txt.is_file():
            raise FileNotFoundError(f"{mp4}: no prompt file {txt.name} beside it")
        caption = txt.read_text(encoding="utf-8")
        claims = claims_from_text(caption, str(txt))
        frames, fps = _decode(mp4)   # a broken file raises MediaError naming it
        yield AdherenceClip(mp4.stem, frames, fps, claims, caption, {"source": str(mp4)})


def run(shards: list[str] | None = None, generated: str | None = None, limit: int | None = None,
        out: str | None = None, cfg: AdherenceConfig = AdherenceConfig()) -> dict:
    """Score real shards (the ceiling) and/or a folder of generated clips; optional JSON report."""
    return score_sources(lambda clips: evaluate_clips(clips, cfg), shard_clips, generated_clips,
                         shards, generated, limit, out)


def main(argv: list[str] | None = None) -> None:
    clip_metric_main(run, __doc__, argv)


if __name__ == "__main__":
    main()
