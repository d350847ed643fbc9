"""``NonFiniteGuard``: a NaN / inf loss or gradient skips that optimiser step; many in a row stop the run.

One callback for automatic and manual optimisation alike, through two hooks Lightning calls in both:
``on_before_backward`` sees each loss, ``on_before_optimizer_step`` sees each optimiser's gradients
after backward and before clipping and ``optimizer.step()``. A bad step leaves the weights and the
optimiser's moments untouched; the LR schedule and the step counters still advance, as they do for a
skipped AMP step. Gradient clipping (``optim.clip_grad_norm``, which reuses the norm measured here)
runs after this hook, so the logged norm is the unclipped one.

How a step is skipped, without the host waiting for the GPU:
- a fused Adam / AdamW / SGD (what ``optim.build_optimizer`` builds) gets ``optimizer.found_inf``, the
  same device flag ``torch.amp.GradScaler`` hands it: its kernel leaves the step out on the device;
- any other optimiser has its gradients dropped (set to None), which needs the flag on the host.
``step_ok(module)`` is the batch's flag as a device tensor (1 = every optimiser stepped), for an EMA
that must not follow a skipped step: ``ema.update(model, weight=step_ok(self))``.

Under DeepSpeed the gradients are DeepSpeed's (reduced into its partitions, not in ``p.grad``): ZeRO-1/2
skip a step whose global norm is not finite themselves (the guard reads ``optimizer.overflow`` after
the step and logs DeepSpeed's norm); ZeRO-3 checks only fp16 steps, so there a non-finite step is not
skipped: its weights are non-finite, no checkpoint is written from them, and the run stops after
``max_consecutive`` such batches.

The counters live on the device too. On a CPU they are read after every batch; on a GPU the host reads
those of the batch before (copied without blocking, then waited for one step later, when the GPU has
long finished it), so the GPU is never drained. ``NonFiniteError`` therefore stops the fit one batch
later on a GPU than on a CPU; it names the step and the sample keys of the batch that completed the
run of bad ones. ``SafeModelCheckpoint`` never writes non-finite weights, and skipped steps leave the
weights finite, so the newest checkpoint holds the last finite weights.

Logged: ``train/grad_norm`` (``train/grad_norm_opt<i>`` for a second optimiser) and
``train/nonfinite_skipped`` (optimiser steps skipped so far; checkpointed).
"""
from __future__ import annotations

import lightning as L
import torch

from ltx_train.modules.optim import total_grad_norm

FOUND_INF_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)


class NonFiniteError(RuntimeError):
    """Too many consecutive training steps with a non-finite loss or gradient."""


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """True if ``optimizer.step()`` honours ``optimizer.found_inf`` (torch's fused kernels do)."""
    return isinstance(optimizer, FOUND_INF_OPTIMIZERS) and all(g.get("fused") for g in optimizer.param_groups)


def _guard(pl_module: L.LightningModule) -> NonFiniteGuard | None:
    trainer = pl_module._trainer
    return next((cb for cb in trainer.callbacks if isinstance(cb, NonFiniteGuard)), None) if trainer else None


def _deepspeed_owned(optimizer) -> bool:
    return type(optimizer).__module__.startswith("deepspeed")


def step_ok(pl_module: L.LightningModule) -> torch.Tensor | None:
    """The current batch's flag (a 0-dim float tensor on the module's device, 1.0 = no optimiser step was
    skipped), or None without a guard. Under DeepSpeed, call it after the step (DeepSpeed decides)."""
    guard = _guard(pl_module)
    if guard is None:
        return None
    if guard._ds_optimizer is not None:
        guard._fold_deepspeed_step()
    return guard.batch_ok


