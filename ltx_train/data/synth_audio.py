"""Impact sounds of the synthetic world: modal synthesis started at the exact contact instants.

Each impact is a few exponentially damped sinusoids (the object's vibration modes; inharmonic for
metal and glass) plus a short noise burst (the click of the hit). Pitch and decay depend on the
material and size, loudness on the normal impact speed. Sample n of the track is at time n / sr, and
every impact term is evaluated at tau = n / sr - t_contact for n >= ceil(t_contact * sr), so the sound
starts at the contact time with sub-sample accuracy rather than at a frame or sample boundary.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Voice:
    freq: tuple[float, float]   # fundamental range, Hz, for a reference-size object
    partials: tuple[float, ...]  # mode frequency ratios
    decay: float                # seconds, time constant of the fundamental
    noise: float                # level of the click relative to the modes
    noise_decay: float          # seconds
    noise_pole: float           # low-pass pole of the click (higher = duller)


VOICES = {
    "rubber": Voice((150.0, 260.0), (1.0, 1.59, 2.3), 0.045, 0.35, 0.006, 0.85),
    "metal": Voice((900.0, 1600.0), (1.0, 2.76, 5.40, 8.93), 0.35, 0.2, 0.003, 0.2),
    "clay": Voice((80.0, 140.0), (1.0, 1.9), 0.02, 0.7, 0.012, 0.93),
    "glass": Voice((1800.0, 3000.0), (1.0, 2.32, 4.25), 0.18, 0.25, 0.002, 0.1),
}
def one_pole_lowpass(x: np.ndarray, pole: float) -> np.ndarray:
    """y[n] = pole * y[n-1] + (1 - pole) * x[n], as a convolution with its impulse response cut at 1e-6.

    NumPy only: scipy.signal would cost every render worker a second of import time.
    """
    taps = int(np.ceil(np.log(1e-6) / np.log(pole))) if pole > 0 else 1
    kernel = (1 - pole) * pole ** np.arange(taps)
    return np.convolve(x, kernel)[: len(x)]


REFERENCE_SIZE = 0.085   # world units; smaller objects ring higher
PEAK = 0.9


def impact_sound(material: str, size: float, speed: float, sample_rate: int, rng: np.random.Generator,
                 offset: float = 0.0) -> np.ndarray:
    """One impact, (L,) float32, evaluated at tau = n / sr + offset (offset in [0, 1/sr) seconds)."""
    v = VOICES[material]
    f0 = rng.uniform(*v.freq) * np.sqrt(REFERENCE_SIZE / size)
    gain = 0.5 * min(speed / 2.0, 1.0) ** 0.8
    length = int(min(6 * max(v.decay, v.noise_decay), 1.5) * sample_rate) + 1
    tau = np.arange(length) / sample_rate + offset
    out = np.zeros(length, np.float64)
    for k, ratio in enumerate(v.partials):
        f = f0 * ratio * rng.uniform(0.98, 1.02)
        if f >= 0.45 * sample_rate:  # no aliased modes at low sample rates
            continue
        out += rng.uniform(0.5, 1.0) / (k + 1) * np.exp(-tau * ratio ** 0.5 / v.decay) * np.sin(2 * np.pi * f * tau)
    click = rng.standard_normal(length)
    for _ in range(2):  # two one-pole stages: -12 dB/octave, so dull materials really sound dull
        click = one_pole_lowpass(click, v.noise_pole)
    click /= np.abs(click).max() + 1e-9
    out += v.noise * click * np.exp(-tau / v.noise_decay)
    return (gain * out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def ambience(num_samples: int, sample_rate: int, level_db: float, rng: np.random.Generator) -> np.ndarray:
    """Quiet low-passed room noise at ``level_db`` dBFS RMS, (S,) float32."""
    pole = np.exp(-2 * np.pi * 400.0 / sample_rate)  # ~400 Hz rumble
    x = one_pole_lowpass(rng.standard_normal(num_samples), pole)
    x *= 10 ** (level_db / 20) / (np.sqrt(np.mean(x * x)) + 1e-12)
    return x.astype(np.float32)


def render_audio(contacts: list[dict], objects: list, num_samples: int, sample_rate: int, seed: int,
                 ambience_db: float = -45.0, noise_seed: int | None = None) -> np.ndarray:
    """Mix the impact of every contact into ambience; (S,) float32 in [-PEAK, PEAK].

    contacts: dicts with ``time`` (s), ``object`` (index into objects), ``speed`` (world units/s).
    ``noise_seed``: the same impacts over another realisation of the same room noise (what a vocoder
    that gets the noise's spectrum right but not its samples would give; scripts/vocoder_floor.py).
    """
    rng = np.random.default_rng([seed, 2])
    track = ambience(num_samples, sample_rate, ambience_db, rng).astype(np.float64)
    if noise_seed is not None:   # (rng has drawn the default noise above: the impacts stay the same)
        track = ambience(num_samples, sample_rate, ambience_db, np.random.default_rng([seed, 2, noise_seed]))
        track = track.astype(np.float64)
    for c in contacts:
        obj = objects[c["object"]]
        n0 = int(np.ceil(c["time"] * sample_rate))
        if n0 >= num_samples:
            continue
        snd = impact_sound(obj.material, obj.size, c["speed"], sample_rate, rng, offset=n0 / sample_rate - c["time"])
        n = min(len(snd), num_samples - n0)
        track[n0:n0 + n] += snd[:n]
    peak = np.abs(track).max()
    if peak > PEAK:  # one gain for the whole clip keeps relative loudness of impacts
        track *= PEAK / peak
    return track.astype(np.float32)
