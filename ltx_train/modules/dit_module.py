"""`DiTModule`: trains an ``LTXModel`` (text connector + joint audio-video DiT + physics heads) with
flow matching on the latents of frozen VAEs.

The module holds only what training needs: the frozen encoders (video VAE, audio VAE, text
encoder), the objective (``ltx_train.objectives.joint``), EMA, optimiser and schedule. The model is
``self.model``, a plain ``nn.Module`` that leaves training as a pretrained directory (``ltx-export``).

One training step (shapes for the tiny presets on 64x64x25 clips):
    video (B,3,25,64,64) --VAE--> z_v (B,16,7,8,8)      mel (B,64,100) --audio VAE--> z_a (B,8,25)
    captions (some dropped to "" for CFG) --encoder--> (B,L,7,384) --connector--> text (B,N,D)
    normalised latents + text -> ``joint_losses``

Frozen parts come from their training checkpoints (``vae_checkpoint``, ``audio_vae_checkpoint``) or,
with ``init_from=<pretrained dir>``, from a pretrained directory that also gives the model's
architecture and weights (finetuning). ``train_mode="connector"`` trains the connector alone.

From a latent cache (``data=latents``; ``ltx-train`` passes ``latents=<cache dir>``) the module loads
no VAE and no text encoder: the batch holds their outputs, the cache's manifest gives the shapes the
model is built for (or checked against, with ``init_from``), and the encoders are loaded from where
the manifest says only if a sampling callback asks for them (``sampling_parts``).
"""
from __future__ import annotations

import dataclasses
import logging
import random
from contextlib import nullcontext
from typing import Any

import lightning as L
import torch
import torch.nn as nn

from ltx_train.config import ConfigError, to_dataclass, to_plain
from ltx_train.models.dit.dit import JointDiTConfig
from ltx_train.models.dit.physics_heads import PhysicsHeadsConfig
from ltx_train.models.image.encoder import ImageEncoderConfig
from ltx_train.models.dit.presets import preset as dit_preset
from ltx_train.models.ltx import LTXModel, LTXModelConfig
from ltx_train.models.text.connector import TextConnectorConfig, connector_preset
from ltx_train.models.text.encoder import FrozenTextEncoder
from ltx_train.modules.ema import EMA
from ltx_train.modules.hparams import save_plain_hyperparameters
from ltx_train.modules.nonfinite import step_ok
from ltx_train.modules.optim import DeviceGradClipping, build_optimizer, lightning_scheduler, warmup_cosine
from ltx_train.parallelize import compile_scope
from ltx_train.objectives.joint import PHYSICS_KEYS, JointLossConfig, joint_losses
from ltx_train.pretrained import component_from_checkpoint, load_component, record_component

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PhysicsConfig:
    """The ``model.physics`` group: heads (model side) and loss weights (objective side)."""
    enabled: bool = True
    block: int = -2                  # DiT block whose output the heads read (negative: from the end)
    hidden: int = 256
    contact_pos_weight: float = 4.0
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


