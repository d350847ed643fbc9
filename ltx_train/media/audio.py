"""Read an audio track with PyAV, on the video's clock.

Sample n of what ``read_audio`` returns is at ``start_s + n / sample_rate`` seconds of the video
clock (frame i at i / fps): the decoders apply the mp4 edit list that hides the AAC priming, and a
track that starts late is placed by its first timestamp. The decoded track is zero-padded to a
whole AAC frame at its end, so callers that know the clip length pass ``duration_s`` (the video
span, T / fps) rather than trusting the track's length (``data/README.md``, audio alignment).

No audio. A file has audio only when its first audio stream holds something: a missing stream,
a stream that decodes to no samples, and one that decodes to nothing but the zeros of a single AAC
frame (what an encoder flushes for an empty input) all count as none, so an empty track is never
trained on as silence. A longer track of digital zeros does count as audio (silence): a clip cut
from a quiet stretch of a real track looks exactly like that, and it is real silence.
"""
from __future__ import annotations

from typing import Iterable

import av
import numpy as np

from ltx_train.media.source import Source, open_av, reading


EMPTY_TRACK_SAMPLES = 1024  # one AAC frame: all an encoder emits for a track with no input


def _is_empty(frames: Iterable[av.AudioFrame], seen: int = 0, sound: bool = False) -> bool:
    """Does the rest of the track (after ``seen`` samples, ``sound`` if any was non-zero) hold nothing?

    Reads frames only while the answer is open: at most one AAC frame of a real track."""
    for frame in frames:
        if sound or seen > EMPTY_TRACK_SAMPLES:
            break
        seen += frame.samples
        sound = bool(np.any(frame.to_ndarray()))
    return not sound and seen <= EMPTY_TRACK_SAMPLES


def has_sound(container: av.container.InputContainer) -> bool:
    """The open container's first audio stream is there and not empty (see the module docstring)."""
    return bool(container.streams.audio) and not _is_empty(container.decode(container.streams.audio[0]))


def read_audio(src: Source, start_s: float = 0.0, duration_s: float | None = None,
               sample_rate: int | None = None, mono: bool = False) -> np.ndarray | None:
    """Audio (C, S) float32 covering [start_s, start_s + duration_s) of the video clock, or None without audio.

    sample_rate: resample to this rate (None: the track's own). C is 1 when ``mono`` or the track is
    mono, else 2 (a mix to stereo: what ``write_mp4`` writes). S = round(duration_s * rate); samples
    the track does not cover are zeros. duration_s None reads to the end of the decoded track.
    Decoding stops once the span is covered, so a clip of a long file costs only its prefix.
    """
    with reading(src, "audio"), open_av(src) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        rate = int(sample_rate or stream.codec_context.sample_rate)
        layout = "mono" if mono or stream.codec_context.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        start = int(round(start_s * rate))
        stop = None if duration_s is None else start + int(round(duration_s * rate))
        chunks, have, first, seen, sound = [], 0, None, 0, False
        frames = c.decode(stream)
        for frame in frames:
            if not sound and seen <= EMPTY_TRACK_SAMPLES:  # could still be an empty track
                seen, sound = seen + frame.samples, bool(np.any(frame.to_ndarray()))
            if first is None:  # the track may not start at 0 s; keep samples on the video's clock
                first = int(round(float(frame.pts * frame.time_base) * rate)) if frame.pts is not None else 0
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
                have += chunks[-1].shape[1]
            if stop is not None and first + have >= stop + rate // 10:  # margin for the resampler's delay
                break
        else:
            chunks += [out.to_ndarray() for out in resampler.resample(None)]
        wav = np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((1, 0), np.float32)
        if not sound and seen <= EMPTY_TRACK_SAMPLES and _is_empty(frames, seen):
            return None
    first = first or 0
    stop = first + wav.shape[1] if stop is None else stop
    out = np.zeros((wav.shape[0], max(stop - start, 0)), np.float32)
    lo, hi = max(start - first, 0), min(stop - first, wav.shape[1])  # the span, as indices into wav
    if hi > lo:
        out[:, lo + first - start:hi + first - start] = wav[:, lo:hi]
    return out
