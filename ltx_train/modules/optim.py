"""Optimiser and learning-rate schedule shared by every LightningModule: AdamW + warm-up + cosine."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and conv kernels only; norms' gains, biases and embeddings-as-vectors
    (anything with < 2 dims) are not decayed, since shrinking them only fights the norm."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(params: nn.Module | Iterable, lr: float, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over a module (decay split by ``param_groups``) or over given params / param groups."""
    groups = param_groups(params, weight_decay) if isinstance(params, nn.Module) else list(params)
    # not fused: Lightning's gradient clipping under mixed precision refuses fused optimisers
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """LR multiplier: linear 1/warmup .. 1 over ``warmup_steps``, then cosine to ``min_lr_ratio`` at
    ``total_steps``, constant afterwards (training past the planned length does not restart)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR of ``warmup_cosine_factor``; step it once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps, min_lr_ratio))


def lightning_scheduler(scheduler: torch.optim.lr_scheduler.LRScheduler, name: str | None = None) -> dict:
    """The dict Lightning's ``configure_optimizers`` wants for a per-step schedule."""
    return {"scheduler": scheduler, "interval": "step", "frequency": 1, "name": name}
