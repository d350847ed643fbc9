"""Callbacks that the fault-injection tests (test_faults.py) add to a training subprocess by config:
``+callbacks.steps._target_=fault_hooks.StepPrinter`` and ``+callbacks.poison._target_=fault_hooks.PoisonBatches``."""
from __future__ import annotations

import lightning as L
import torch


class StepPrinter(L.Callback):
    """Prints ``STEP <global_step>`` after every training batch, so a test can signal at a chosen step."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        print(f"STEP {trainer.global_step}", flush=True)


class PoisonBatches(L.Callback):
    """From global step ``start`` on, fills the batch's float tensors with NaN (a corrupt sample, an overflow)."""

    def __init__(self, start: int):
        self.start = start

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step >= self.start:
            for v in batch.values():
                if torch.is_tensor(v) and v.is_floating_point():
                    v.fill_(float("nan"))
