"""``AudioVAEModule``: trains ``AudioVAE`` on the batch's log-mels.

loss = L1(log-mel) + kl_weight * KL (+ sc_weight * spectral convergence of the mel magnitudes),
each computed per clip and averaged over clips whose ``audio_mask`` is True: a clip without an
audio track is not silence and must not be learnt as such. A batch with no audio gives a zero loss
that is still connected to the graph, so every rank of a DDP job runs the same backward; on a single
device the step is skipped instead (AdamW's weight decay would otherwise still move the weights).
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch


from ltx_train.eval.audio_metrics import log_spectral_distance, masked_mean, mel_l1, spectral_convergence
from ltx_train.models.audio.audio_vae import AudioVAE
from ltx_train.models.audio.presets import audio_vae_config
from ltx_train.modules.hparams import save_plain_hyperparameters
from ltx_train.modules.optim import DeviceGradClipping, build_optimizer, lightning_scheduler, warmup_cosine


class AudioVAEModule(DeviceGradClipping, L.LightningModule):
    def __init__(self, preset: str = "tiny", vae: dict[str, Any] | None = None,
                 lr: float = 2e-4, weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.99),
                 warmup_steps: int = 100, total_steps: int = 10_000, min_lr_ratio: float = 0.1,
                 kl_weight: float = 1e-3, sc_weight: float = 0.0):
        """``vae``: overrides of the preset's ``AudioVAEConfig`` fields (e.g. ``{latent_channels: 16}``)."""
        super().__init__()
        save_plain_hyperparameters(self)  # plain containers: the checkpoint loads with weights_only=True
        self.vae = AudioVAE(audio_vae_config(preset, **(vae or {})))

    def losses(self, batch: dict, sample_posterior: bool = True) -> dict[str, torch.Tensor]:
        """Per-clip losses averaged over clips with audio; also returns the reconstruction."""
        target, mask = batch["mel"], batch["audio_mask"].bool()
        recon, posterior = self.vae(target, sample_posterior=sample_posterior)
        l1 = mel_l1(recon, target)
        kl = posterior.kl()
        out = {"mel_l1": masked_mean(l1, mask), "kl": masked_mean(kl, mask), "recon": recon}
        loss = out["mel_l1"] + self.hparams.kl_weight * out["kl"]
        if self.hparams.sc_weight:
            out["sc"] = masked_mean(spectral_convergence(recon.exp(), target.exp()), mask)
            loss = loss + self.hparams.sc_weight * out["sc"]
        out["loss"] = loss
        return out

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if not batch["audio_mask"].any() and getattr(self._trainer, "world_size", 1) == 1:
            return None  # Lightning skips the optimiser step; under DDP the zero loss below keeps ranks in step
        out = self.losses(batch)
        n = batch["audio_mask"].shape[0]
        for k in ("loss", "mel_l1", "kl", "sc"):
            if k in out:
                self.log(f"train/{k}", out[k], prog_bar=k == "loss", batch_size=n)
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        mask = batch["audio_mask"].bool()
        if not mask.any() and getattr(self._trainer, "world_size", 1) == 1:
            return  # several ranks: each runs the forward (sharded weights gather collectively) and logs, with weight 0
        out = self.losses(batch, sample_posterior=False)
        n = int(mask.sum())
        lsd = masked_mean(log_spectral_distance(out["recon"], batch["mel"]), mask)
        self.log("val/mel_l1", out["mel_l1"], prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/lsd", lsd, batch_size=n, sync_dist=True)
        self.log("val/kl", out["kl"], batch_size=n, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the architecture as plain data, so ``pretrained.component_from_checkpoint`` rebuilds the
        # model from a weights-only load (no LightningModule, no pickled objects)
        from ltx_train.pretrained import record_component
        record_component(checkpoint, "audio_vae", self.vae, "vae.")

    def configure_model(self) -> None:
        from ltx_train.parallelize import shard_stage
        shard_stage(self, [self.vae])   # trainer=fsdp: each network's blocks sharded; otherwise nothing

    def configure_optimizers(self):
        h = self.hparams
        opt = build_optimizer(self.vae, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
        sched = warmup_cosine(opt, h.warmup_steps, h.total_steps, h.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": lightning_scheduler(sched)}
