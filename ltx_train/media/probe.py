"""What a media file holds, read once before deciding how to cut or decode it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltx_train.media.audio import has_sound
from ltx_train.media.source import MediaError, Source, describe, open_av, open_decord, reading


@dataclass(frozen=True)
class MediaInfo:
    fps: float          # decord's average frame rate: frame i is at i / fps
    num_frames: int     # decodable frames (decord's count, the index range of read_video)
    width: int
    height: int
    has_audio: bool     # an audio stream with at least one non-zero sample (see media/audio.py)
    sample_rate: int    # of the audio track; 0 without audio
    channels: int       # of the audio track; 0 without audio


def probe(src: Source) -> MediaInfo:
    """Frame rate, frame count, size and audio of ``src``; MediaError if no video frame decodes.

    Decodes frame 0 (headers can parse while frames do not) and the audio up to its first non-zero
    sample (an empty or all-zero track counts as no audio).
    """
    with reading(src, "video"):
        vr = open_decord(src)
        num, fps = len(vr), float(vr.get_avg_fps())
        if num == 0:
            raise MediaError(f"{describe(src)}: no video frames")
        height, width = vr[0].shape[:2]
        if not (np.isfinite(fps) and fps > 0):
            raise MediaError(f"{describe(src)}: unknown frame rate")
    with reading(src, "audio"), open_av(src) as c:
        audio = has_sound(c)
        ctx = c.streams.audio[0].codec_context if audio else None
        rate, channels = (int(ctx.sample_rate), int(ctx.channels)) if ctx is not None else (0, 0)
    return MediaInfo(fps, num, int(width), int(height), audio, rate, channels)
