"""``VocoderModule``: HiFi-GAN training with Lightning manual optimisation (generator + discriminators).

Each step cuts a random ``segment_frames``-long window out of every clip (mel frames and the matching
``segment_frames * hop`` samples; drawn from the seed, the step and the rank, so a resume cuts the same), then
  D step: LSGAN loss on real vs detached fake waveforms (MPD + MSD);
  G step: 45 * mel L1 + 2 * feature matching + LSGAN adversarial loss.
Before ``disc_start_step`` only the mel L1 trains the generator (a warm-up that gives the
discriminators something plausible to judge). Every term is per clip and averaged over clips with
``audio_mask`` True. A batch without audio is skipped on a single device (so AdamW's momentum and
decay do not move the weights); under DDP it gives zero losses, still connected to the graph, so all
ranks run the same backward.

``gan_update`` (``modules/gan.py``): ``alternating`` (default) is manual optimisation, a D step then a
G step with two optimisers; ``simultaneous`` is one optimiser and one backward per batch (the update
DeepSpeed can run). Either way the module clips each network's gradients to ``grad_clip`` itself:
set ``trainer.gradient_clip_val=null`` (under DeepSpeed it is DeepSpeed's clip of both together).
In alternating mode Lightning's ``trainer.max_steps`` counts steps of both optimisers (2 per batch
once the discriminators train), in simultaneous mode one per batch; ``disc_start_step`` and
``total_steps`` here count generator updates (``gen_steps``) in both.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import lightning as L
import numpy as np
import torch

from ltx_train.audio.mel import LogMel, MelConfig
from ltx_train.config import to_dataclass
from ltx_train.eval.audio_metrics import masked_mean, mel_l1
from ltx_train.models.audio.discriminators import (Discriminators, discriminator_loss, feature_matching_loss,
                                                   generator_adversarial_loss)
from ltx_train.models.audio.presets import discriminator_config, vocoder_config
from ltx_train.models.audio.vocoder import HiFiGAN
from ltx_train.modules.gan import (check_gan_update, clip_networks, discriminator_runs_idle, frozen, idle,
                                   joint_optimizer)
from ltx_train.modules.hparams import save_plain_hyperparameters
from ltx_train.modules.optim import build_optimizer, clip_grad_norm, lightning_scheduler, warmup_cosine


def random_segments(mel: torch.Tensor, audio: torch.Tensor, frames: int, hop: int,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A random aligned window per clip: mel (B, M, F), audio (B, >= F*hop) -> (B, M, frames), (B, frames*hop).

    Clips shorter than ``frames`` are used whole.
    """
    num = mel.shape[-1]
    if frames >= num:
        return mel, audio[:, : num * hop]
    starts = torch.randint(0, num - frames + 1, (mel.shape[0],), generator=generator).tolist()
    mel_seg = torch.stack([m[:, s:s + frames] for m, s in zip(mel, starts)])
    wav_seg = torch.stack([a[s * hop:(s + frames) * hop] for a, s in zip(audio, starts)])
    return mel_seg, wav_seg


