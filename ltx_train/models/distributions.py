"""Diagonal Gaussian posterior shared by the video and audio VAEs."""
from __future__ import annotations

import torch


class DiagonalGaussian:
    """N(mean, exp(logvar)) over a latent tensor; ``params`` holds mean and logvar stacked on dim 1."""

    def __init__(self, params: torch.Tensor, deterministic: bool = False):
        self.mean, logvar = params.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.deterministic = deterministic
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.deterministic:
            return self.mean
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I), averaged over all latent elements -> (B,)."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).mean(1)
