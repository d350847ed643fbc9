"""One place for the time axis shared by video frames, video latents, mel frames and audio latents.

Every part of the model (data pipeline, audio VAE, DiT RoPE, physics heads, evaluation) converts
between indices and seconds with these functions, so "the same instant" means the same thing everywhere.

Conventions
- Video frame i is shown at ``i / fps`` seconds.
- The causal video VAE encodes frame 0 alone and then groups of ``tc`` frames: latent 0 covers
  frame 0, latent j >= 1 covers frames ``(j-1)*tc + 1 .. j*tc``. Its time is the mean time of the
  frames it covers.
- Mel frame m covers samples ``m*hop .. (m+1)*hop`` and its time is the start ``m*hop / sr``.
- Audio latent k covers ``ac`` mel frames starting at ``k*ac``; its time is the start of the span.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where needed: the NumPy-only renderer workers use this module too
    import torch


def mel_frames_per_video_frame(sample_rate: int, hop_length: int, fps: float) -> int:
    """Integer number of mel frames per video frame; raises if the hop does not divide a frame."""
    samples_per_frame = sample_rate / fps
    ratio = samples_per_frame / hop_length
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ValueError(
            f"audio.hop_length={hop_length} does not divide one video frame "
            f"({sample_rate} Hz / {fps} fps = {samples_per_frame:g} samples); choose a hop so that "
            "an integer number of mel frames maps to each video frame")
    return int(round(ratio))


def clip_num_samples(num_frames: int, fps: float, sample_rate: int) -> int:
    """Audio samples spanning ``num_frames`` video frames: ``num_frames / fps`` seconds (rounded)."""
    return int(round(num_frames * sample_rate / fps))


def num_latent_frames(num_frames: int, temporal_compression: int) -> int:
    """1 + k latents for 1 + tc*k frames (causal VAE layout)."""
    if (num_frames - 1) % temporal_compression != 0:
        raise ValueError(f"num_frames={num_frames} must be 1 + {temporal_compression}*k for a "
                         f"causal VAE with temporal compression {temporal_compression}")
    return 1 + (num_frames - 1) // temporal_compression


def video_latent_times(num_latents: int, fps: float, temporal_compression: int) -> torch.Tensor:
    """(num_latents,) time in seconds of each video latent frame (mean of the frames it covers)."""
    import torch

    j = torch.arange(num_latents, dtype=torch.float64)
    tc = temporal_compression
    first = (j - 1) * tc + 1
    mid = torch.where(j == 0, torch.zeros_like(j), first + (tc - 1) / 2)
    return (mid / fps).float()


def audio_latent_times(num_latents: int, sample_rate: int, hop_length: int,
                       audio_compression: int) -> torch.Tensor:
    """(num_latents,) start time in seconds of each audio latent."""
    import torch

    k = torch.arange(num_latents, dtype=torch.float64)
    return (k * audio_compression * hop_length / sample_rate).float()


def audio_latent_index(t_seconds: float, sample_rate: int, hop_length: int, audio_compression: int) -> int:
    """Index of the audio latent whose span contains time ``t_seconds``."""
    return int(t_seconds * sample_rate // (hop_length * audio_compression))


def video_latent_index(frame: int, temporal_compression: int) -> int:
    """Index of the video latent that covers video frame ``frame``."""
    return 0 if frame == 0 else (frame - 1) // temporal_compression + 1
