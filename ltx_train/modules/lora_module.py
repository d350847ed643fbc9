"""`LoRAModule`: finetune a peft LoRA adapter on a pretrained ``LTXModel``; the base stays frozen.

    ltx-train experiment=lora_style base=<pretrained dir> data.train_shards='<style shards>'

The same objective, text encoding, EMA and validation as ``DiTModule`` (it is one, started from
``init_from=base``), with three differences:
- only the adapter trains (``ltx_train.lora.add_lora``: DiT attention + MLP linears by default);
- checkpoints hold the adapter, its EMA and the optimiser, not the frozen base, which is reloaded
  from ``base`` on resume (``checkpoint["lora"]`` names it);
- when fitting ends, the adapter (EMA weights when there is an EMA) is written in peft's format to
  ``<run dir>/adapter/`` (``adapter_model.safetensors`` + ``adapter_config.json``), ready for
  ``pipe.load_lora_weights``; ``ltx-export checkpoint=<lora.ckpt> out=<dir>`` does the same from any
  checkpoint.
"""
from __future__ import annotations

import dataclasses
import logging
from contextlib import contextmanager
from pathlib import Path

import torch

from ltx_train.config import ConfigError, to_dataclass
from ltx_train.lora import LoRAConfig, add_lora, disable_lora, enable_lora, save_lora
from ltx_train.modules.dit_module import DiTModule
from ltx_train.modules.hparams import save_plain_hyperparameters

log = logging.getLogger(__name__)


