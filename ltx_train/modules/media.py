"""Send media files (mp4, tables) to whichever loggers can show them; W&B today, files always."""
from __future__ import annotations

from pathlib import Path

import lightning as L


def _wandb_runs(trainer: L.Trainer):
    from lightning.pytorch.loggers import WandbLogger
    return [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def log_videos(trainer: L.Trainer, key: str, paths: list[Path], captions: list[str] | None = None) -> None:
    """Log mp4 files (already written to disk) as W&B videos; a no-op without a W&B logger."""
    runs = _wandb_runs(trainer)
    if not runs or not paths:
        return
    import wandb
    captions = captions or [p.stem for p in paths]
    videos = [wandb.Video(str(p), caption=c, format="mp4") for p, c in zip(paths, captions)]
    for run in runs:
        run.log({key: videos, "trainer/global_step": trainer.global_step})


def log_table(trainer: L.Trainer, key: str, columns: list[str], rows: list[list]) -> None:
    """Log a small table (e.g. per-clip PSNR/SSIM) to W&B; a no-op without a W&B logger."""
    runs = _wandb_runs(trainer)
    if not runs or not rows:
        return
    import wandb
    for run in runs:
        run.log({key: wandb.Table(columns=columns, data=rows), "trainer/global_step": trainer.global_step})


def log_audio(trainer: L.Trainer, key: str, paths: list[Path], captions: list[str] | None = None) -> None:
    """Log wav files (already written) as W&B audio players, so a sample's sound can be heard on its own
    as well as in its mp4; a no-op without a W&B logger (wandb.Audio reads them with ``soundfile``)."""
    runs = _wandb_runs(trainer)
    if not runs or not paths:
        return
    import wandb
    captions = captions or [p.stem for p in paths]
    audio = [wandb.Audio(str(p), caption=c) for p, c in zip(paths, captions)]
    for run in runs:
        run.log({key: audio, "trainer/global_step": trainer.global_step})


def has_wandb(trainer: L.Trainer) -> bool:
    return bool(_wandb_runs(trainer))