class VocoderModule(L.LightningModule):
    def __init__(self, preset: str = "tiny", generator: dict[str, Any] | None = None,
                 discriminator: dict[str, Any] | None = None, mel: dict[str, Any] | None = None,
                 segment_frames: int = 32, lr: float = 2e-4, betas: tuple[float, float] = (0.8, 0.99),
                 weight_decay: float = 0.01, warmup_steps: int = 0, total_steps: int = 100_000,
                 min_lr_ratio: float = 0.1, mel_weight: float = 45.0, fm_weight: float = 2.0,
                 adv_weight: float = 1.0, disc_start_step: int = 0, grad_clip: float | None = None,
                 gan_update: str = "alternating"):
        """``generator`` / ``discriminator``: overrides of the preset's configs; ``mel``: ``MelConfig`` fields
        (must match the data's mel); ``segment_frames``: mel frames per training window; ``gan_update``:
        ``alternating`` or ``simultaneous`` (module docstring)."""
        super().__init__()
        save_plain_hyperparameters(self)  # plain containers: the checkpoint loads with weights_only=True
        self.automatic_optimization = check_gan_update(gan_update) == "simultaneous"
        self.simultaneous_gan = self.automatic_optimization   # one optimiser over G and D (modules/gan.py)
        self.mel = LogMel(to_dataclass(MelConfig, mel or {}, path="mel"))
        self.generator = HiFiGAN(vocoder_config(preset, **(generator or {})))
        self.discriminators = Discriminators(discriminator_config(preset, **(discriminator or {})))
        hop = self.mel.cfg.hop_length
        if self.generator.hop_length != hop or self.generator.cfg.n_mels != self.mel.cfg.n_mels:
            raise ValueError(f"generator upsamples x{self.generator.hop_length} from {self.generator.cfg.n_mels} "
                             f"mels, but the mel front-end has hop {hop} and {self.mel.cfg.n_mels} mels")
        # Lightning's global_step counts both optimisers' steps; this counts generator updates only.
        self.register_buffer("gen_steps", torch.zeros((), dtype=torch.long))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel (B, n_mels, F) -> waveform (B, F * hop)."""
        return self.generator(mel)

    def _step(self, opt, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()  # clipped in on_before_optimizer_step, after the non-finite guard saw the raw norm

    def on_before_optimizer_step(self, optimizer) -> None:
        # Lightning calls this after the callbacks' hook (NonFiniteGuard) and before optimizer.step();
        # in simultaneous (automatic) mode configure_gradient_clipping clips instead
        if not self.automatic_optimization and self.hparams.grad_clip:
            clip_grad_norm(self, optimizer, self.hparams.grad_clip)

    def discriminator_step_loss(self, real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """LSGAN loss of MPD + MSD on waves (B, S), averaged over clips with audio; ``fake`` is detached."""
        real_logits, _ = self.discriminators(real)
        fake_logits, _ = self.discriminators(fake.detach())
        return masked_mean(discriminator_loss(real_logits, fake_logits), mask)

    def generator_step_losses(self, real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor,
                              use_gan: bool, real_feats: list | None = None) -> dict[str, torch.Tensor]:
        """{"mel_l1", ["g_adv", "fm"], "loss"}: each averaged over clips with audio; waves (B, S).
        ``real_feats``: the discriminators' features of ``real`` when already computed (used detached)."""
        h = self.hparams
        out = {"mel_l1": masked_mean(mel_l1(self.mel(fake), self.mel(real)), mask)}
        loss = h.mel_weight * out["mel_l1"]
        if use_gan:
            if real_feats is None:
                with torch.no_grad():
                    _, real_feats = self.discriminators(real)
            fake_logits, fake_feats = self.discriminators(fake)
            out["g_adv"] = masked_mean(generator_adversarial_loss(fake_logits), mask)
            out["fm"] = masked_mean(feature_matching_loss(real_feats, fake_feats), mask)
            loss = loss + h.adv_weight * out["g_adv"] + h.fm_weight * out["fm"]
        out["loss"] = loss
        return out

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        h = self.hparams
        mask = batch["audio_mask"].bool()
        if not mask.any() and getattr(self._trainer, "world_size", 1) == 1:
            return None  # nothing to learn; under DDP every rank must still run the same backward, below
        mel_seg, real = random_segments(batch["mel"], batch["audio"], h.segment_frames, self.mel.cfg.hop_length,
                                        self.window_generator())
        fake = self.generator(mel_seg)
        use_gan = int(self.gen_steps) >= h.disc_start_step
        if self.automatic_optimization:
            return self._simultaneous_step(real, fake, mask, use_gan)
        self._alternating_step(real, fake, mask, use_gan)
        return None

    def window_generator(self) -> torch.Generator:
        """The RNG of this step's windows: a function of the run's seed, the generator step and the rank
        alone, so that a resumed run, or the same run under another strategy, cuts the same windows (the
        global RNG's state depends on what else drew from it before: samplers, a strategy's set-up)."""
        state = np.random.SeedSequence([torch.initial_seed(), int(self.gen_steps), self.global_rank])
        return torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0]))

    def _alternating_step(self, real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor, use_gan: bool) -> None:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        n = mask.shape[0]
        if use_gan:
            with self.toggled_optimizer(opt_d):
                d_loss = self.discriminator_step_loss(real, fake, mask)
                self._step(opt_d, d_loss)
            sched_d.step()
            self.log("train/d_loss", d_loss, batch_size=n)
        with self.toggled_optimizer(opt_g):  # the discriminators pass gradients on but collect none
            out = self.generator_step_losses(real, fake, mask, use_gan)
            self._step(opt_g, out["loss"])
        sched_g.step()
        self.gen_steps += 1
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=n)

    def _simultaneous_step(self, real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor,
                           use_gan: bool) -> torch.Tensor:
        """One loss for one backward: G's loss through frozen discriminators + D's loss on the detached fake.
        Before ``disc_start_step`` (D's learning rate 0) D runs only where a reducer needs its gradients, at weight 0."""
        d_loss, real_feats = None, None
        if use_gan or discriminator_runs_idle(self):
            with nullcontext() if use_gan else idle(self.discriminators):   # idle: eval mode, their state kept
                real_logits, real_feats = self.discriminators(real)
                fake_logits_d, _ = self.discriminators(fake.detach())
                d_loss = masked_mean(discriminator_loss(real_logits, fake_logits_d), mask)
        with frozen(self.discriminators):
            out = self.generator_step_losses(real, fake, mask, use_gan, real_feats)
        g_loss = out["loss"]
        n = mask.shape[0]
        if use_gan:
            self.log("train/d_loss", d_loss, batch_size=n)
        self.gen_steps += 1
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=n)
        return g_loss if d_loss is None else g_loss + (1.0 if use_gan else 0.0) * d_loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        # simultaneous mode: each network clipped on its own, as the two optimisers of alternating mode are
        if self.hparams.grad_clip:
            clip_networks(self, optimizer, [self.generator, self.discriminators], self.hparams.grad_clip)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        mask = batch["audio_mask"].bool()
        if not mask.any() and getattr(self._trainer, "world_size", 1) == 1:
            return  # several ranks: each runs the forward (sharded weights gather collectively) and logs, with weight 0
        wav = self.generator(batch["mel"])
        score = masked_mean(mel_l1(self.mel(wav), batch["mel"]), mask)
        self.log("val/mel_l1", score, prog_bar=True, batch_size=int(mask.sum()), sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the architecture as plain data, so ``pretrained.component_from_checkpoint`` rebuilds the
        # model from a weights-only load (no LightningModule, no pickled objects)
        from ltx_train.pretrained import record_component
        record_component(checkpoint, "vocoder", self.generator, "generator.")

    def configure_model(self) -> None:
        from ltx_train.parallelize import shard_stage
        shard_stage(self, [self.generator, self.discriminators])   # trainer=fsdp: each network's blocks sharded; otherwise nothing

    def configure_optimizers(self):
        h = self.hparams
        if self.automatic_optimization:   # simultaneous: one optimiser, D's groups idle before disc_start_step
            opt, sched = joint_optimizer(self.generator, self.discriminators, h.lr, h.lr, h.weight_decay,
                                         tuple(h.betas), h.warmup_steps, h.total_steps, h.min_lr_ratio,
                                         disc_start=h.disc_start_step, disc_total_steps=h.total_steps)
            return {"optimizer": opt, "lr_scheduler": lightning_scheduler(sched, "lr/vocoder")}
        opts = [build_optimizer(m, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
                for m in (self.generator, self.discriminators)]
        # stepped by hand in training_step, once per generator update (and per discriminator update)
        return opts, [warmup_cosine(o, h.warmup_steps, h.total_steps, h.min_lr_ratio) for o in opts]
