"""Audio onsets and audio-video sync of impact sounds.

An impact in the synthetic world makes a sound that starts exactly at the contact instant, so the
sync of a clip is how far each visual contact is from the nearest audio onset. Onsets come from a
log-compressed spectral flux on a short-hop STFT: a steady background (hum, noise, a ringing tail)
gives little flux, while a new impact adds energy across many bins at once.

Times are seconds from the first video frame (``ltx_train.timing`` conventions: frame i at i / fps,
audio sample s at s / sample_rate).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter


SYNC_TOLERANCE_FRAMES = 2  # DESIGN: impact sounds within 2 video frames of visual contacts


@dataclass(frozen=True)
class OnsetConfig:
    win_s: float = 0.008        # short window: the attack of an impact is a few ms
    hop_s: float = 0.001        # 1 ms hop so the onset grid is far finer than a video frame
    compression: float = 100.0  # log(1 + c|X|): loud and quiet impacts give comparable flux
    median_s: float = 0.15      # adaptive threshold follows slow changes of the background
    delta: float = 4.0          # threshold = median + delta * robust scale of the flux
    rel_floor: float = 0.1      # ignore peaks below this fraction of the clip's largest peak
    min_gap_s: float = 0.04     # one onset per impact: ringing tails re-trigger within tens of ms
    refine_s: float = 0.01      # search span before a flux peak for the actual attack sample


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(S,) or (C, S) float -> (S,) float64 mean over channels."""
    audio = np.asarray(audio, dtype=np.float64)
    audio = np.nan_to_num(audio)   # a diverged generator can emit NaN samples: treat them as silence
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def spectral_flux(audio: np.ndarray, sample_rate: int, win_s: float = 0.008, hop_s: float = 0.001,
                  compression: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Half-wave rectified log-spectral flux.

    Returns (flux (M,), times (M,)); ``times[m]`` is the end of frame m's window, i.e. the latest
    sample that can have caused the flux increase at m, so a peak never comes before its cause.
    """
    x = to_mono(audio)
    win = max(8, int(round(win_s * sample_rate)))
    hop = max(1, int(round(hop_s * sample_rate)))
    if len(x) < win + hop:
        return np.zeros(0), np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]     # (M, win)
    mag = np.abs(np.fft.rfft(frames * np.hanning(win), axis=1))
    logmag = np.log1p(compression * mag)
    flux = np.maximum(np.diff(logmag, axis=0), 0.0).sum(axis=1)
    flux = np.concatenate([[0.0], flux])
    times = (np.arange(len(flux)) * hop + win) / sample_rate
    return flux, times


def pick_peaks(flux: np.ndarray, times: np.ndarray, cfg: OnsetConfig = OnsetConfig()) -> np.ndarray:
    """Indices of local maxima above an adaptive threshold, at least ``min_gap_s`` apart."""
    if len(flux) < 3 or flux.max() <= 0:
        return np.zeros(0, dtype=int)
    hop_s = times[1] - times[0]
    med = median_filter(flux, size=max(3, int(cfg.median_s / hop_s)) | 1, mode="nearest")
    scale = 1.4826 * np.median(np.abs(flux - med)) + 1e-12
    above = flux > np.maximum(med + cfg.delta * scale, cfg.rel_floor * flux.max())
    local_max = np.r_[False, (flux[1:-1] >= flux[:-2]) & (flux[1:-1] > flux[2:]), False]
    candidates = np.flatnonzero(above & local_max)
    # The first rise of an impact is its onset; a larger peak a few ms later in the same
    # impact must not move the onset, so keep the earliest candidate of each cluster.
    kept: list[int] = []
    for c in candidates:
        if not kept or times[c] - times[kept[-1]] >= cfg.min_gap_s:
            kept.append(int(c))
    return np.array(kept, dtype=int)


def refine_onset(x: np.ndarray, sample_rate: int, t_peak: float, span_s: float) -> float:
    """Attack time near a flux peak: first sample within ``span_s`` before it whose amplitude
    reaches a quarter of the peak amplitude of the attack, above the level just before the span."""
    end = min(len(x), int(round(t_peak * sample_rate)) + 1)
    start = max(0, end - int(round(span_s * sample_rate)))
    if end - start < 4:
        return t_peak
    seg = np.abs(x[start:end])
    pre = np.abs(x[max(0, start - int(0.005 * sample_rate)):start])
    floor = pre.max() if len(pre) else 0.0
    peak = seg.max()
    if peak <= floor:
        return t_peak
    first = np.flatnonzero(seg >= floor + 0.25 * (peak - floor))[0]
    return (start + first) / sample_rate


def detect_onsets(audio: np.ndarray, sample_rate: int, cfg: OnsetConfig = OnsetConfig()) -> np.ndarray:
    """Onset times in seconds (sorted) of the impact sounds in ``audio`` ((S,) or (C, S))."""
    x = to_mono(audio)
    if not np.any(np.isfinite(x)) or np.abs(x).max() < 1e-6:
        return np.zeros(0)
    flux, times = spectral_flux(x, sample_rate, cfg.win_s, cfg.hop_s, cfg.compression)
    peaks = pick_peaks(flux, times, cfg)
    return np.array([refine_onset(x, sample_rate, times[p], cfg.refine_s) for p in peaks])


def sync_errors_ms(contact_times: np.ndarray, onset_times: np.ndarray) -> np.ndarray:
    """For each visual contact, |nearest audio onset - contact| in ms (NaN when there is no onset)."""
    contact_times = np.asarray(contact_times, dtype=np.float64).reshape(-1)
    onset_times = np.asarray(onset_times, dtype=np.float64).reshape(-1)
    if len(onset_times) == 0:
        return np.full(len(contact_times), np.nan)
    d = np.abs(contact_times[:, None] - onset_times[None, :]).min(axis=1)
    return 1000.0 * d


def sync_summary(errors_ms: np.ndarray, fps: float) -> dict:
    """Mean / median error and the fraction within two video frames (the DESIGN target).

    A contact with no audio onset at all (NaN) counts as out of tolerance and is excluded from
    the mean and median, so a silent clip is visible as a low fraction, not as a NaN mean.
    """
    e = np.asarray(errors_ms, dtype=np.float64).reshape(-1)
    finite = e[np.isfinite(e)]
    tol_ms = 1000.0 * SYNC_TOLERANCE_FRAMES / fps
    return {
        "num_contacts": int(len(e)),
        "mean_ms": float(finite.mean()) if len(finite) else float("nan"),
        "median_ms": float(np.median(finite)) if len(finite) else float("nan"),
        "within_2_frames": float(np.mean(np.nan_to_num(e, nan=np.inf) <= tol_ms)) if len(e) else float("nan"),
    }
