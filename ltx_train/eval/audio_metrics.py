"""Audio reconstruction metrics: small pure functions, one value per clip.

Each returns a (B,) tensor so callers can drop clips without audio (``masked_mean``) before
averaging. Log-mels are natural logs of mel *magnitudes* (``ltx_train.audio.mel.LogMel``), so
``20 / ln 10`` turns a log-mel difference into decibels.
"""
from __future__ import annotations

import math

import torch

DB_PER_NEPER = 20.0 / math.log(10.0)

# (n_fft, hop, win) triples of Parallel WaveGAN's multi-resolution STFT loss.
MR_STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-clip ``values`` (B,) over clips where ``mask`` (B,) is True; 0 if there are none.

    Masked-out clips are multiplied by exactly zero (``torch.where``), so neither their value nor their
    gradient reaches the result, and an all-False mask still returns a zero connected to the graph.
    """
    w = mask.to(values.dtype)
    return torch.where(mask, values, torch.zeros_like(values)).sum() / w.sum().clamp(min=1.0)


def mel_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute log-mel difference; pred, target: (B, n_mels, F) -> (B,)."""
    return (pred - target).abs().flatten(1).mean(1)


def log_spectral_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LSD in dB: per frame RMS over bins of the log-power difference, averaged over frames.

    pred, target: log-magnitude spectra (B, bins, F) -> (B,).
    """
    diff_db = DB_PER_NEPER * (pred - target)
    return diff_db.pow(2).mean(1).sqrt().mean(1)


def spectral_convergence(pred_mag: torch.Tensor, target_mag: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """||target - pred||_F / ||target||_F per clip; magnitudes (B, bins, F) -> (B,)."""
    num = (target_mag - pred_mag).flatten(1).norm(dim=1)
    return num / target_mag.flatten(1).norm(dim=1).clamp(min=eps)


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """(B, S) -> (B, n_fft//2+1, frames) Hann-window STFT magnitude."""
    window = torch.hann_window(win, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft, hop, win, window, center=True, pad_mode="reflect", return_complex=True)
    return spec.abs()


def multi_resolution_stft_distance(pred: torch.Tensor, target: torch.Tensor,
                                   resolutions: tuple[tuple[int, int, int], ...] = MR_STFT_RESOLUTIONS,
                                   eps: float = 1e-5) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions; waves (B, S) -> (B,).

    Several window sizes so neither time nor frequency smearing alone can hide an error;
    0 for identical signals.
    """
    total = torch.zeros(pred.shape[0], device=pred.device, dtype=pred.dtype)
    for n_fft, hop, win in resolutions:
        p, t = stft_magnitude(pred, n_fft, hop, win), stft_magnitude(target, n_fft, hop, win)
        log_l1 = (torch.log(p.clamp(min=eps)) - torch.log(t.clamp(min=eps))).abs().flatten(1).mean(1)
        total = total + spectral_convergence(p, t) + log_l1
    return total / len(resolutions)


def si_sdr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019); waves (B, S) -> (B,).

    Phase-sensitive: a vocoder that gets the spectrum right with other phases scores low, so read it
    next to the spectral metrics, not instead of them.
    """
    pred = pred - pred.mean(-1, keepdim=True)
    target = target - target.mean(-1, keepdim=True)
    alpha = (pred * target).sum(-1, keepdim=True) / target.pow(2).sum(-1, keepdim=True).clamp(min=eps)
    signal = alpha * target
    noise = pred - signal
    return 10 * torch.log10(signal.pow(2).sum(-1).clamp(min=eps) / noise.pow(2).sum(-1).clamp(min=eps))
