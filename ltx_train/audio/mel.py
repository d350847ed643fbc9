"""Log-mel front-end in plain torch (STFT + HTK mel filterbank).

The hop is chosen so an integer number of mel frames maps to each video frame
(see ``ltx_train.timing.mel_frames_per_video_frame``); a clip of S samples has exactly
``S // hop`` mel frames, so mel frame m starts at ``m * hop / sample_rate`` seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class MelConfig:
    sample_rate: int = 24000
    n_fft: int = 1024
    hop_length: int = 250
    win_length: int = 1000
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float | None = None
    log_floor: float = 1e-5


def _hz_to_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters, area-normalised (Slaney style)."""
    n_freqs = n_fft // 2 + 1
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mels = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    lower, center, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb * (2.0 / (upper - lower))  # equal area per filter
    return fb.float()


class LogMel(nn.Module):
    """waveform (B, S) or (S,) -> log-mel (B, n_mels, S // hop)."""

    def __init__(self, cfg: MelConfig | None = None, **kwargs):
        super().__init__()
        self.cfg = cfg or MelConfig(**kwargs)
        c = self.cfg
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)
        fb = mel_filterbank(c.n_fft, c.n_mels, c.sample_rate, c.f_min, c.f_max or c.sample_rate / 2)
        self.register_buffer("fb", fb, persistent=False)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.cfg.hop_length

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, S) -> linear STFT magnitude (B, n_fft//2+1, S // hop)."""
        c = self.cfg
        spec = torch.stft(wav.float(), n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                          window=self.window, center=True, pad_mode="reflect", return_complex=True)
        return spec.abs()[..., : wav.shape[-1] // c.hop_length]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav[None]
        mel = torch.matmul(self.fb, self.magnitude(wav))
        out = torch.log(torch.clamp(mel, min=self.cfg.log_floor))
        return out[0] if squeeze else out


def lookahead_frames(cfg: MelConfig) -> int:
    """Mel frames by which a centred STFT frame peeks past its own hop.

    ``timing.py`` lets mel frame m stand for samples ``m*hop .. (m+1)*hop``, but with ``center=True``
    frame m is a window *centred* on sample ``m*hop`` and reaches ``win_length // 2`` samples ahead,
    i.e. ``win_length // 2 - hop`` samples into the next hops. Delaying the mel sequence by this many
    frames makes frame m contain nothing later than sample ``(m+1)*hop`` (1 for win 1000 / hop 250).
    A causal model that must not see the future of its time span (the audio VAE encoder) applies it.
    """
    reach = max(0, cfg.win_length // 2 - cfg.hop_length)
    return -(-reach // cfg.hop_length)


def log_mel_to_magnitude(log_mel: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """log-mel (B, n_mels, F) -> linear STFT magnitude (B, n_fft//2+1, F) by the filterbank's pseudo-inverse.

    The mel filterbank is many-to-one, so this is a least-squares guess, clamped non-negative
    (magnitudes cannot be negative); it is what Griffin-Lim starts from.
    """
    pinv = torch.linalg.pinv(fb.double()).to(log_mel.dtype)  # (n_freqs, n_mels)
    return torch.clamp(torch.matmul(pinv, log_mel.exp()), min=0.0)