class DiTModule(DeviceGradClipping, L.LightningModule):
    def __init__(self, vae_checkpoint: str | None = None, audio_vae_checkpoint: str | None = None,
                 dit: dict | None = None, connector: dict | None = None, text_encoder: dict | None = None,
                 physics: dict | None = None, train_mode: str = "all", init_from: str | None = None,
                 lr: float = 3e-4, weight_decay: float = 0.01, betas: tuple[float, float] = (0.9, 0.99),
                 warmup_steps: int = 100, total_steps: int = 10_000, min_lr_ratio: float = 0.1,
                 video_loss_weight: float = 1.0, audio_loss_weight: float = 1.0,
                 caption_dropout: float = 0.1, first_frame_prob: float = 0.2,
                 timestep_mean: float = 0.0, timestep_std: float = 1.0, timestep_shift: bool = True,
                 ema_decay: float = 0.999, compile: bool | str = False, activation_checkpointing: bool = False,
                 latents: str | None = None, image: dict | None = None, image_dropout: float = 0.1):
        """``compile``: ``torch.compile`` the DiT blocks (true / "blocks") or every part of the model ("all")
        when the trainer has placed it (``ltx_train.parallelize``). ``activation_checkpointing``: recompute
        each DiT block's activations in the backward pass (``parallelize.checkpoint_blocks``; also on when
        the DiT config's legacy ``gradient_checkpointing`` is). ``init_from``: a pretrained
        directory (``ltx-export`` / ``save_pretrained``): its model, VAEs and text-encoder reference
        replace ``dit``, ``connector``, ``text_encoder`` and the two checkpoints. ``latents``: a latent
        cache directory (set by ``data=latents``): no encoder is loaded, the checkpoints are not read.
        ``image``: ``ImageEncoderConfig`` fields (``kind: conv`` or ``clip`` + ``clip_path``) to condition
        image-to-video clips on their first frame's spatial features too; null: the latent frame alone.
        ``image_dropout``: share of those clips given the null image tokens (for image guidance)."""
        super().__init__()
        save_plain_hyperparameters(self)  # plain containers: the checkpoint loads with weights_only=True
        if train_mode not in ("all", "connector"):
            raise ConfigError(f"model.train_mode must be 'all' or 'connector', got {train_mode!r}")
        try:
            compile_scope(compile)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.pcfg = to_dataclass(PhysicsConfig, physics or {}, "model.physics")
        self.loss_cfg = JointLossConfig(
            video_weight=video_loss_weight, audio_weight=audio_loss_weight, first_frame_prob=first_frame_prob,
            image_dropout=image_dropout,
            timestep_mean=timestep_mean, timestep_std=timestep_std, timestep_shift=timestep_shift,
            physics=self.pcfg.enabled, contact_pos_weight=self.pcfg.contact_pos_weight,
            **{k: getattr(self.pcfg, k) for k in PHYSICS_KEYS})
        te = dict(to_plain(text_encoder) or {})
        self.latents = self._read_latents(latents) if latents else None
        if self.latents is not None:
            self._init_from_latents(init_from, dit, connector, vae_checkpoint, audio_vae_checkpoint)
        elif init_from:
            self._init_from_pretrained(init_from, te)
        else:
            if not vae_checkpoint or not audio_vae_checkpoint:
                raise ConfigError("model.vae_checkpoint and model.audio_vae_checkpoint are required "
                                  "(or model.init_from=<pretrained dir>)")
            self.vae = component_from_checkpoint(vae_checkpoint, "vae")
            self.audio_vae = component_from_checkpoint(audio_vae_checkpoint, "audio_vae")
            self._set_text_encoder(te)
            self.model = LTXModel(self._model_config(dit, connector))
        self.text_encoder_cfg = te
        self.configure_trainable()
        self.ema = EMA(self.model, ema_decay) if ema_decay > 0 else None
        # latent statistics are measured once, on the first training batch of every rank together
        self.register_buffer("stats_ready", torch.tensor(bool(init_from)))
        self._stats_ready = bool(init_from)
        for part in self._frozen():
            part.requires_grad_(False).eval()

    # ------------------------------------------------------------------ construction
    def _frozen(self) -> list[nn.Module]:
        return [m for m in (self.vae, self.audio_vae) if m is not None]

    @staticmethod
    def _read_latents(path: str) -> dict:
        from ltx_train.data.latent_cache import read_manifest
        from ltx_train.data.latents import empty_text_states
        return {"path": str(path), "manifest": read_manifest(path), "empty": empty_text_states(path)}

    def _init_from_latents(self, init_from, dit, connector, vae_checkpoint, audio_vae_checkpoint) -> None:
        """Build (or load and check) the model for the cache's encoders; load none of them."""
        from ltx_train.data.latent_cache import LatentCacheError
        shapes = self.latents["manifest"]["shapes"]
        object.__setattr__(self, "text_encoder", None)
        self.vae = self.audio_vae = None
        if vae_checkpoint or audio_vae_checkpoint:
            log.info("data=latents: model.vae_checkpoint / audio_vae_checkpoint are not read (the cache holds latents)")
        if init_from:
            from ltx_train.pretrained import load_component, read_config
            self.model = load_component(init_from, "model", expect="LTXModel").train()
            d = self.model.cfg.dit
            have = {"video_channels": d.video_channels, "temporal_compression": d.temporal_compression,
                    "audio_channels": d.audio_channels, "audio_compression": d.audio_compression,
                    "text_dim": self.model.cfg.connector.in_dim, "text_layers": self.model.cfg.connector.in_layers}
            bad = {k: (v, shapes[k]) for k, v in have.items() if v != shapes[k]}
            if bad:
                k, (mine, theirs) = next(iter(bad.items()))
                raise LatentCacheError(f"the latent cache {self.latents['path']} was made by encoders that give "
                                       f"{k}={theirs}, the model of {init_from} expects {k}={mine} "
                                       f"({len(bad)} mismatch(es): {', '.join(bad)})")
            from pathlib import Path
            for name in ("vae", "audio_vae"):  # same shapes, other weights: the latents mean something else
                rec = self.latents["manifest"]["encoders"][name]
                cfg = {k: v for k, v in read_config(Path(init_from) / name).items() if not k.startswith("_")}
                if cfg != rec["config"]:
                    log.warning("the latent cache's %s config differs from %s/%s: its latents may not be what "
                                "the model was trained on", name, init_from, name)
        else:
            self.model = LTXModel(self._model_config(dit, connector, shapes))
        if self.model.image_encoder is not None and not self.latents["manifest"].get("first_frames"):
            raise LatentCacheError(f"the model reads image tokens (model.image), but the latent cache "
                                   f"{self.latents['path']} holds no first frames (written before they were "
                                   f"stored): re-run `ltx-shards cache`")
        self.register_buffer("empty_text", self.latents["empty"], persistent=False)

    def _set_text_encoder(self, te: dict) -> None:
        # kept out of the module tree (object.__setattr__) so checkpoints do not carry its frozen weights
        object.__setattr__(self, "text_encoder", FrozenTextEncoder(
            path=te.get("path"), max_length=te.get("max_length", 64), cache_size=te.get("cache_size", 4096)))

    def _model_config(self, dit: Any, connector: Any, shapes: dict | None = None) -> LTXModelConfig:
        """Architecture from the presets + overrides, with the shapes that the frozen parts fix
        (``shapes``: those a latent cache records, ``latent_cache.encoder_shapes``)."""
        if shapes is None:
            from ltx_train.data.latent_cache import encoder_shapes
            te = self.text_encoder
            shapes = encoder_shapes(self.vae, self.audio_vae, te.hidden_size, te.num_hidden_states, te.max_length)
        ccfg = _from_preset(TextConnectorConfig, connector_preset, connector or {"preset": "baseline"}, "model.connector")
        ccfg = dataclasses.replace(ccfg, in_dim=shapes["text_dim"], in_layers=shapes["text_layers"])
        dcfg = _from_preset(JointDiTConfig, dit_preset, dit or {"preset": "tiny"}, "model.dit")
        dcfg = dataclasses.replace(
            dcfg, video_channels=shapes["video_channels"], audio_channels=shapes["audio_channels"],
            temporal_compression=shapes["temporal_compression"], audio_compression=shapes["audio_compression"],
            text_dim=ccfg.output_dim)
        heads = (PhysicsHeadsConfig(width=dcfg.width, hidden=self.pcfg.hidden, patch_t=dcfg.patch_size[0])
                 if self.pcfg.enabled else None)
        image = self.hparams.get("image")
        icfg = to_dataclass(ImageEncoderConfig, to_plain(image), "model.image") if image else None
        return LTXModelConfig(dit=dcfg, connector=ccfg, physics=heads, physics_block=self.pcfg.block, image=icfg)

    def _init_from_pretrained(self, path: str, te: dict) -> None:
        from ltx_train.pipeline import read_model_index, text_encoder_reference
        index = read_model_index(path)
        self.vae = load_component(path, "vae", expect="VideoVAE")
        self.audio_vae = load_component(path, "audio_vae", expect="AudioVAE")
        self.model = load_component(path, "model", expect="LTXModel").train()
        te_path, max_length = text_encoder_reference(path, index)
        if te.get("path") is None:
            te["path"] = te_path
        te.setdefault("max_length", max_length)
        self._set_text_encoder(te)
        if self.pcfg.enabled and self.model.physics is None:
            log.info("init_from %s has no physics heads: the physics losses are off", path)
        log.info("initialised from %s (model, VAEs and text encoder; model.dit / model.connector ignored)", path)

    def configure_trainable(self) -> None:
        """Choose what trains (before the EMA and the optimiser see the parameters)."""
        if self.hparams.train_mode == "connector":
            self.model.dit.requires_grad_(False)

    # ------------------------------------------------------------------ Lightning hooks
    def configure_model(self) -> None:
        """Compile and shard the model from outside (``ltx_train.parallelize``), once the strategy has
        set up the processes; once per module (Lightning calls this hook for every fit / validate)."""
        if getattr(self, "_parallelized", False):
            return
        self._parallelized = True
        from ltx_train import parallelize
        if self.hparams.get("activation_checkpointing") or self.model.cfg.dit.gradient_checkpointing:
            parallelize.checkpoint_blocks(self.model.dit)
        if self.hparams.compile:
            parallelize.compile_model(self.model, compile_scope(self.hparams.compile))
        if parallelize.is_fsdp(self._trainer):
            parallelize.shard_model(self.model, self.device_mesh["data_parallel"])
            if self.ema is not None:
                parallelize.shard_ema(self.ema, self.model)
            parallelize.move_unsharded(self, self._trainer.strategy.root_device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record_component(checkpoint, "model", self.model, "model.", ema_prefix="ema." if self.ema else None)
        if self.latents is not None:  # no VAE in the run: the checkpoint names the cache's encoders
            enc = self.latents["manifest"]["encoders"]
            checkpoint["latent_cache"] = {"path": self.latents["path"], "encoders": enc}
            checkpoint["text_encoder"] = {"path": enc["text_encoder"]["path"],
                                          "max_length": enc["text_encoder"]["max_length"]}
            return
        record_component(checkpoint, "vae", self.vae, "vae.")
        record_component(checkpoint, "audio_vae", self.audio_vae, "audio_vae.")
        checkpoint["text_encoder"] = {"path": self.text_encoder_cfg.get("path"),
                                      "max_length": self.text_encoder.max_length}

    def train(self, mode: bool = True):
        super().train(mode)
        for part in self._frozen():
            part.eval()
        return self

    def sampling_parts(self) -> tuple[nn.Module, nn.Module, FrozenTextEncoder]:
        """(vae, audio_vae, text_encoder) for drawing samples. From a latent cache they are loaded
        on first use from where its manifest says, outside the module tree (not in checkpoints)."""
        if self.latents is None:
            return self.vae, self.audio_vae, self.text_encoder
        if "parts" not in self.latents:
            from ltx_train.data.latent_cache import encoders_from_record
            enc = self.latents["manifest"]["encoders"]
            vae, audio_vae = encoders_from_record(enc)
            te = FrozenTextEncoder(path=enc["text_encoder"]["path"], max_length=enc["text_encoder"]["max_length"],
                                   cache_size=256)
            self.latents["parts"] = (vae.to(self.device), audio_vae.to(self.device), te.to(self.device))
            log.info("loaded the latent cache's encoders for sampling")
        return self.latents["parts"]

    # ------------------------------------------------------------------ shared with callbacks
    @property
    def dit(self):
        return self.model.dit

    @property
    def connector(self):
        return self.model.connector

    def text_tokens(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        if next(self.text_encoder.parameters()).device != self.device:
            self.text_encoder.to(self.device)
        hidden, mask = self.text_encoder.encode(list(captions))
        return self.model.encode_text(hidden.to(self.device), mask.to(self.device))

    @torch.no_grad()
    def encode_latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latents: video (B, Cv, Tv, Hv, Wv) and audio (B, Ca, Ta)."""
        if "video_latent" in batch:  # data=latents: the VAEs ran when the cache was written
            z_v, z_a = batch["video_latent"].float(), batch["audio_latent"].float()
        else:
            z_v = self.vae.encode(batch["video"]).mode()
            z_a = self.audio_vae.encode(batch["mel"]).mode()
        if not self._stats_ready:     # host-side flag: reading the buffer every step would sync the GPU
            if not bool(self.stats_ready):
                self._measure_stats(z_v, z_a, batch["audio_mask"].bool())
            self._stats_ready = True
        return self.model.normalize(z_v, z_a)

    def _reduce_sum(self, x: torch.Tensor) -> torch.Tensor:
        trainer = self._trainer
        return trainer.strategy.reduce(x, reduce_op="sum") if trainer is not None else x

    def _measure_stats(self, z_v: torch.Tensor, z_a: torch.Tensor, audio_mask: torch.Tensor) -> None:
        """Per-channel mean / std over the first batch of every rank together (sums reduced across
        ranks, so all ranks hold the same statistics)."""
        def moments(z):  # z (C, N) -> (3, C): count, sum, sum of squares
            z = z.double()
            return torch.stack([torch.full_like(z[:, 0], z.shape[1]), z.sum(1), z.pow(2).sum(1)])

        def finish(m):
            n, s, s2 = self._reduce_sum(m)
            mean = s / n
            std = ((s2 / n - mean.pow(2)).clamp(min=0) * n / (n - 1).clamp(min=1)).sqrt()
            return torch.stack([mean, std.clamp(min=1e-3)]).float()

        a = z_a.transpose(0, 1)[:, audio_mask] if audio_mask.any() else z_a.transpose(0, 1)
        self.model.set_latent_stats(finish(moments(z_v.transpose(0, 1).flatten(1))), finish(moments(a.flatten(1))))
        self.stats_ready.fill_(True)

    # ------------------------------------------------------------------ the loss
    def _cached_text(self, batch: dict, drop: list[bool] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cache's encoder states, with the dropped captions' (``drop``: a list, or a (B,) bool tensor
        on the device) replaced by those of ""."""
        hidden, mask = batch["text_hidden"].float(), batch["text_mask"].bool()
        if torch.is_tensor(drop) or any(drop):
            rows = drop if torch.is_tensor(drop) else torch.tensor(drop, device=hidden.device)
            n = self.empty_text.shape[0]
            empty = torch.zeros_like(hidden[0])
            empty[:n] = self.empty_text.to(hidden.device)
            empty_mask = torch.zeros_like(mask[0])
            empty_mask[:n] = True
            hidden = torch.where(rows[:, None, None, None], empty, hidden)
            mask = torch.where(rows[:, None], empty_mask, mask)
        return self.model.encode_text(hidden, mask)

    def _losses(self, batch: dict, generator: torch.Generator | None, train: bool) -> dict[str, torch.Tensor]:
        z_v, z_a = self.encode_latents(batch)
        captions = list(batch["caption"])
        drop = [False] * len(captions)
        dropout = train and self.hparams.caption_dropout > 0   # "" is the unconditional input of CFG
        if "text_hidden" in batch:   # drawn on the device: a host list copied over would wait for the GPU
            if dropout:
                drop = torch.rand(len(captions), device=batch["text_hidden"].device) < self.hparams.caption_dropout
            text, text_mask = self._cached_text(batch, drop)
        else:
            if dropout:
                drop = [random.random() < self.hparams.caption_dropout for _ in captions]
            text, text_mask = self.text_tokens(["" if d else c for d, c in zip(drop, captions)])
        return joint_losses(self.model, z_v, z_a, text, text_mask, batch, self.loss_cfg, generator)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch, None, train=True)
        n = len(batch["caption"])
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=n)
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=n)
        if "skipped" in batch:
            self.log("data/skipped", torch.as_tensor(batch["skipped"]).float().max(), batch_size=1)
        return losses["loss"]

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # The EMA follows each optimiser step here, not in on_train_batch_end: Lightning runs the callbacks'
        # on_train_batch_end (ModelCheckpoint, Preemption: the saves) before the module's, so a checkpoint
        # held the EMA one update behind its weights and a run resumed from it never made that update.
        if self.ema is not None:  # weight 0 after a skipped (non-finite) step: the average stays put
            self.ema.update(self.model, weight=step_ok(self))

    def ema_weights(self):
        """Context in which ``self.model`` holds its EMA weights (or nothing changes without EMA)."""
        return self.ema.swapped_into(self.model) if self.ema is not None else nullcontext()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # fixed noise and timesteps per batch index, so val curves compare across steps and runs
        g = torch.Generator().manual_seed(1234 + batch_idx)
        with self.ema_weights():
            losses = self._losses(batch, g, train=False)
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, batch_size=len(batch["caption"]))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def configure_optimizers(self):
        h = self.hparams
        opt = build_optimizer(self.model, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
        sched = warmup_cosine(opt, h.warmup_steps, h.total_steps, h.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": lightning_scheduler(sched, "lr")}
