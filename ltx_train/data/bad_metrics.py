"""``BadSampleMetrics``: log a DataModule's per-kind skip counts as ``data/skipped_<kind>`` every train step.

The counts come from the batches themselves (each carries its worker's new skips, folded by
``VideoDataModule.on_before_batch_transfer``), so they are those of the data the model consumed.
``ltx-train`` adds this callback whenever the DataModule has ``skipped_by_kind``.
"""
from __future__ import annotations

import lightning as L


class BadSampleMetrics(L.Callback):
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        counts = getattr(trainer.datamodule, "skipped_by_kind", None)
        if not counts:
            return
        # only kinds seen so far: a column of zeros per kind would bury the ones that matter
        for kind, n in sorted(counts.get("train", {}).items()):
            pl_module.log(f"data/skipped_{kind}", float(n), on_step=True, on_epoch=False, batch_size=1)
