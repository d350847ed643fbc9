"""Write an mp4 (H.264 video + AAC audio) with PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
              sample_rate: int = 24000, crf: int = 18) -> None:
    """frames: (T, H, W, 3) uint8; audio: (S,) or (channels, S) float in [-1, 1] or None.

    H and W must be even (yuv420p). Written to a temporary name and renamed, so a reader never
    sees a half-written file.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: frames must be (T, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    tmp = path.with_name(path.name + ".tmp.mp4")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(tmp), mode="w") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height = frames.shape[2], frames.shape[1]
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        as_ = None
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim == 1:
                audio = audio[None]
            as_ = container.add_stream("aac", rate=sample_rate)
            as_.layout = "mono" if audio.shape[0] == 1 else "stereo"
        for f in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        if as_ is not None:
            a = np.clip(audio, -1.0, 1.0)
            frame_size = 1024
            for start in range(0, a.shape[1], frame_size):
                chunk = np.ascontiguousarray(a[:, start:start + frame_size])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp",
                                                layout="mono" if a.shape[0] == 1 else "stereo")
                af.sample_rate = sample_rate
                af.pts = start
                for packet in as_.encode(af):
                    container.mux(packet)
            for packet in as_.encode():
                container.mux(packet)
    tmp.replace(path)
