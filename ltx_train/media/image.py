"""The conditioning image of image-to-video: the first frame of an image or video file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ltx_train.media.source import MediaError, open_av, reading
from ltx_train.media.video import read_video

# Still images go to PyAV's image demuxers; decord reads only videos.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def _first_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 frame 0 of the file."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return read_video(path, [0])[0]
    with reading(path, "image"), open_av(path) as c:
        if not c.streams.video:
            raise MediaError(f"{path}: no image in the file")
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def read_first_frame(path: str | Path, height: int, width: int) -> torch.Tensor:
    """First frame of an image or video file -> (3, height, width) float32 in [-1, 1].

    Resized (bilinear, antialiased) so it covers height x width, then centre-cropped: the aspect
    ratio is kept and the longer side loses its edges, as the data pipeline's validation crop does.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    frame = _first_rgb(path)
    x = torch.from_numpy(frame).permute(2, 0, 1).float()[None] / 127.5 - 1.0
    scale = max(height / x.shape[2], width / x.shape[3])
    x = F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
    top, left = (x.shape[2] - height) // 2, (x.shape[3] - width) // 2
    return x[0, :, top:top + height, left:left + width].clamp(-1, 1)
