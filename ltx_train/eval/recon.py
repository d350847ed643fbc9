"""Reconstruction quality of a video VAE: PSNR / SSIM over a dataloader, JSON report, and
side-by-side original|reconstruction mp4s plus PNG frame grids for the first few clips.

PSNR is computed per clip (on [0, 1] pixels) and averaged over clips; SSIM is averaged over every
frame of every clip. Output layout::

    out_dir/report.json
    out_dir/videos/clip_000.mp4     original | reconstruction, side by side
    out_dir/grids/clip_000.png      row 1 original, row 2 reconstruction, up to 8 frames
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ltx_train.eval.video_io import frame_grid, side_by_side, to_uint8_frames, write_png
from ltx_train.models.vae import TileConfig, VideoVAE, crop_to_valid


def psnr_values(pred: torch.Tensor, target: torch.Tensor, dim: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    """PSNR (dB) of [0, 1] pixels, one value per item of dim 0 (the MSE over ``dim``: (1, 2, 3) is per
    image of (N, C, H, W), (1, 2, 3, 4) per clip of (N, C, T, H, W)); inf for identical items."""
    return peak_signal_noise_ratio(pred, target, data_range=1.0, dim=dim, reduction="none")


def ssim_values(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of [0, 1] images (N, C, H, W), one value per image (torchmetrics' 11x11 Gaussian window)."""
    return structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")


class NoClipsError(ValueError):
    """``batches`` held no clip to score (the caller knows why: e.g. every sample was skipped)."""


@torch.no_grad()
def evaluate_reconstruction(model: VideoVAE, batches: Iterable, out_dir: str | Path, max_videos_to_save: int = 4,
                            tile: TileConfig | None = None, fps: float = 24.0) -> dict:
    """Encode (posterior mode) and decode every clip of ``batches`` and score the reconstructions.

    batches: dicts with ``video`` (B, 3, T, H, W) in [-1, 1] (the DataModule contract; ``fps`` and
    ``key`` are used when present) or bare video tensors. Clips are cropped to a valid VAE input.
    Returns the report dict that is also written to ``out_dir/report.json``.
    """
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    (out_dir / "grids").mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    per_clip, saved = [], []
    start = time.perf_counter()
    for batch in batches:
        video = batch["video"] if isinstance(batch, Mapping) else batch
        x = crop_to_valid(video, model.spatial_compression, model.temporal_compression).to(device).float()
        recon = model.decode(model.encode(x, tile=tile).mode(), tile=tile).float().clamp(-1, 1)
        x01, r01 = (x + 1) / 2, (recon + 1) / 2
        clip_psnr = psnr_values(r01, x01, dim=(1, 2, 3, 4)).reshape(-1)
        b, _, t = x.shape[:3]
        frame_ssim = ssim_values(r01.transpose(1, 2).flatten(0, 1), x01.transpose(1, 2).flatten(0, 1)).reshape(b, t)
        keys = batch.get("key") if isinstance(batch, Mapping) else None
        fpss = batch.get("fps") if isinstance(batch, Mapping) else None
        for i in range(b):
            idx = len(per_clip)
            entry = {"index": idx, "key": keys[i] if keys is not None else str(idx),
                     "psnr": float(clip_psnr[i]), "ssim": float(frame_ssim[i].mean())}
            if idx < max_videos_to_save:
                clip_fps = float(fpss[i]) if fpss is not None else fps
                entry["video"], entry["grid"] = _save_clip(out_dir, idx, x[i], recon[i], clip_fps)
                saved.append(entry["video"])
            per_clip.append(entry)
    model.train(was_training)
    if not per_clip:
        raise NoClipsError("evaluate_reconstruction: no clips in batches")
    report = {
        "psnr": sum(c["psnr"] for c in per_clip) / len(per_clip),
        "ssim": sum(c["ssim"] for c in per_clip) / len(per_clip),
        "num_clips": len(per_clip),
        "clip_shape": list(x.shape[1:]),
        "tile": asdict(tile) if tile is not None else None,
        "seconds": time.perf_counter() - start,
        "vae": model.config.to_dict(),
        "videos": saved,
        "clips": per_clip,
    }
    if not all(math.isfinite(c["psnr"]) for c in per_clip):
        report["note"] = "some clips were reconstructed exactly (infinite PSNR)"
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, allow_nan=True))
    return report


def _save_clip(out_dir: Path, idx: int, x: torch.Tensor, recon: torch.Tensor, fps: float) -> tuple[str, str]:
    """Write the side-by-side mp4 and the frame-grid PNG of one clip; return their paths."""
    from ltx_train.media import write_mp4  # PyAV only when a clip is saved: scoring alone needs no codec
    video_path, grid_path = out_dir / "videos" / f"clip_{idx:03d}.mp4", out_dir / "grids" / f"clip_{idx:03d}.png"
    frames = side_by_side(x, recon)
    if frames.shape[1] % 2 or frames.shape[2] % 2:  # yuv420p needs even sizes
        frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
    write_mp4(video_path, frames, fps)
    write_png(grid_path, frame_grid([to_uint8_frames(x), to_uint8_frames(recon)]))
    return str(video_path), str(grid_path)
