"""Video tensors <-> uint8 frames, side-by-side layouts and PNG writing (no PIL dependency)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """video: (3, T, H, W) float in [-1, 1] -> (T, H, W, 3) uint8 (values outside are clipped)."""
    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"expected (3, T, H, W), got {tuple(video.shape)}")
    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def side_by_side(*videos: torch.Tensor) -> np.ndarray:
    """Several (3, T, H, W) clips in [-1, 1] -> one (T, H, sum W, 3) uint8 clip, left to right."""
    return np.concatenate([to_uint8_frames(v) for v in videos], axis=2)


def frame_grid(rows: list[np.ndarray], max_columns: int = 8) -> np.ndarray:
    """rows: (T, H, W, 3) uint8 clips -> (rows*H, cols*W, 3) image; columns are evenly spaced frames."""
    t = rows[0].shape[0]
    idx = np.unique(np.linspace(0, t - 1, min(max_columns, t)).round().astype(int))
    return np.concatenate([np.concatenate(list(r[idx]), axis=1) for r in rows], axis=0)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """image: (H, W, 3) uint8 -> 8-bit RGB PNG."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {image.dtype} {image.shape}")
    h, w, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))  # filter type 0 per scanline

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    Path(path).write_bytes(png)
