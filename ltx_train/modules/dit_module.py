"""`DiTModule`: trains the text connector + joint audio-video DiT (+ physics heads) with flow matching.

Frozen parts: the text encoder, the video VAE and the audio VAE (loaded from their training
checkpoints). Trainable: connector, DiT and physics heads, or the connector alone
(``train_mode="connector"``, DiT frozen).

One training step (shapes for the tiny presets on 64x64x25 clips):
    video (B,3,25,64,64) --VAE--> z_v (B,16,7,8,8)      mel (B,64,100) --audio VAE--> z_a (B,8,25)
    captions (some dropped to "" for CFG) --encoder--> (B,L,7,384) --connector--> text (B,R+L,D)
    t ~ logit-normal shifted by token count; x_t = (1-t) z + t noise; DiT predicts v = noise - z
    loss = w_v * MSE_video (clean first frame excluded when image-conditioned)
         + w_a * MSE_audio (clips without audio masked out) + sum_k w_k * physics_k
"""
from __future__ import annotations

import dataclasses
import random
from contextlib import nullcontext
from typing import Any

import lightning as L
import torch
import torch.nn as nn

from ltx_train.config import to_dataclass, to_plain
from ltx_train.diffusion.flow import add_noise, flow_loss, sample_timesteps, velocity_target
from ltx_train.models.audio.audio_vae import AudioVAE, AudioVAEConfig
from ltx_train.models.dit.dit import JointDiT, JointDiTConfig
from ltx_train.models.dit.physics_heads import PhysicsHeads, PhysicsHeadsConfig, physics_losses, physics_targets
from ltx_train.models.dit.presets import preset as dit_preset
from ltx_train.models.text.connector import TextConnector, TextConnectorConfig, connector_preset
from ltx_train.models.text.encoder import FrozenTextEncoder
from ltx_train.models.vae import VideoVAE, VideoVAEConfig
from ltx_train.modules.ema import EMA
from ltx_train.modules.frozen import load_audio_vae, load_video_vae
from ltx_train.modules.optim import build_optimizer, lightning_scheduler, warmup_cosine

PHYSICS_KEYS = ("gravity", "light", "centers", "contact_video", "contact_audio")


@dataclasses.dataclass
class PhysicsLossConfig:
    enabled: bool = True
    block: int = -2                  # DiT block whose output the heads read (negative: from the end)
    hidden: int = 256
    contact_pos_weight: float = 4.0  # contacts are rare latents; up-weight positives
    gravity: float = 0.1
    light: float = 0.1
    centers: float = 0.1
    contact_video: float = 0.05
    contact_audio: float = 0.05


def _from_preset(cls, presets_fn, value: Any, path: str):
    """``{"preset": name, **overrides}`` (or a plain field dict) -> typed config, naming bad keys."""
    d = dict(to_plain(value) or {})
    name = d.pop("preset", None)
    base = dataclasses.asdict(presets_fn(name)) if name else {}
    return to_dataclass(cls, {**base, **d}, path)


