"""Subject layer: the palette colours seen in a clip, their shapes and the object count."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ltx_train.data.synth_palette import PALETTES
from ltx_train.data.synth_world import PALETTE
from ltx_train.eval.adherence.camera import drop_wall_blobs
from ltx_train.eval.adherence.config import AdherenceConfig
from ltx_train.eval.look import background_colour
from ltx_train.eval.physics import (TrackConfig, chromaticity, colour_mask, hue_tolerances, largest_blob,
                                    soft_centroid, touches_border)


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
