"""``NonFiniteGuard``: a NaN / inf loss or gradient skips that optimiser step; many in a row stop the run.

One callback for automatic and manual optimisation alike, through two hooks Lightning calls in both:
``on_before_backward`` sees each loss, ``on_before_optimizer_step`` sees each optimiser's gradients
after backward and before clipping and ``optimizer.step()``. A bad step has its gradients dropped
(set to None), so AdamW leaves those weights and their moments untouched; the LR schedule and the
step counters still advance, as they do for a skipped AMP step. Gradient clipping (Lightning's, or a
manual module's own in its ``on_before_optimizer_step``) runs after this hook, so the logged norm is
the unclipped one.

Logged: ``train/grad_norm`` (``train/grad_norm_opt<i>`` for a second optimiser) and
``train/nonfinite_skipped`` (optimiser steps skipped so far; checkpointed). After ``max_consecutive``
batches in a row with a skipped step, ``NonFiniteError`` stops the fit, naming the step and the batch's
sample keys; it is raised before the batch's checkpoint would be written, and ``SafeModelCheckpoint``
never writes non-finite weights, so the newest checkpoint is the last finite one.

The check costs one host sync per optimiser step. A module with an EMA updates it only after a real step
(in ``optimizer_step``, after ``super().optimizer_step(...)``, so the batch's checkpoint holds it)::

    if self.ema is not None and not step_skipped(self):
        self.ema.update(self.denoiser)
"""
from __future__ import annotations

import lightning as L
import torch


class NonFiniteError(RuntimeError):
    """Too many consecutive training steps with a non-finite loss or gradient."""


def step_skipped(pl_module: L.LightningModule) -> bool:
    """True if the guard skipped an optimiser step of the current training batch."""
    trainer = pl_module._trainer
    guards = [cb for cb in trainer.callbacks if isinstance(cb, NonFiniteGuard)] if trainer is not None else []
    return any(g.batch_skipped for g in guards)


class NonFiniteGuard(L.Callback):
    def __init__(self, max_consecutive: int = 5, log_grad_norm: bool = True):
        if max_consecutive < 1:
            raise ValueError(f"callbacks.nonfinite.max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive, self.log_grad_norm = max_consecutive, log_grad_norm
        self.skipped = 0         # optimiser steps skipped in the whole run
        self.consecutive = 0     # batches in a row with a skipped step
        self.batch_skipped = False
        self._bad_loss = False
        self._keys: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.batch_skipped, self._bad_loss = False, False
        keys = batch.get("key") if isinstance(batch, dict) else None
        self._keys = list(keys) if isinstance(keys, (list, tuple)) else []

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        self._bad_loss = self._bad_loss or not bool(torch.isfinite(loss.detach()).all())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False) if grads else torch.zeros(())
        index = next((i for i, o in enumerate(trainer.optimizers) if o is optimizer), 0)
        if self.log_grad_norm and grads:
            pl_module.log("train/grad_norm" if index == 0 else f"train/grad_norm_opt{index}", norm.float(),
                          on_step=True, on_epoch=False, batch_size=1)
        bad, self._bad_loss = self._bad_loss or not bool(torch.isfinite(norm)), False
        if bad:
            for g in optimizer.param_groups:
                for p in g["params"]:
                    p.grad = None
            self.skipped += 1
            self.batch_skipped = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.consecutive = self.consecutive + 1 if self.batch_skipped else 0
        pl_module.log("train/nonfinite_skipped", float(self.skipped), on_step=True, on_epoch=False, batch_size=1)
        if self.consecutive >= self.max_consecutive:
            keys = ", ".join(map(str, self._keys[:8])) or "(the batch has no 'key')"
            raise NonFiniteError(
                f"{self.consecutive} training batches in a row had a non-finite loss or gradient (the last at "
                f"global step {trainer.global_step}, batch keys: {keys}); {self.skipped} optimiser steps skipped "
                f"in all. Stopping; the newest checkpoint holds the last finite weights. Lower model.lr, check "
                f"these samples, or raise callbacks.nonfinite.max_consecutive.")

    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped, self.consecutive = int(state_dict["skipped"]), int(state_dict["consecutive"])
