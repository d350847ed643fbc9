"""``RunState``: what a checkpoint needs besides Lightning's own state for an exact resume, and its provenance.

- Every RNG stream (torch CPU, CUDA, numpy, python ``random``) is saved with each checkpoint and restored
  just before the first training batch after a resume. That point, not load time, because creating the
  DataLoader iterator draws from torch's RNG, and it is created at a different moment on resume.
- Validation runs on a fork of the RNG streams: it leaves the training streams as it found them, so a
  run resumed from a checkpoint taken just before a validation continues the same streams (and
  changing ``val_check_interval`` does not change training).
- Each checkpoint records ``ltx_train.git`` (commit, dirty) and ``ltx_train.config`` (the resolved
  config, plain dicts), plus the run directory and CSV logger versions a resume appends to.

Several ranks. ``seed_everything`` seeds every rank alike, which would give every rank the same noise,
timesteps and caption dropout for its (different) clips. So when training starts on more than one rank,
rank r > 0 reseeds its streams from (seed, r); rank 0 keeps the seed, so a one-process run is unchanged.
A checkpoint holds every rank's streams (gathered when it is written, ``rng_states_per_rank``; the
writing is collective anyway), and a resume on the same number of ranks restores each rank its own.
On another number of ranks, rank 0 gets its streams back and the others reseed from (their streams,
rank): the run continues, not bit for bit.
"""
from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger

REPO = Path(__file__).resolve().parents[2]


def git_info(repo: Path = REPO) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None} of the source tree this code runs from."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    commit, status = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def collect_rng_states() -> dict[str, Any]:
    """All global RNG streams, as plain types and tensors (numpy's key array becomes a tensor)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def seed_rank_streams(rank: int) -> None:
    """Give rank ``rank`` (> 0) streams of its own, derived from the current ones and the rank."""
    seed = (int(torch.randint(0, 2**62, (1,)).item()) + 1_000_003 * rank) % 2**63
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RunState(L.Callback):
    def __init__(self, config: dict | None = None, output_dir: str | None = None):
        self.config, self.output_dir = config, output_dir
        self.git = git_info()
        self._resume_rng: dict | None = None    # loaded, waiting for the first training batch
        self._reseed_after_resume = False       # resumed on another number of ranks: rank > 0 reseeds
        self._train_rng: dict | None = None     # the training streams while validation runs on a fork

    @property
    def state_key(self) -> str:
        return "RunState"

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # a checkpoint written during validation (preemption) holds the training streams, not the fork
        states = self._resume_rng or self._train_rng or collect_rng_states()
        checkpoint["rng_states"] = states
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, states)
            checkpoint["rng_states"] = gathered[0]
            checkpoint["rng_states_per_rank"] = gathered
        csv = [{"name": lg.name, "version": lg.version} for lg in trainer.loggers
               if isinstance(lg, CSVLogger)]
        checkpoint["ltx_train"] = {"git": self.git, "config": self.config, "output_dir": self.output_dir,
                                   "csv_loggers": csv}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        per_rank = checkpoint.get("rng_states_per_rank")
        if per_rank is not None and len(per_rank) == trainer.world_size:
            self._resume_rng = per_rank[trainer.global_rank]
        else:
            self._resume_rng = checkpoint.get("rng_states")
            self._reseed_after_resume = trainer.world_size > 1 and trainer.global_rank > 0

    def on_train_start(self, trainer, pl_module) -> None:
        if self._resume_rng is None and trainer.world_size > 1 and trainer.global_rank > 0:
            seed_rank_streams(trainer.global_rank)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._resume_rng is not None:
            set_rng_states(self._resume_rng)
            self._resume_rng = None
            if self._reseed_after_resume:
                seed_rank_streams(trainer.global_rank)
                self._reseed_after_resume = False

    def on_validation_start(self, trainer, pl_module) -> None:
        self._train_rng = collect_rng_states()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._train_rng is not None:
            set_rng_states(self._train_rng)
            self._train_rng = None
