"""Callbacks that turn validation outputs into files to watch and W&B media.

- ``ReconstructionVideos``: the VAE module's ``val_examples`` -> original|reconstruction mp4s and a
  per-clip PSNR/SSIM table.
- ``SampleVideos``: every N steps, generate clips with sound from fixed prompts with the DiT
  module being trained (EMA weights) and write/log them; for a LoRA run each clip is shown beside
  the base model's clip for the same prompt and seed (adapter | base). With W&B also each clip's
  audio on its own and a physics table (``physics_rows``: the tracked gravity angle, bounces and
  A/V sync of each clip against its prompt, as ``ltx-eval task=physics`` measures them).
Files go to ``<trainer.default_root_dir>/samples/``; W&B gets them when a WandbLogger is attached.
"""
from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ltx_train.media import write_mp4
from ltx_train.eval.video_io import side_by_side
from ltx_train.modules.media import has_wandb, log_audio, log_table, log_videos

log = logging.getLogger(__name__)


def _samples_dir(trainer: L.Trainer) -> Path:
    d = Path(trainer.default_root_dir) / "samples"
    d.mkdir(parents=True, exist_ok=True)
    return d


class ReconstructionVideos(L.Callback):
    def __init__(self, fps: float = 24.0, max_videos: int = 2):
        self.fps, self.max_videos = fps, max_videos

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        examples = getattr(pl_module, "val_examples", None)
        if trainer.sanity_checking or not examples or not trainer.is_global_zero:
            return
        paths, rows = [], []
        for i, (orig, recon) in enumerate(examples[: self.max_videos]):
            o, r = orig.float().cpu(), recon.float().cpu().clamp(-1, 1)
            frames_o, frames_r = (o.transpose(0, 1) + 1) / 2, (r.transpose(0, 1) + 1) / 2   # (T, 3, H, W)
            psnr = float(peak_signal_noise_ratio(frames_r, frames_o, data_range=1.0))
            ssim = float(structural_similarity_index_measure(frames_r, frames_o, data_range=1.0))
            path = _samples_dir(trainer) / f"recon_step{trainer.global_step:06d}_{i}.mp4"
            write_mp4(path, side_by_side(o, r), self.fps)
            paths.append(path)
            rows.append([trainer.global_step, i, psnr, ssim])
        log_videos(trainer, "val/reconstructions", paths, [f"original | reconstruction #{i}" for i in range(len(paths))])
        log_table(trainer, "val/recon_metrics", ["step", "clip", "psnr", "ssim"], rows)


class SampleVideos(L.Callback):
    def __init__(self, prompts: list[str], every_n_steps: int = 500, seconds: float = 1.0, fps: float = 24.0,
                 height: int = 64, width: int = 64, steps: int = 20, guidance_scale: float = 3.0,
                 vocoder_checkpoint: str | None = None, seed: int = 0):
        self.prompts, self.every = list(prompts), every_n_steps
        self.kwargs = dict(seconds=seconds, fps=fps, height=height, width=width, steps=steps,
                           guidance_scale=guidance_scale, seed=seed)
        self.vocoder_checkpoint = vocoder_checkpoint
        self._vocoder = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # a sharded model (trainer=fsdp) gathers its weights collectively: every rank draws the same
        # samples (same prompts and seed), rank 0 alone writes them
        from ltx_train.parallelize import is_fsdp
        if step == 0 or step % self.every or not (trainer.is_global_zero or is_fsdp(trainer)):
            return
        from ltx_train.modules.frozen import load_vocoder
        from ltx_train.pipeline import LTXVideoPipeline
        if self.vocoder_checkpoint and self._vocoder is None:
            self._vocoder = load_vocoder(self.vocoder_checkpoint)
        vocoder = self._vocoder if self._vocoder is not None else getattr(pl_module, "sample_vocoder", None)
        vocoder = vocoder.to(pl_module.device) if vocoder is not None else None
        was_training = pl_module.training
        try:
            with pl_module.ema_weights():
                vae, audio_vae, text_encoder = pl_module.sampling_parts()
                pipe = LTXVideoPipeline(vae, audio_vae, pl_module.model, text_encoder, vocoder)
                clips = pipe(self.prompts, **self.kwargs)
                if getattr(pl_module, "has_lora", False):
                    with pl_module.without_adapter():
                        base = pipe(self.prompts, **self.kwargs)
                    for clip, b in zip(clips, base):  # adapter | base, same prompt and seed
                        clip.frames = np.concatenate([clip.frames, b.frames], axis=2)
        finally:
            pl_module.train(was_training)
        if not trainer.is_global_zero:
            return
        paths = []
        for i, clip in enumerate(clips):
            paths.append(LTXVideoPipeline.save(clip, _samples_dir(trainer) / f"sample_step{step:06d}_{i}.mp4"))
        log_videos(trainer, "samples", paths, [c.prompt[:200] for c in clips])
        if has_wandb(trainer):  # the tracker costs a little CPU per clip: only when someone looks
            from ltx_train.eval.audio_eval import write_wav
            wavs = [p.with_suffix(".wav") for p in paths]
            for wav, clip in zip(wavs, clips):
                write_wav(wav, clip.audio, clip.sample_rate)
            log_audio(trainer, "samples/audio", wavs, [c.prompt[:200] for c in clips])
            log_table(trainer, "samples/physics", PHYSICS_COLUMNS, physics_rows(step, clips, self.kwargs["width"]))
        log.info("wrote %d samples at step %d", len(paths), step)



PHYSICS_COLUMNS = ["step", "clip", "prompt", "gravity_angle_deg", "bounces", "bounces_expected",
                   "objects_tracked", "objects", "sync_within_2_frames"]


def physics_rows(step: int, clips: list, width: int) -> list[list]:
    """One ``PHYSICS_COLUMNS`` row per generated clip, judged against its prompt. Only the first
    ``width`` columns are tracked: a LoRA sample is adapter | base side by side."""
    from ltx_train.eval.physics_eval import evaluate_clip, spec_from_prompt
    rows = []
    for i, clip in enumerate(clips):
        r = evaluate_clip(clip.frames[:, :, :width], clip.audio, clip.sample_rate, clip.fps,
                          spec_from_prompt(clip.prompt))
        rows.append([step, i, clip.prompt[:200], r["angle_deg"], r["bounces_detected"], r["bounces_expected"],
                     r["objects_tracked"], r["num_objects"], r["sync"]["within_2_frames"]])
    return rows