class LoRAModule(DiTModule):
    def __init__(self, base: str, lora: dict | None = None, adapter_name: str = "default",
                 text_encoder: dict | None = None, physics: dict | None = None,
                 lr: float = 1e-4, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 warmup_steps: int = 50, total_steps: int = 1000, min_lr_ratio: float = 0.0,
                 video_loss_weight: float = 1.0, audio_loss_weight: float = 1.0,
                 caption_dropout: float = 0.1, first_frame_prob: float = 0.2,
                 timestep_mean: float = 0.0, timestep_std: float = 1.0, timestep_shift: bool = True,
                 ema_decay: float = 0.0, compile: bool = False, activation_checkpointing: bool = False,
                 latents: str | None = None, image_dropout: float = 0.1):
        """``base``: the pretrained directory to adapt. ``lora``: ``LoRAConfig`` fields (rank, alpha,
        dropout, target_modules, connector, audio, base_dtype). Defaults follow common LoRA practice for
        video DiTs: lr 1e-4, warm-up then cosine decay to 0, no weight decay."""
        self.lora_cfg = to_dataclass(LoRAConfig, lora or {}, "model.lora")
        self.adapter_name = adapter_name
        super().__init__(init_from=base, text_encoder=text_encoder, physics=physics, lr=lr,
                         weight_decay=weight_decay, betas=betas, warmup_steps=warmup_steps,
                         total_steps=total_steps, min_lr_ratio=min_lr_ratio, video_loss_weight=video_loss_weight,
                         audio_loss_weight=audio_loss_weight, caption_dropout=caption_dropout,
                         first_frame_prob=first_frame_prob, timestep_mean=timestep_mean,
                         timestep_std=timestep_std, timestep_shift=timestep_shift, ema_decay=ema_decay,
                         compile=compile, activation_checkpointing=activation_checkpointing, latents=latents,
                         image_dropout=image_dropout)
        save_plain_hyperparameters(self)  # this class's arguments, not the DiT module's
        self.base = str(Path(base).resolve())
        self.strict_loading = False       # checkpoints omit the frozen base: it comes from `base`
        from ltx_train.pipeline import read_model_index
        vocoder = None
        if (read_model_index(base).get("vocoder") or [None])[0] is not None:
            from ltx_train.pretrained import load_component
            vocoder = load_component(base, "vocoder", expect="HiFiGAN")
        object.__setattr__(self, "sample_vocoder", vocoder)  # for sample clips; not trained, not saved

    def configure_trainable(self) -> None:
        add_lora(self.model, self.lora_cfg, self.adapter_name)

    @property
    def has_lora(self) -> bool:
        return True

    @contextmanager
    def without_adapter(self):
        """The base model alone (for side-by-side samples)."""
        disable_lora(self.model)
        try:
            yield self.model
        finally:
            enable_lora(self.model)

    # ------------------------------------------------------------------ checkpoints
    def _trained_key(self, key: str) -> bool:
        return "lora_" in key or key.startswith("ema.") or key == "stats_ready"

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if self._trained_key(k)}
        checkpoint["lora"] = {"base": self.base, "config": dataclasses.asdict(self.lora_cfg),
                              "adapter_name": self.adapter_name, "ema": self.ema is not None}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint this module cannot continue exactly. It loads with ``strict_loading=False``
        (it omits the base), which alone would silently skip any adapter or EMA tensor the two disagree
        on and leave it at its initial value; and an adapter only fits the base it was trained on."""
        rec = checkpoint.get("lora")
        if not rec:
            raise ConfigError("ckpt_path: not a LoRA checkpoint (no 'lora' record); a DiT checkpoint "
                              "resumes with experiment=dit_*, or export it and pass it as base=")
        if str(Path(rec["base"]).resolve()) != self.base:
            raise ConfigError(f"ckpt_path: this LoRA checkpoint was trained on base={rec['base']}, but this run "
                              f"has base={self.base}; the adapter only fits its own base: resume with "
                              f"base={rec['base']}")
        from ltx_train.modules.optim import drop_empty_groups
        drop_empty_groups(checkpoint)
        if "state_dict" not in checkpoint:   # DeepSpeed restores the module from its own shards
            return
        expected = {k for k in self.state_dict() if self._trained_key(k)}
        # (a merged DeepSpeed checkpoint holds the frozen base too: only the trained tensors are compared)
        saved = {k for k in checkpoint["state_dict"] if self._trained_key(k)}
        for what, keys in (("missing from the checkpoint", expected - saved), ("not in this model", saved - expected)):
            if keys:
                raise ConfigError(f"ckpt_path: {len(keys)} trained tensors {what}, e.g. {sorted(keys)[0]!r}: "
                                  f"model.lora / model.ema_decay differ from the run that wrote it "
                                  f"(its LoRA config: {rec['config']}, EMA: {rec['ema']})")

    def on_fit_end(self) -> None:
        from ltx_train.modules.ema import zero3_gathered
        from ltx_train.parallelize import is_deepspeed, is_fsdp
        sharded = is_fsdp(self.trainer)     # every rank takes part in gathering the sharded weights
        zero3 = is_deepspeed(self.trainer) and self.trainer.strategy.zero_stage_3
        if self.trainer is None or not (self.trainer.is_global_zero or sharded or zero3):
            return
        out = Path(self.trainer.default_root_dir) / "adapter"
        adapter = [p for n, p in self.model.named_parameters() if "lora_" in n]
        with self.ema_weights(), zero3_gathered(adapter if zero3 else []):   # ZeRO-3: the adapter gathered
            model = self._gathered_model() if sharded else self.model
            if not self.trainer.is_global_zero:
                return
            size = save_lora(model, out, self.adapter_name, verbose=False)
        print(f"[ltx-train] LoRA adapter ({'EMA' if self.ema else 'final'} weights): {out} "
              f"({size / 2**20:.2f} MiB, rank {self.lora_cfg.rank})")


    def _gathered_model(self):
        """Under FSDP: the whole model (base + adapter) gathered into a plain copy on rank 0 (None elsewhere)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        from ltx_train.models.ltx import LTXModel
        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.trainer.is_global_zero:
            return None
        plain = add_lora(LTXModel(self.model.cfg), self.lora_cfg, self.adapter_name)
        plain.load_state_dict(full)
        return plain

def adapter_from_checkpoint(checkpoint: str | Path, out: str | Path, use_ema: bool = True) -> int:
    """``ltx-export`` of a LoRA checkpoint: the adapter alone, in peft's format. Returns its size."""
    from ltx_train.models.ltx import LTXModel
    from ltx_train.modules.ema import EMA
    from ltx_train.pretrained import PretrainedError, load_component, safe_load_checkpoint

    ckpt = safe_load_checkpoint(checkpoint, "LoRA")
    rec = ckpt.get("lora")
    if not rec:
        raise PretrainedError(f"{checkpoint}: not a LoRA checkpoint (no 'lora' record)")
    model: LTXModel = load_component(rec["base"], "model", expect="LTXModel")
    name = rec["adapter_name"]
    add_lora(model, to_dataclass(LoRAConfig, rec["config"], "lora config"), name)
    sd = ckpt["state_dict"]
    state = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.") and "lora_" in k}
    if use_ema and rec.get("ema"):
        state.update(EMA.averages_from_state_dict(sd, "ema."))
    missing = [k for k, _ in model.named_parameters() if "lora_" in k and k not in state]
    if missing:
        raise PretrainedError(f"{checkpoint}: adapter weight {missing[0]!r} missing ({len(missing)} in all)")
    with torch.no_grad():
        params = dict(model.named_parameters())
        for k, v in state.items():
            params[k].copy_(v)
    return save_lora(model, out, name, verbose=False)
