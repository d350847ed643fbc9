"""``PerfMonitor``: where a training step's time goes, logged per step next to the losses.

- ``perf/step_time_s``: ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward, optimiser).
  On a GPU nothing in a step waits for the device except the NonFiniteGuard's read of the batch
  before's counters, so one step's figure is the time to queue it; averaged over steps it is the
  step's time.
- ``perf/data_wait_s``: from the previous batch's end to this batch's start: fetching the batch from the
  DataLoader, plus whatever runs after a batch's end hooks (a checkpoint write on the steps that save
  one). Validation is not counted: the clock restarts when validation ends.
- ``perf/steps_per_s`` and ``perf/samples_per_s`` (all ranks together): wall-clock rate over the last
  ``window`` steps, data loading, logging and hooks included (validation restarts the window).
- ``perf/host_mem_gib``: the process's peak resident memory so far (what CPU offload costs the host).
- with CUDA: ``perf/gpu_mem_gib`` (peak allocated since the last step) and ``perf/gpu_util`` (percent,
  ``torch.cuda.utilization``, needs the NVML bindings; left out without them).
"""
from __future__ import annotations

import resource
import time
from collections import deque

import lightning as L
import torch


class PerfMonitor(L.Callback):
    def __init__(self, window: int = 20) -> None:
        self.window = window
        self._ends: deque = deque(maxlen=window + 1)   # (time, samples in the batch) of recent steps
        self._start: float | None = None
        self._last_end: float | None = None
        self._nvml = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_end = time.perf_counter()   # the first wait: creating the DataLoader iterator and batch 0

    def on_validation_end(self, trainer, pl_module) -> None:
        self._last_end = time.perf_counter()
        self._ends.clear()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._last_end is not None:
            self._log(pl_module, "perf/data_wait_s", self._start - self._last_end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._start is not None:
            self._log(pl_module, "perf/step_time_s", now - self._start)
        self._log(pl_module, "perf/host_mem_gib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        if pl_module.device.type == "cuda":
            self._log(pl_module, "perf/gpu_mem_gib", torch.cuda.max_memory_allocated(pl_module.device) / 2**30)
            torch.cuda.reset_peak_memory_stats(pl_module.device)
            if self._nvml:
                try:
                    self._log(pl_module, "perf/gpu_util", float(torch.cuda.utilization(pl_module.device)))
                except Exception:  # noqa: BLE001 - no pynvml / NVML: utilisation is simply not logged
                    self._nvml = False
        self._last_end = time.perf_counter()
        self._ends.append((self._last_end, _batch_size(batch) * trainer.world_size))
        if len(self._ends) > 1:
            span = self._ends[-1][0] - self._ends[0][0]
            self._log(pl_module, "perf/steps_per_s", (len(self._ends) - 1) / span)
            self._log(pl_module, "perf/samples_per_s", sum(n for _, n in list(self._ends)[1:]) / span)

    @staticmethod
    def _log(pl_module, key: str, value: float) -> None:
        pl_module.log(key, float(value), on_step=True, on_epoch=False, batch_size=1)


def _batch_size(batch) -> int:
    """Samples in a batch: the length of its "key" / "caption" list, else the first dimension of a tensor."""
    if isinstance(batch, dict):
        for k in ("key", "caption"):
            if isinstance(batch.get(k), (list, tuple)):
                return len(batch[k])
        batch = next((v for v in batch.values() if torch.is_tensor(v)), None)
    return int(batch.shape[0]) if torch.is_tensor(batch) and batch.ndim else 1