class NonFiniteGuard(L.Callback):
    def __init__(self, max_consecutive: int = 5, log_grad_norm: bool = True):
        if max_consecutive < 1:
            raise ValueError(f"callbacks.nonfinite.max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive, self.log_grad_norm = max_consecutive, log_grad_norm
        # device counters: [optimiser steps skipped in the whole run, batches in a row with a skipped step]
        self._counts = torch.zeros(2)
        self.batch_ok: torch.Tensor | None = None
        self._loss_ok: torch.Tensor | None = None
        self._keys: list = []
        self._pending: tuple | None = None   # (pinned host copy, event, step, keys) of the batch before
        self._ds_optimizer = None            # DeepSpeed's optimiser whose step is still to be read

    # ------------------------------------------------------------------ counters
    @property
    def skipped(self) -> int:
        return int(self._counts[0])

    @property
    def consecutive(self) -> int:
        return int(self._counts[1])

    def _on(self, device: torch.device) -> None:
        if self._counts.device != device:
            self._counts = self._counts.to(device)

    # ------------------------------------------------------------------ hooks
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._on(pl_module.device)
        self.batch_ok = torch.ones((), device=pl_module.device)
        self._loss_ok = None
        keys = batch.get("key") if isinstance(batch, dict) else None
        self._keys = list(keys) if isinstance(keys, (list, tuple)) else []

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        ok = torch.isfinite(loss.detach()).all()
        self._loss_ok = ok if self._loss_ok is None else self._loss_ok & ok

    def _fold_deepspeed_step(self) -> None:
        """After DeepSpeed's step: it skipped the step (``overflow``) or, under ZeRO-3, stepped on a
        non-finite loss; fold that into the batch's flag and the counters, once."""
        optimizer, self._ds_optimizer = self._ds_optimizer, None
        ok = torch.ones((), dtype=torch.bool, device=self._counts.device)
        if self._loss_ok is not None:
            ok = ok & self._loss_ok
        self._loss_ok = None
        if bool(getattr(optimizer, "overflow", False)):
            ok = ok & False
        self._counts[0] += (~ok).float()
        self.batch_ok = self.batch_ok * ok.float()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if _deepspeed_owned(optimizer):            # read after DeepSpeed's step (step_ok / batch end)
            self._ds_optimizer = optimizer
            return
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = total_grad_norm(grads) if grads else None
        index = next((i for i, o in enumerate(trainer.optimizers) if o is optimizer), 0)
        if norm is not None:
            optimizer.ltx_grad_norm = norm          # clip_grad_norm reuses it
            if self.log_grad_norm:
                pl_module.log("train/grad_norm" if index == 0 else f"train/grad_norm_opt{index}", norm.float(),
                              on_step=True, on_epoch=False, batch_size=1)
        ok = torch.isfinite(norm) if norm is not None else torch.ones((), dtype=torch.bool, device=pl_module.device)
        if self._loss_ok is not None:
            ok = ok & self._loss_ok
        self._loss_ok = None
        if skips_on_device(optimizer):
            optimizer.found_inf = (~ok).float()
        elif not bool(ok):                          # the host must know: drop the gradients
            for g in optimizer.param_groups:
                for p in g["params"]:
                    p.grad = None
        self._counts[0] += (~ok).float()
        self.batch_ok = self.batch_ok * ok.float()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._ds_optimizer is not None:
            self._fold_deepspeed_step()
            norm = trainer.strategy.deepspeed_engine.get_global_grad_norm()
            if self.log_grad_norm and norm is not None:
                pl_module.log("train/grad_norm", float(norm), on_step=True, on_epoch=False, batch_size=1)
        bad = 1.0 - self.batch_ok
        self._counts[1] = (self._counts[1] + 1.0) * bad
        pl_module.log("train/nonfinite_skipped", self._counts[0].clone(), on_step=True, on_epoch=False, batch_size=1)
        if self._counts.device.type == "cpu":
            self._check(int(self._counts[1]), trainer.global_step, self._keys)
            return
        # read the batch before's counts (long done on the GPU), then queue this batch's copy
        if self._pending is not None:
            host, event, step, keys = self._pending
            event.synchronize()
            self._check(int(host[1]), step, keys)
        host = torch.empty(2, pin_memory=True)
        host.copy_(self._counts, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pending = (host, event, trainer.global_step, self._keys)

    def on_train_end(self, trainer, pl_module) -> None:
        self._pending = None

    def _check(self, consecutive: int, step: int, keys: list) -> None:
        if consecutive >= self.max_consecutive:
            shown = ", ".join(map(str, keys[:8])) or "(the batch has no 'key')"
            raise NonFiniteError(
                f"{consecutive} training batches in a row had a non-finite loss or gradient (the last at "
                f"global step {step}, batch keys: {shown}); {self.skipped} optimiser steps skipped "
                f"in all. Stopping; the newest checkpoint holds the last finite weights. Lower model.lr, check "
                f"these samples, or raise callbacks.nonfinite.max_consecutive.")

    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict) -> None:
        self._counts = torch.tensor([float(state_dict["skipped"]), float(state_dict["consecutive"])],
                                    device=self._counts.device)
