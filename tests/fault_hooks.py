"""Callbacks that the fault-injection tests (test_faults.py) add to a training subprocess by config:
``+callbacks.steps._target_=fault_hooks.StepPrinter`` and ``+callbacks.poison._target_=fault_hooks.PoisonBatches``."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import lightning as L
import numpy as np
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


class RecordRanks(L.Callback):
    """Writes what each rank did to ``<default_root_dir>/rank<r>.json``: the keys of every training batch
    (with its epoch, step and a hash of the torch RNG state after the step), each step's loss, and a hash
    of the model's weights at the end."""

    def __init__(self):
        self.batches, self.losses = [], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        import hashlib  # the RNG streams after this step's draws (noise, timesteps, caption dropout)
        import random
        import numpy as np
        rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes() + repr(random.getstate()).encode()
                             + np.random.get_state()[1].tobytes()).hexdigest()[:16]
        self.batches.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "keys": list(batch["key"]),
                             "rng": rng})
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))

    def on_train_end(self, trainer, pl_module) -> None:
        h = hashlib.sha256()
        for name, t in sorted(pl_module.model.state_dict().items()):
            if hasattr(t, "full_tensor"):     # FSDP2 shard: every rank gathers the whole tensor
                t = t.full_tensor()
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
        out = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps({"world": trainer.world_size, "batches": self.batches, "losses": self.losses,
                                   "weights": h.hexdigest()}))
