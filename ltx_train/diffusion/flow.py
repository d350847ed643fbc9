"""Rectified-flow (flow-matching) math: timestep sampling, schedule, noising, target, loss.

Convention (SD3 / flux / LTX): t in [0, 1], t = 0 is data and t = 1 is pure noise,

    x_t = (1 - t) * x0 + t * noise,        v = dx_t/dt = noise - x0,

so the model predicts ``v`` and a sampler integrates dx/dt = v from t = 1 down to t = 0
(``x0 = x_t - t * v``). The flow time t doubles as the noise level sigma of the samplers.

Longer sequences carry more redundant signal per token, so the same t destroys less
information; flux shifts t towards 1 with ``mu`` growing linearly in the token count, both when
sampling training timesteps and in the sampling schedule.
"""
from __future__ import annotations

import math

import torch


def shift_mu(seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096,
             base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """mu on the line through (base_seq_len, base_shift) and (max_seq_len, max_shift) (flux)."""
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return base_shift + slope * (seq_len - base_seq_len)


def time_shift(mu: float, sigma: float, t: torch.Tensor) -> torch.Tensor:
    """flux's shift: exp(mu) / (exp(mu) + (1/t - 1)^sigma); monotone in t and in mu, fixes 0 and 1."""
    t = t.clamp(0.0, 1.0)
    out = math.exp(mu) / (math.exp(mu) + (1.0 / t.clamp(min=1e-12) - 1.0) ** sigma)
    return torch.where(t <= 0, torch.zeros_like(out), out)


def sample_timesteps(batch_size: int, seq_len: int, generator: torch.Generator | None = None, *,
                     mean: float = 0.0, std: float = 1.0, shift: bool = True,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """(batch_size,) training times: logit-normal(mean, std) (SD3), then shifted for ``seq_len``
    tokens (the noised video + audio tokens of one sample)."""
    z = torch.randn(batch_size, generator=generator, device=device)
    t = torch.sigmoid(mean + std * z)
    return time_shift(shift_mu(seq_len), 1.0, t) if shift else t


def get_sigmas(num_steps: int, seq_len: int, shift: bool = True,
               device: torch.device | str | None = None) -> torch.Tensor:
    """(num_steps + 1,) sampling schedule from 1 down to 0 (last entry exactly 0)."""
    t = torch.linspace(1.0, 0.0, num_steps + 1, device=device)
    return time_shift(shift_mu(seq_len), 1.0, t) if shift else t


def _expand(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t (B,) or scalar -> broadcastable to x (B, ...)."""
    t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim))


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise; t (B,) or scalar."""
    t = _expand(t, x0)
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """v = noise - x0 (constant along each straight path)."""
    return noise - x0


def predict_x0(x_t: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Denoised estimate x0 = x_t - t v."""
    return x_t - _expand(t, x_t) * v


def flow_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean squared error -> (B,), in float32.

    ``mask`` (broadcastable to pred, bool or weights) selects elements, e.g. ``(B, 1, Tv, 1, 1)``
    to drop clean conditioning frames or ``(B, 1, 1)`` for clips without audio; a sample with nothing
    selected gets loss 0.
    """
    err = (pred.float() - target.float()).pow(2)
    if mask is None:
        return err.flatten(1).mean(1)
    w = mask.to(err.dtype).expand_as(err)
    return (err * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1e-8)
