"""LightningModule that trains the video VAE: L1 + (1 - SSIM) + KL, optional hinge patch-GAN.

Optimisation is automatic (one AdamW, Lightning handles clipping / accumulation / precision) unless
``gan_weight > 0``; then ``gan_update`` (``modules/gan.py``) picks how G and D update:
``alternating`` (default) is manual optimisation with a generator and a discriminator optimiser,
``simultaneous`` one optimiser and one backward per batch (the update DeepSpeed can run). In GAN mode:
- the trainer must not clip (``trainer.gradient_clip_val=null``); ``grad_clip`` here clips each
  network on its own instead (under DeepSpeed: DeepSpeed's clip of both together);
- alternating: Lightning's ``trainer.global_step`` counts both optimisers' steps, so ``trainer.max_steps``
  counts two per batch once the GAN is on; simultaneous: one per batch. ``gan_start_step`` and the LR
  schedule count generator steps in both.

Clips whose frame count is not 1 + tc*k are cropped to their first 1 + tc*k frames, and frames whose
size is not a multiple of the spatial compression are centre-cropped (``crop_to_valid``).
"""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext

import lightning as L
import torch
from einops import rearrange
from omegaconf import OmegaConf
from torchmetrics.functional.image import structural_similarity_index_measure as ssim_fn
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from ltx_train.config import to_dataclass
from ltx_train.models.vae import VideoVAE, VideoVAEConfig, crop_to_valid, preset
from ltx_train.models.vae.discriminator import (PatchDiscriminator3d, PatchDiscriminatorConfig,
                                                hinge_d_loss, hinge_g_loss)
from ltx_train.modules.gan import (check_gan_update, clip_networks, discriminator_runs_idle, frozen, idle,
                                   joint_optimizer)
from ltx_train.modules.hparams import save_plain_hyperparameters
from ltx_train.modules.optim import DeviceGradClipping, build_optimizer, clip_grad_norm, lightning_scheduler, warmup_cosine


def resolve_vae_config(vae: str | Mapping | VideoVAEConfig) -> VideoVAEConfig:
    """A preset name, a mapping (optionally ``{"preset": name, **overrides}``) or a config."""
    if isinstance(vae, VideoVAEConfig):
        return vae
    if isinstance(vae, str):
        return preset(vae)
    if OmegaConf.is_config(vae):  # Hydra hands nested DictConfig / ListConfig
        vae = OmegaConf.to_container(vae, resolve=True)
    d = dict(vae)
    name = d.pop("preset", None)
    base = preset(name).to_dict() if name is not None else {}
    return to_dataclass(VideoVAEConfig, {**base, **d}, "model.vae")  # names a bad key or type


