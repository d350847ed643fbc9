"""Checkpoints that are never half-written, never dangle and never hold pickled code.

- ``AtomicCheckpointIO`` (a Lightning CheckpointIO plugin; ``ltx-train`` installs it): every file the
  trainer saves (step checkpoints, ``last.ckpt``, SLURM's ``hpc_ckpt_*.ckpt``) is written to a temp file
  in the same directory, fsynced and renamed over the target, so a kill at any moment leaves either
  the old file or the new one. The checkpoint is converted to plain types first (``hparams.plain``):
  it loads with ``torch.load(weights_only=True)``.
- ``SafeModelCheckpoint`` (a ``ModelCheckpoint``): ``last.ckpt`` is a hard link (or, where links are
  not supported, a copy) put in place by an atomic rename, so deleting an old step file never leaves
  it dangling; keeps the ``keep_last`` newest step checkpoints plus every ``keep_every_n_steps``-th;
  refuses to write weights that are not finite. With a ``monitor`` it is Lightning's top-k instead.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from ltx_train.modules.hparams import plain

log = logging.getLogger(__name__)
TMP_TAG = ".tmp-"


def plain_checkpoint(checkpoint: dict) -> dict:
    """The checkpoint with OmegaConf containers made plain; Lightning's ``*hparams_type`` (a class) dropped.

    Lightning records the hparams' class only when they are an OmegaConf container, to rebuild one on
    load; a plain dict loads as well, and a class would need ``weights_only=False``.
    """
    checkpoint = {k: v for k, v in checkpoint.items() if not (k.endswith("hparams_type") and isinstance(v, type))}
    return plain(checkpoint, "checkpoint")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def atomic_replace(path: str | Path, write) -> None:
    """``write(tmp_path)`` then rename the temp file over ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_TAG}{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _torch_save(checkpoint: dict, tmp: Path) -> None:
    with open(tmp, "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        if "://" in str(path):  # remote filesystems: fsspec's own write (no local rename to make atomic)
            return super().save_checkpoint(plain_checkpoint(checkpoint), path)
        checkpoint = plain_checkpoint(checkpoint)
        atomic_replace(path, lambda tmp: _torch_save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict:
        # resuming never unpickles code: our checkpoints hold plain types only
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def nonfinite_tensors(module: torch.nn.Module) -> list[str]:
    """Names of the floating-point parameters / buffers of ``module`` that hold a NaN or an inf."""
    bad = []
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        t = getattr(t, "ds_tensor", t)   # DeepSpeed ZeRO-3: the rank's partition (the parameter is empty)
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad.append(name)
    return bad


class SafeModelCheckpoint(ModelCheckpoint):
    def __init__(self, *args, keep_last: int = 1, keep_every_n_steps: int | None = None, **kwargs):
        """keep_last: newest step checkpoints kept (>= 1); keep_every_n_steps: also keep those whose step is
        a multiple of it (None = none). Both apply without ``monitor``; ``save_top_k`` is then set to -1."""
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        if keep_every_n_steps is not None and keep_every_n_steps < 1:
            raise ValueError(f"keep_every_n_steps must be None or >= 1, got {keep_every_n_steps}")
        if kwargs.get("monitor") is None:
            kwargs["save_top_k"] = -1  # we prune ourselves, below
        super().__init__(*args, **kwargs)
        self.keep_last, self.keep_every_n_steps = keep_last, keep_every_n_steps
        self._flush_pending = False
        self.saved: list[list] = []  # [global_step, path] of the step checkpoints this run (and those it resumed) wrote

    # ---- saving ----
    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero and self.dirpath and os.path.isdir(self.dirpath):
            for tmp in glob.glob(os.path.join(self.dirpath, f".*{TMP_TAG}*")):  # left by a killed writer
                pid = tmp.rsplit(TMP_TAG, 1)[1]
                if not (pid.isdigit() and _alive(int(pid))):
                    shutil.rmtree(tmp) if os.path.isdir(tmp) and not os.path.islink(tmp) else os.remove(tmp)

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        bad = nonfinite_tensors(trainer.lightning_module)
        # every rank saves its shards (DeepSpeed, FSDP) or waits for rank 0: all must make the same choice
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(bool(bad), all=False):
            bad = bad or ["(a tensor sharded on another rank)"]
        if bad:  # never replace a good checkpoint with a broken one
            log.error("not saving %s at step %d: non-finite weights in %s", filepath, trainer.global_step,
                      ", ".join(bad[:5]))
            return
        super()._save_checkpoint(trainer, filepath)
        self._flush_logs(trainer)
        self._flush_pending = True  # and again once Lightning has logged this batch (after this hook)
        if self.monitor is None and os.path.basename(filepath) != self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION:
            self.saved = [s for s in self.saved if s[1] != filepath] + [[int(trainer.global_step), filepath]]
            self._prune(trainer)

    @staticmethod
    def _flush_logs(trainer) -> None:
        # the logs on disk reach as far as the newest checkpoint: a resume neither lacks nor repeats rows
        for logger in trainer.loggers:
            logger.save()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._flush_pending:
            self._flush_logs(trainer)
            self._flush_pending = False

    def _prune(self, trainer) -> None:
        every = self.keep_every_n_steps
        newest = {p for _, p in self.saved[-self.keep_last:]}
        keep = []
        for step, path in self.saved:
            if path in newest or (every and step % every == 0) or not self._should_remove_checkpoint(
                    trainer, path, self._last_checkpoint_saved):
                keep.append([step, path])
            elif trainer.is_global_zero and os.path.exists(path):
                self._remove_checkpoint(trainer, path)
        self.saved = keep

    @staticmethod
    def _link_checkpoint(trainer, filepath: str, linkpath: str) -> None:
        """``linkpath`` -> a hard link to ``filepath`` (a copy where links fail), swapped in by rename."""
        if os.path.isdir(filepath):          # DeepSpeed: a directory per checkpoint, linked by a relative symlink
            if trainer.is_global_zero:
                if os.path.isdir(linkpath) and not os.path.islink(linkpath):
                    shutil.rmtree(linkpath)
                atomic_replace(linkpath, lambda tmp: os.symlink(os.path.relpath(filepath, os.path.dirname(linkpath)), tmp))
            trainer.strategy.barrier()
            return
        # (rename() of one hard link over another of the same file is a no-op: nothing to do then)
        if trainer.is_global_zero and not (os.path.exists(linkpath) and os.path.samefile(filepath, linkpath)):
            def link(tmp: Path) -> None:
                try:
                    os.link(filepath, tmp)
                except OSError:
                    shutil.copyfile(filepath, tmp)
            atomic_replace(linkpath, link)
        trainer.strategy.barrier()

    def save_now(self, trainer) -> str | None:
        """Save a step checkpoint (and ``last``) now, e.g. on preemption; returns its path, None if not saved."""
        if self._last_global_step_saved == trainer.global_step:
            return self._last_checkpoint_saved
        candidates = self._monitor_candidates(trainer)
        before = self._last_checkpoint_saved
        if self.monitor is None:
            self._save_none_monitor_checkpoint(trainer, candidates)
        else:  # a monitored run: the preemption checkpoint must exist whatever its score
            self._save_checkpoint(trainer, self.format_checkpoint_name(candidates))
        if self._last_checkpoint_saved == before:
            return None
        self._save_last_checkpoint(trainer, candidates)
        return self._last_checkpoint_saved

    # ---- state ----
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "saved": [list(s) for s in self.saved]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:  # as Lightning: only in the same directory
            self.saved = [list(s) for s in state_dict.get("saved", [])]
        last = os.path.join(self.dirpath or "", self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)
        if self.dirpath and not self.last_model_path and os.path.exists(last):
            self.last_model_path = last  # a resumed run (in a moved run directory) keeps updating last.ckpt


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
