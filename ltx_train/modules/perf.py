"""``PerfMonitor``: where a training step's time goes, logged per step next to the losses.

- ``perf/step_time_s``: ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward, optimiser).
  The NonFiniteGuard's check already syncs the host with the device each step, so on a GPU this is
  the step's device time too, not only the time to queue its kernels.
- ``perf/data_wait_s``: from the previous batch's end to this batch's start: fetching the batch from the
  DataLoader, plus whatever runs after a batch's end hooks (a checkpoint write on the steps that save
  one). Validation is not counted: the clock restarts when validation ends.
- with CUDA: ``perf/gpu_mem_gib`` (peak allocated since the last step) and ``perf/gpu_util`` (percent,
  ``torch.cuda.utilization``, needs the NVML bindings; left out without them).
"""
from __future__ import annotations

import time

import lightning as L
import torch


class PerfMonitor(L.Callback):
    def __init__(self) -> None:
        self._start: float | None = None
        self._last_end: float | None = None
        self._nvml = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_end = time.perf_counter()   # the first wait: creating the DataLoader iterator and batch 0

    def on_validation_end(self, trainer, pl_module) -> None:
        self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._last_end is not None:
            self._log(pl_module, "perf/data_wait_s", self._start - self._last_end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._start is not None:
            self._log(pl_module, "perf/step_time_s", now - self._start)
        if pl_module.device.type == "cuda":
            self._log(pl_module, "perf/gpu_mem_gib", torch.cuda.max_memory_allocated(pl_module.device) / 2**30)
            torch.cuda.reset_peak_memory_stats(pl_module.device)
            if self._nvml:
                try:
                    self._log(pl_module, "perf/gpu_util", float(torch.cuda.utilization(pl_module.device)))
                except Exception:  # noqa: BLE001 - no pynvml / NVML: utilisation is simply not logged
                    self._nvml = False
        self._last_end = time.perf_counter()

    @staticmethod
    def _log(pl_module, key: str, value: float) -> None:
        pl_module.log(key, float(value), on_step=True, on_epoch=False, batch_size=1)