def frames_of(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B*T, C, H, W): image metrics see every frame as an image."""
    return rearrange(video, "b c t h w -> (b t) c h w")


class VAEModule(DeviceGradClipping, L.LightningModule):
    def __init__(self, vae: str | Mapping | VideoVAEConfig = "tiny", lr: float = 1e-3,
                 weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.99),
                 warmup_steps: int = 50, total_steps: int = 10_000, min_lr_ratio: float = 0.1,
                 l1_weight: float = 1.0, ssim_weight: float = 0.5, kl_weight: float = 1e-6,
                 gan_weight: float = 0.0, gan_start_step: int = 2000, disc_lr: float | None = None,
                 disc_channels: int = 32, disc_layers: int = 3, grad_clip: float | None = 1.0,
                 sample_posterior: bool = True, val_max_videos: int = 4, gan_update: str = "alternating",
                 compile: bool = False):
        super().__init__()
        check_gan_update(gan_update)
        vae = resolve_vae_config(vae).to_dict()  # hparams hold a plain dict: YAML- and checkpoint-safe
        betas = [float(b) for b in betas]
        save_plain_hyperparameters(self)  # plain containers: the checkpoint loads with weights_only=True
        self.vae = VideoVAE(VideoVAEConfig.from_dict(vae))
        self.use_gan = gan_weight > 0
        self.automatic_optimization = not self.use_gan or gan_update == "simultaneous"
        self.simultaneous_gan = self.use_gan and gan_update == "simultaneous"   # one optimiser over G and D
        self.disc = None
        if self.use_gan:
            self.disc = PatchDiscriminator3d(PatchDiscriminatorConfig(channels=disc_channels, layers=disc_layers))
        # generator steps taken, checkpointed with the weights (global_step also counts D's steps)
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))
        self.val_psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3, 4), reduction="elementwise_mean")
        self.val_ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
        self.val_examples: list[tuple[torch.Tensor, torch.Tensor]] = []  # (original, recon) (3, T, H, W)

    def video_of(self, batch) -> torch.Tensor:
        """Batch dict (or a bare tensor) -> (B, 3, 1 + tc*k, H', W') cropped to a valid VAE input."""
        x = batch["video"] if isinstance(batch, Mapping) else batch
        return crop_to_valid(x, self.vae.spatial_compression, self.vae.temporal_compression)

    def reconstruction_losses(self, x: torch.Tensor, recon: torch.Tensor, posterior) -> dict[str, torch.Tensor]:
        hp = self.hparams
        l1 = (recon - x).abs().mean()
        with torch.autocast(device_type=x.device.type, enabled=False):  # see validation_step
            ssim = ssim_fn(frames_of(recon.float()), frames_of(x.float()), data_range=2.0)
        kl = posterior.kl().mean()
        loss = hp.l1_weight * l1 + hp.ssim_weight * (1 - ssim) + hp.kl_weight * kl
        return {"loss": loss, "l1": l1.detach(), "ssim": ssim.detach(), "kl": kl.detach(),
                "logvar": posterior.logvar.mean().detach()}

    def _log_train(self, values: dict, batch, batch_size: int) -> None:
        self.log_dict({f"train/{k}": v for k, v in values.items() if k != "loss"}, on_step=True,
                      batch_size=batch_size, prog_bar=False)
        self.log("train/loss", values["loss"], on_step=True, batch_size=batch_size, prog_bar=True)
        if isinstance(batch, Mapping) and "skipped" in batch:
            skipped = batch["skipped"]
            skipped = skipped.max().item() if torch.is_tensor(skipped) else skipped
            self.log("data/skipped", float(skipped), on_step=True, batch_size=batch_size)

    def training_step(self, batch, batch_idx: int):
        x = self.video_of(batch)
        recon, posterior = self.vae(x, sample=self.hparams.sample_posterior)
        losses = self.reconstruction_losses(x, recon, posterior)
        if not self.use_gan:
            self.generator_steps += 1
            self._log_train(losses, batch, x.shape[0])
            return losses["loss"]
        if self.automatic_optimization:
            return self._simultaneous_gan_step(x, recon, losses, batch)
        return self._gan_step(x, recon, losses, batch)

    def _simultaneous_gan_step(self, x: torch.Tensor, recon: torch.Tensor, losses: dict, batch) -> torch.Tensor:
        """One loss for one backward: the VAE's loss through a frozen discriminator + the discriminator's loss
        on the detached reconstruction. Before ``gan_start_step`` (its learning rate 0) the discriminator runs
        only where a reducer needs its gradients, at weight 0."""
        hp = self.hparams
        gan_on = int(self.generator_steps) >= hp.gan_start_step
        d_loss = None
        if gan_on or discriminator_runs_idle(self):
            with nullcontext() if gan_on else idle(self.disc):   # idle: eval mode, its state kept
                d_loss = hinge_d_loss(self.disc(x), self.disc(recon.detach()))
        loss = losses["loss"]
        if gan_on:
            with frozen(self.disc):
                g_adv = hinge_g_loss(self.disc(recon))
            loss = loss + hp.gan_weight * g_adv
            losses["gan_g"], losses["gan_d"] = g_adv.detach(), d_loss.detach()
        self.generator_steps += 1
        losses["loss"] = loss.detach()
        self._log_train(losses, batch, x.shape[0])
        return loss if d_loss is None else loss + (1.0 if gan_on else 0.0) * d_loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if self.use_gan:   # simultaneous GAN: each network clipped on its own, as the two optimisers are
            if self.hparams.grad_clip:
                clip_networks(self, optimizer, [self.vae, self.disc], self.hparams.grad_clip)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _gan_step(self, x: torch.Tensor, recon: torch.Tensor, losses: dict, batch) -> torch.Tensor:
        hp = self.hparams
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        gan_on = int(self.generator_steps) >= hp.gan_start_step
        loss = losses["loss"]
        if gan_on:
            self.toggle_optimizer(opt_g)  # D's weights get no grads from the generator loss
            g_adv = hinge_g_loss(self.disc(recon))
            loss = loss + hp.gan_weight * g_adv
            losses["gan_g"] = g_adv.detach()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt_g.step()  # clipped in on_before_optimizer_step, after the non-finite guard saw the raw norm
        sched_g.step()
        if gan_on:
            self.untoggle_optimizer(opt_g)
            self.toggle_optimizer(opt_d)
            d_loss = hinge_d_loss(self.disc(x), self.disc(recon.detach()))
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            sched_d.step()
            self.untoggle_optimizer(opt_d)
            losses["gan_d"] = d_loss.detach()
        self.generator_steps += 1
        losses["loss"] = loss.detach()
        self._log_train(losses, batch, x.shape[0])
        return loss.detach()

    def on_before_optimizer_step(self, optimizer) -> None:
        # manual (GAN) mode clips here: Lightning calls this hook after callbacks' (NonFiniteGuard) and
        # before optimizer.step(); in automatic mode the trainer clips (trainer.gradient_clip_val)
        if self.use_gan and not self.automatic_optimization and self.hparams.grad_clip:
            clip_grad_norm(self, optimizer, self.hparams.grad_clip)

    def on_validation_epoch_start(self) -> None:
        self.val_examples = []

    def validation_step(self, batch, batch_idx: int) -> None:
        x = self.video_of(batch)
        recon, posterior = self.vae(x, sample=False)
        losses = self.reconstruction_losses(x, recon, posterior)
        b = x.shape[0]
        r01, x01 = (recon.float().clamp(-1, 1) + 1) / 2, (x.float() + 1) / 2
        # metrics in float32 even under bf16 autocast: SSIM's E[x^2] - E[x]^2 cancels badly in bf16
        with torch.autocast(device_type=x.device.type, enabled=False):
            self.val_psnr.update(r01, x01)
            self.val_ssim.update(frames_of(r01), frames_of(x01))
        self.log("val/loss", losses["loss"], batch_size=b)
        self.log("val/l1", losses["l1"], batch_size=b)
        self.log("val/psnr", self.val_psnr, batch_size=b, prog_bar=True)
        self.log("val/ssim", self.val_ssim, batch_size=b)
        for i in range(b):
            if len(self.val_examples) >= self.hparams.val_max_videos:
                break
            self.val_examples.append((x[i].detach().float().cpu(), recon[i].detach().float().clamp(-1, 1).cpu()))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the architecture as plain data, so ``pretrained.component_from_checkpoint`` rebuilds the
        # model from a weights-only load (no LightningModule, no pickled objects)
        from ltx_train.pretrained import record_component
        record_component(checkpoint, "vae", self.vae, "vae.")

    def configure_model(self) -> None:
        from ltx_train.parallelize import shard_stage
        shard_stage(self, [self.vae, self.disc])   # trainer=fsdp: each network's blocks sharded; otherwise nothing
        if self.hparams.compile and not getattr(self, "_compiled", False):
            from ltx_train.parallelize import compile_vae
            compile_vae(self.vae)
            self._compiled = True

    def configure_optimizers(self):
        hp = self.hparams
        d_steps = max(1, hp.total_steps - hp.gan_start_step)
        if self.use_gan and self.automatic_optimization:   # simultaneous: D's groups idle before gan_start_step
            opt, sched = joint_optimizer(self.vae, self.disc, hp.lr, hp.disc_lr or hp.lr, hp.weight_decay,
                                         tuple(hp.betas), hp.warmup_steps, hp.total_steps, hp.min_lr_ratio,
                                         disc_start=hp.gan_start_step, disc_total_steps=d_steps)
            return {"optimizer": opt, "lr_scheduler": lightning_scheduler(sched, "lr/vae")}
        opt_g = build_optimizer(self.vae, hp.lr, hp.weight_decay, hp.betas)
        sched_g = lightning_scheduler(warmup_cosine(opt_g, hp.warmup_steps, hp.total_steps, hp.min_lr_ratio), "lr/vae")
        if not self.use_gan:
            return {"optimizer": opt_g, "lr_scheduler": sched_g}
        opt_d = build_optimizer(self.disc, hp.disc_lr or hp.lr, hp.weight_decay, hp.betas)
        sched_d = lightning_scheduler(warmup_cosine(opt_d, hp.warmup_steps, d_steps, hp.min_lr_ratio), "lr/disc")
        return [opt_g, opt_d], [sched_g, sched_d]
