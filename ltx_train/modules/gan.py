"""How a GAN stage (the vocoder; the video VAE with ``gan_weight > 0``) updates its two networks.

``gan_update=alternating`` (default): Lightning's manual optimisation with two optimisers, a
discriminator step, then a generator step against the discriminator just updated (the HiFi-GAN and
VQGAN recipe). DeepSpeed cannot run it: its engine owns exactly one optimiser.

``gan_update=simultaneous``: one optimiser over both networks and one backward per batch, so the
stage is automatic optimisation like every other stage and runs under any strategy Lightning's
automatic loop runs under (DeepSpeed ZeRO included). In that one backward
- the generator's loss goes through the discriminator with the discriminator's weights ``frozen``
  (its input, the fake, still gets its gradient);
- the discriminator's loss sees the fake detached;
so the generator's parameters get exactly the gradient of its loss and the discriminator's exactly
the gradient of its own, both taken at the weights of the start of the step (a simultaneous update,
the one difference from alternating). Each network keeps its own learning rate and schedule as a
param group of the one AdamW; before the GAN starts the discriminator's learning rate is 0. On one
device the discriminator then does not run at all (its parameters get no gradient and AdamW skips
them); under DDP, FSDP or DeepSpeed its loss enters with weight 0 instead, so every parameter gets a
gradient every step (no unused-parameter bookkeeping for the reducers), and it runs in eval mode, so
that its buffers (the vocoder's spectral-norm vectors) stay as they are on one device.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ltx_train.config import ConfigError
from ltx_train.modules.optim import build_optimizer, clip_grad_norm, param_groups, total_grad_norm, warmup_cosine_factor

GAN_UPDATES = ("alternating", "simultaneous")


def check_gan_update(value: str) -> str:
    if value not in GAN_UPDATES:
        raise ConfigError(f"model.gan_update must be one of {list(GAN_UPDATES)}, got {value!r}")
    return value


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Inside: ``module``'s parameters collect no gradient (inputs that require one still get it)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def idle(module: nn.Module) -> Iterator[None]:
    """Inside: ``module`` in eval mode, so a forward at loss weight 0 (``discriminator_runs_idle``) leaves
    its state as a step that did not run it does (spectral norm's power-iteration vectors advance in
    train mode only); gradients still flow (all zero)."""
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


def discriminator_runs_idle(module) -> bool:
    """Before the GAN starts: must the discriminator still run (at loss weight 0)? Under a strategy with
    gradient reducers (DDP, FSDP, DeepSpeed), where every parameter must get a gradient every step."""
    from lightning.pytorch.strategies import SingleDeviceStrategy
    trainer = module._trainer
    return trainer is not None and not isinstance(trainer.strategy, SingleDeviceStrategy)


def joint_optimizer(generator: nn.Module, discriminator: nn.Module, lr: float, disc_lr: float,
                    weight_decay: float, betas: tuple[float, float], warmup_steps: int, total_steps: int,
                    min_lr_ratio: float, disc_start: int,
                    disc_total_steps: int) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """One AdamW over both networks (each split by ``param_groups``; the discriminator's groups at
    ``disc_lr``) and one LambdaLR stepped per batch: warm-up + cosine over ``total_steps`` for the
    generator's groups; 0 before ``disc_start`` for the discriminator's, then its own warm-up + cosine
    over ``disc_total_steps`` (as its own optimiser would count its steps)."""
    g_groups = [{**g, "lr": lr} for g in param_groups(generator, weight_decay)]
    d_groups = [{**g, "lr": disc_lr} for g in param_groups(discriminator, weight_decay)]
    opt = build_optimizer(g_groups + d_groups, lr=lr, weight_decay=weight_decay, betas=betas)

    def g_factor(step: int) -> float:
        return warmup_cosine_factor(step, warmup_steps, total_steps, min_lr_ratio)

    def d_factor(step: int) -> float:
        return 0.0 if step < disc_start else warmup_cosine_factor(step - disc_start, warmup_steps,
                                                                  disc_total_steps, min_lr_ratio)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [g_factor] * len(g_groups) + [d_factor] * len(d_groups))
    return opt, sched


def clip_networks(module, optimizer: torch.optim.Optimizer, networks: list[nn.Module], max_norm: float) -> None:
    """Clip each network's gradients to a global L2 norm of ``max_norm`` on its own, as two optimisers
    would (on one device / DDP; a strategy that owns the gradients clips by its own means: DeepSpeed
    by ``trainer.gradient_clip_val``, over both networks together)."""
    from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
    trainer = module._trainer
    if trainer is not None and not isinstance(trainer.strategy, (SingleDeviceStrategy, DDPStrategy)):
        clip_grad_norm(module, optimizer, max_norm)
        return
    optimizer.__dict__.pop("ltx_grad_norm", None)      # the guard's norm is of both networks together
    for net in networks:
        params = [p for p in net.parameters() if p.grad is not None]
        if params:
            torch.nn.utils.clip_grads_with_norm_(params, max_norm, total_grad_norm([p.grad for p in params]))
