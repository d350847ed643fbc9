"""Read video frames: decord (fast random access, straight from bytes), with PyAV where decord is wrong.

decord returns RGB frames of some widths with the wrong channel count: measured on H.264 yuv420p
clips, widths 8, 16, 24, 48 and 72 come back as (H, W, 12|6|4) arrays of scrambled pixels (the
converted rows are padded and decord divides the padded size by H * W), and ``get_batch`` then fails
its size check. Which widths are hit depends on the scaler's row alignment, so instead of a width
list the failure itself is detected and those reads go to PyAV, which decodes from the start of the
file (slow for long videos, but every width known to fail is tiny).
"""
from __future__ import annotations

from typing import Callable, Sequence

import decord
import numpy as np

from ltx_train.media.source import MediaError, Source, describe, open_av, open_decord, reading


def _checked_indices(src: Source, indices: Sequence[int], num_frames: int) -> list[int]:
    idx = [int(i) for i in indices]
    if not idx:
        raise MediaError(f"{describe(src)}: no frame indices asked for")
    bad = [i for i in idx if not 0 <= i < num_frames]
    if bad:
        raise MediaError(f"{describe(src)}: frame {bad[0]} asked for, the video has {num_frames} frames")
    return idx


def _pyav_frames(src: Source, idx: list[int]) -> np.ndarray:
    """The frames at ``idx`` (any order, repeats allowed), decoding sequentially from frame 0."""
    wanted, last, got = set(idx), max(idx), {}
    with open_av(src) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    if len(got) < len(wanted):
        raise MediaError(f"{describe(src)}: PyAV decoded only {len(got)} of the {len(wanted)} frames asked for")
    return np.stack([got[i] for i in idx])


def _frames(vr: decord.VideoReader, src: Source, idx: list[int]) -> np.ndarray:
    try:
        frames = vr.get_batch(idx).asnumpy()
    except decord.DECORDError:
        if vr[idx[0]].shape[-1] == 3:  # a genuinely broken stream, not the channel-count bug
            raise
        return _pyav_frames(src, idx)
    if frames.ndim != 4 or frames.shape[-1] != 3:  # never seen, but never hand out scrambled pixels
        return _pyav_frames(src, idx)
    return frames


def read_clip(src: Source, pick: Callable[[int, float], Sequence[int]], num_threads: int = 1
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """Read the frames ``pick(num_frames, fps)`` chooses, opening the video once.

    Returns (frames (T, H, W, 3) uint8, source frame indices (T,) int64, source fps). Frame i of the
    source is at i / fps seconds (decord's index is the presentation order).
    """
    with reading(src, "video"):
        vr = open_decord(src, num_threads)
        num_src, fps = len(vr), float(vr.get_avg_fps())
        if not num_src or not np.isfinite(fps) or fps <= 0:
            raise MediaError(f"{describe(src)}: video has {num_src} frames at {fps} fps")
        idx = _checked_indices(src, pick(num_src, fps), num_src)
        return _frames(vr, src, idx), np.asarray(idx, np.int64), fps


def read_video(src: Source, frame_indices: Sequence[int] | None = None, num_threads: int = 1) -> np.ndarray:
    """frames (T, H, W, 3) uint8: the source frames at ``frame_indices`` in that order (all when None)."""
    return read_clip(src, lambda n, fps: range(n) if frame_indices is None else frame_indices, num_threads)[0]