class DiTModule(L.LightningModule):
    def __init__(self, vae_checkpoint: str, audio_vae_checkpoint: str,
                 dit: dict | None = None, connector: dict | None = None, text_encoder: dict | None = None,
                 physics: dict | None = None, train_mode: str = "all",
                 lr: float = 3e-4, weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.99),
                 warmup_steps: int = 100, total_steps: int = 10_000, min_lr_ratio: float = 0.1,
                 video_loss_weight: float = 1.0, audio_loss_weight: float = 1.0,
                 caption_dropout: float = 0.1, first_frame_prob: float = 0.2,
                 timestep_mean: float = 0.0, timestep_std: float = 1.0, timestep_shift: bool = True,
                 ema_decay: float = 0.999, compile: bool = False, frozen: dict | None = None):
        """``compile``: ``torch.compile`` the DiT blocks when fitting starts (training, validation and
        the sample callback run compiled; a pipeline loaded from the checkpoint stays eager).
        ``frozen``: architectures of the frozen VAEs, written into every checkpoint by
        ``on_save_checkpoint`` so a saved DiT loads (weights from its own state dict) even after the
        VAE checkpoints it was trained from have moved; leave it None when starting a run."""
        super().__init__()
        self.save_hyperparameters()
        if train_mode not in ("all", "connector"):
            raise ValueError(f"model.train_mode must be 'all' or 'connector', got {train_mode!r}")
        # frozen: encoders of the three modalities
        if frozen is not None:
            self.vae = VideoVAE(VideoVAEConfig.from_dict(frozen["vae"]))
            self.audio_vae = AudioVAE(AudioVAEConfig(**frozen["audio_vae"]))
        else:
            self.vae = load_video_vae(vae_checkpoint)
            self.audio_vae = load_audio_vae(audio_vae_checkpoint)
        te = dict(text_encoder or {})
        # kept out of the module tree (object.__setattr__) so checkpoints do not carry its frozen weights
        object.__setattr__(self, "text_encoder", FrozenTextEncoder(
            path=te.get("path"), max_length=te.get("max_length", 64), cache_size=te.get("cache_size", 4096)))
        # trainable: connector + DiT (+ physics heads); shapes follow the frozen parts
        ccfg = _from_preset(TextConnectorConfig, connector_preset, connector or {"preset": "baseline"}, "model.connector")
        ccfg = dataclasses.replace(ccfg, in_dim=self.text_encoder.hidden_size,
                                   in_layers=self.text_encoder.num_hidden_states)
        acfg = self.audio_vae.cfg
        dcfg = _from_preset(JointDiTConfig, dit_preset, dit or {"preset": "tiny"}, "model.dit")
        dcfg = dataclasses.replace(
            dcfg, video_channels=self.vae.config.latent_channels, audio_channels=acfg.latent_channels,
            temporal_compression=self.vae.temporal_compression, audio_compression=acfg.time_compression,
            text_dim=ccfg.output_dim)
        self.pcfg = to_dataclass(PhysicsLossConfig, physics or {}, "model.physics")
        self.denoiser = nn.ModuleDict({"connector": TextConnector(ccfg), "dit": JointDiT(dcfg)})
        if self.pcfg.enabled:
            self.denoiser["physics"] = PhysicsHeads(PhysicsHeadsConfig(
                width=dcfg.width, hidden=self.pcfg.hidden, patch_t=dcfg.patch_size[0]))
        if train_mode == "connector":
            self.denoiser["dit"].requires_grad_(False)
        self.ema = EMA(self.denoiser, ema_decay) if ema_decay > 0 else None
        # per-channel latent statistics, measured on the first training batch and saved with the weights
        self.register_buffer("video_stats", torch.zeros(2, dcfg.video_channels))
        self.register_buffer("audio_stats", torch.zeros(2, dcfg.audio_channels))
        self.register_buffer("stats_ready", torch.zeros((), dtype=torch.bool))
        self._stats_ready = False
        for part in (self.vae, self.audio_vae):
            part.requires_grad_(False).eval()

    def on_fit_start(self) -> None:
        if self.hparams.compile:
            self.dit.compile_blocks()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["hyper_parameters"]["frozen"] = {"vae": self.vae.config.to_dict(),
                                                    "audio_vae": dataclasses.asdict(self.audio_vae.cfg)}

    # ------------------------------------------------------------------ helpers shared with the pipeline
    @property
    def dit(self) -> JointDiT:
        return self.denoiser["dit"]

    @property
    def connector(self) -> TextConnector:
        return self.denoiser["connector"]

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()
        self.audio_vae.eval()
        return self

    def text_tokens(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if next(self.text_encoder.parameters()).device != self.device:
            self.text_encoder.to(self.device)
        hidden, mask = self.text_encoder.encode(list(captions))
        return self.connector(hidden.to(self.device), mask.to(self.device))

    @torch.no_grad()
    def encode_latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latents: video (B, Cv, Tv, Hv, Wv) and audio (B, Ca, Ta)."""
        z_v = self.vae.encode(batch["video"]).mode()
        z_a = self.audio_vae.encode(batch["mel"]).mode()
        if not self._stats_ready:     # host-side flag: reading the buffer every step would sync the GPU
            if not bool(self.stats_ready):
                self._measure_stats(z_v, z_a, batch["audio_mask"].bool())
            self._stats_ready = True
        return self.normalize(z_v, z_a)

    def _measure_stats(self, z_v, z_a, audio_mask) -> None:
        v = z_v.transpose(0, 1).flatten(1)
        self.video_stats.copy_(torch.stack([v.mean(1), v.std(1).clamp(min=1e-3)]))
        a = z_a[audio_mask] if audio_mask.any() else z_a
        a = a.transpose(0, 1).flatten(1)
        self.audio_stats.copy_(torch.stack([a.mean(1), a.std(1).clamp(min=1e-3)]))
        self.stats_ready.fill_(True)

    def normalize(self, z_v, z_a):
        mv, sv = self.video_stats[:, :, None, None, None].to(z_v.dtype)
        ma, sa = self.audio_stats[:, :, None].to(z_a.dtype)
        return (z_v - mv) / sv, (z_a - ma) / sa

    def denormalize(self, z_v, z_a):
        mv, sv = self.video_stats[:, :, None, None, None].to(z_v.dtype)
        ma, sa = self.audio_stats[:, :, None].to(z_a.dtype)
        return z_v * sv + mv, z_a * sa + ma

    def num_tokens(self, z_v: torch.Tensor, z_a: torch.Tensor) -> int:
        pt, ph, pw = self.dit.cfg.patch_size
        _, _, t, h, w = z_v.shape
        return (t // pt) * (h // ph) * (w // pw) + z_a.shape[-1]

    # ------------------------------------------------------------------ the loss
    def _losses(self, batch: dict, generator: torch.Generator | None, train: bool) -> dict[str, torch.Tensor]:
        z_v, z_a = self.encode_latents(batch)
        b, dev = z_v.shape[0], z_v.device
        captions = list(batch["caption"])
        if train and self.hparams.caption_dropout > 0:
            # the empty caption is the unconditional input of classifier-free guidance
            captions = ["" if random.random() < self.hparams.caption_dropout else c for c in captions]
        text, text_mask = self.text_tokens(captions)

        h = self.hparams
        # validation passes a CPU generator (same noise on every device); training draws on the device
        gen_dev = "cpu" if generator is not None else dev
        t = sample_timesteps(b, self.num_tokens(z_v, z_a), generator, mean=h.timestep_mean, std=h.timestep_std,
                             shift=h.timestep_shift, device=gen_dev).to(dev)
        n_v = torch.randn(z_v.shape, generator=generator, device=gen_dev).to(dev)
        n_a = torch.randn(z_a.shape, generator=generator, device=gen_dev).to(dev)
        x_v, x_a = add_noise(z_v, n_v, t), add_noise(z_a, n_a, t)

        # image-to-video: some clips keep latent frame 0 clean (t = 0) and are not scored on it
        cond = torch.zeros(b, z_v.shape[2], dtype=torch.bool, device=dev)
        if h.first_frame_prob > 0:
            pick = torch.rand(b, generator=generator, device=gen_dev).to(dev) < h.first_frame_prob
            cond[:, 0] = pick
            x_v = torch.where(cond[:, None, :, None, None], z_v, x_v)

        out = self.dit(x_v, x_a, t, text, text_mask, cond_mask=cond if h.first_frame_prob > 0 else None, fps=batch["fps"],
                       return_hidden_at=self.pcfg.block if self.pcfg.enabled else None)
        v_mask = (~cond)[:, None, :, None, None].float()
        a_mask = batch["audio_mask"].bool()[:, None, None].float()
        loss_v = flow_loss(out["video"], velocity_target(z_v, n_v), v_mask).mean()
        has_audio = batch["audio_mask"].bool()
        loss_a = flow_loss(out["audio"], velocity_target(z_a, n_a), a_mask).sum() / has_audio.sum().clamp(min=1)
        losses = {"video": loss_v, "audio": loss_a}
        total = h.video_loss_weight * loss_v + h.audio_loss_weight * loss_a
        if self.pcfg.enabled:
            targets = physics_targets(batch, z_v.shape[2], z_a.shape[-1],
                                      temporal_compression=self.vae.temporal_compression,
                                      sample_rate=self.dit.cfg.audio_sample_rate,
                                      hop_length=self.dit.cfg.audio_hop_length,
                                      audio_compression=self.audio_vae.cfg.time_compression)
            preds = self.denoiser["physics"](out["hidden"])
            for k, v in physics_losses(preds, targets, self.pcfg.contact_pos_weight).items():
                losses[f"physics_{k}"] = v
                total = total + getattr(self.pcfg, k) * v
        losses["loss"] = total
        return losses

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch, None, train=True)
        n = len(batch["caption"])
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=n)
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=n)
        if "skipped" in batch:
            self.log("data/skipped", torch.as_tensor(batch["skipped"]).float().max(), batch_size=1)
        return losses["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.ema is not None:
            self.ema.update(self.denoiser)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # fixed noise and timesteps per batch index, so val curves compare across steps and runs
        g = torch.Generator().manual_seed(1234 + batch_idx)
        ctx = self.ema.swapped_into(self.denoiser) if self.ema is not None else nullcontext()
        with ctx:
            losses = self._losses(batch, g, train=False)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, batch_size=len(batch["caption"]))

    def configure_optimizers(self):
        h = self.hparams
        opt = build_optimizer(self.denoiser, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
        sched = warmup_cosine(opt, h.warmup_steps, h.total_steps, h.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": lightning_scheduler(sched, "lr")}

