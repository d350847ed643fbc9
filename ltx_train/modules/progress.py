"""A line of progress per N steps, for logs and terminals without a progress bar (no media imports: it
runs on machines without PyAV)."""
from __future__ import annotations

import time

import lightning as L


class ProgressLines(L.Callback):
    """One line every ``every_n_steps`` steps, for logs and terminals without a progress bar:
    ``step 200/800 (25%)  loss 0.412  3.1 steps/s  ~3m13s left``. Silent while a progress bar shows."""

    def __init__(self, every_n_steps: int = 50):
        self.every = every_n_steps
        self._t0: float | None = None
        self._step0 = self._printed = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._step0 = time.monotonic(), trainer.global_step
        self._printed = trainer.global_step // max(self.every, 1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # a line each time the step passes a multiple of ``every`` (a GAN's two optimisers step by 2, so
        # the step need not land on the multiple itself)
        if (self.every <= 0 or trainer.progress_bar_callback is not None or not trainer.is_global_zero
                or step // self.every <= self._printed or self._t0 is None):
            return
        self._printed = step // self.every
        rate = (step - self._step0) / max(time.monotonic() - self._t0, 1e-9)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        loss = trainer.callback_metrics.get("train/loss")
        parts = [f"step {step}" + (f"/{total} ({100 * step // total}%)" if total else "")]
        if loss is not None:
            parts.append(f"loss {float(loss):.4g}")
        parts.append(f"{rate:.2f} steps/s")
        if total and rate > 0:
            left = int((total - step) / rate)
            parts.append(f"~{left // 60}m{left % 60:02d}s left")
        print("[ltx-train] " + "  ".join(parts), flush=True)
