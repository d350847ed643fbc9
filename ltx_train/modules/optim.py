"""Optimiser, gradient clipping and learning-rate schedule shared by every LightningModule: fused AdamW,
clipping by global norm on the device, warm-up + cosine."""
from __future__ import annotations

import math
from collections.abc import Iterable

import lightning as L
import torch
from torch import nn


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and conv kernels only; norms' gains, biases and embeddings-as-vectors
    (anything with < 2 dims) are not decayed, since shrinking them only fights the norm. A group with
    no parameter is left out (a LoRA adapter has matrices only): DeepSpeed cannot partition an empty
    group, and every strategy should see the same groups."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def drop_empty_groups(checkpoint: dict) -> None:
    """A checkpoint written before ``param_groups`` left empty groups out (LoRA runs: an empty
    undecayed group): its optimiser and LR-schedule states lose those groups' entries in place, so it
    resumes into the optimiser built now."""
    for i, opt in enumerate(checkpoint.get("optimizer_states") or []):
        groups = opt.get("param_groups") or []
        keep = [j for j, g in enumerate(groups) if g.get("params")]
        if len(keep) == len(groups):
            continue
        opt["param_groups"] = [groups[j] for j in keep]
        scheds = checkpoint.get("lr_schedulers") or []
        if i < len(scheds):
            for k, v in list(scheds[i].items()):
                if isinstance(v, list) and len(v) == len(groups):
                    scheds[i][k] = [v[j] for j in keep]


def build_optimizer(params: nn.Module | Iterable, lr: float, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                    fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over a module (decay split by ``param_groups``) or over given params / param groups.

    ``fused`` (default: when every parameter is a float tensor on the CPU or a CUDA GPU): one kernel
    for the whole update, no per-parameter host reads, and a device-side skip of non-finite steps
    (``nonfinite.NonFiniteGuard``). Clip with ``clip_grad_norm`` / ``DeviceGradClipping``: Lightning's own
    clipping refuses fused optimisers under mixed precision."""
    groups = param_groups(params, weight_decay) if isinstance(params, nn.Module) else list(params)
    if fused is None:
        tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
        fused = bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused)


def total_grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of ``grads`` as a plain tensor on their device (FSDP2's sharded gradients give a
    replicated DTensor, unwrapped here); no host read, non-finite values pass through."""
    norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def clip_grad_norm(module: L.LightningModule, optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Scale the optimiser's gradients to a global L2 norm of at most ``max_norm``, on the device (no host
    read; a fused optimiser is fine). Reuses the norm the ``NonFiniteGuard`` measured on this step.
    Strategies that own the gradients (DeepSpeed, FSDP) clip with Lightning's / their own code."""
    from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, SingleDeviceStrategy

    trainer = module._trainer
    own = (SingleDeviceStrategy, DDPStrategy, ModelParallelStrategy)   # FSDP2: DTensor grads, same code
    if trainer is not None and not isinstance(trainer.strategy, own):
        module.clip_gradients(optimizer, gradient_clip_val=max_norm, gradient_clip_algorithm="norm")
        return
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    norm = optimizer.__dict__.pop("ltx_grad_norm", None)
    if not params:
        return
    if norm is None:
        norm = total_grad_norm([p.grad for p in params])
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)


class DeviceGradClipping:
    """LightningModule mixin: ``trainer.gradient_clip_val`` (by norm) is applied by ``clip_grad_norm``."""

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if gradient_clip_val is None or gradient_clip_val <= 0:
            return
        if gradient_clip_algorithm not in (None, "norm"):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        clip_grad_norm(self, optimizer, float(gradient_clip_val))


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
