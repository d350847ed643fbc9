"""Griffin-Lim: the no-training baseline a learned vocoder has to beat.

log-mel -> linear magnitude by the filterbank's pseudo-inverse (clamped non-negative) -> phase found by
alternating projections between "has this magnitude" and "is a consistent STFT" (torch.stft/istft with
the front-end's own window, so the result's mel matches what ``LogMel`` measures).
"""
from __future__ import annotations

import torch

from ltx_train.audio.mel import LogMel, log_mel_to_magnitude


def griffin_lim(log_mel: torch.Tensor, mel: LogMel, n_iter: int = 32, momentum: float = 0.99,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """log-mel (B, n_mels, F) -> waveform (B, F * hop).

    ``momentum`` is the "fast Griffin-Lim" extrapolation (Perraudin et al. 2013); 0 gives the classic
    algorithm. Phases start random (``generator`` makes it reproducible).
    """
    c = mel.cfg
    squeeze = log_mel.dim() == 2
    if squeeze:
        log_mel = log_mel[None]
    num_frames = log_mel.shape[-1]
    length = num_frames * c.hop_length
    mag = log_mel_to_magnitude(log_mel.float(), mel.fb)  # (B, n_freqs, F)
    # A centred STFT of F*hop samples has F+1 frames; LogMel drops the last, so repeat it back.
    mag = torch.cat([mag, mag[..., -1:]], dim=-1)
    window = mel.window.to(mag.device)

    def stft(x):
        return torch.stft(x, c.n_fft, c.hop_length, c.win_length, window, center=True,
                          pad_mode="reflect", return_complex=True)

    def istft(s):
        return torch.istft(s, c.n_fft, c.hop_length, c.win_length, window, center=True, length=length)

    phase = torch.rand(mag.shape, generator=generator, device=mag.device) * (2 * torch.pi)
    spec = torch.polar(mag, phase)
    prev = torch.zeros_like(spec)
    for _ in range(n_iter):
        rebuilt = stft(istft(spec))
        accel = rebuilt + momentum * (rebuilt - prev) if momentum else rebuilt
        prev = rebuilt
        spec = torch.polar(mag, torch.angle(accel))
    wav = istft(spec).clamp(-1.0, 1.0)
    return wav[0] if squeeze else wav
