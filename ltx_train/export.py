"""`ltx-export`: training checkpoints -> a pretrained directory (safetensors + json, no pickles).

    ltx-export checkpoint=<dit.ckpt> vocoder_checkpoint=<vocoder.ckpt> out=<dir> [dtype=bfloat16] [use_ema=true]
    ltx-export checkpoint=<lora.ckpt> out=<dir>      # a LoRA run: the adapter alone, in peft's format
    ltx-export pretrained=<dir> lora=[<adapter>,...] [lora_weights=[1.0,...]] out=<dir>   # adapters fused in

The third form writes a new base with adapters merged into its weights (``fuse_lora`` then
``unload_lora_weights(keep_fused=True)``): a model to serve without a LoRA branch, or to train the next
adapter on top of (``experiments/lora.md``: a motion adapter trained on the style-fused base stacks with
that style at full weight where independently trained ones do not).

The DiT checkpoint records its model, both frozen VAEs and the text encoder's reference
(``DiTModule.on_save_checkpoint``), so it alone gives every component but the vocoder (a run on a
latent cache records the cache's encoders instead, which are re-loaded from where they came from and
checked against their hashes); without a
vocoder the pipeline falls back to Griffin-Lim. The checkpoint is read with ``weights_only=True``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from ltx_train.config import ConfigError
from ltx_train.quiet import silence_library_noise
from ltx_train.hydra_utils import CONF_DIR, check_config, register_resolvers
from ltx_train.pretrained import component_from_checkpoint, safe_load_checkpoint

log = logging.getLogger("ltx_train.export")
register_resolvers()
silence_library_noise()
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pipeline_from_checkpoints(checkpoint: str | Path, vocoder_checkpoint: str | Path | None = None,
                              use_ema: bool = True, device: str | torch.device = "cpu"):
    """An ``LTXVideoPipeline`` from a DiT training checkpoint (+ a vocoder checkpoint), EMA weights
    by default."""
    from ltx_train.models.text.encoder import FrozenTextEncoder
    from ltx_train.pipeline import LTXVideoPipeline

    ckpt = safe_load_checkpoint(checkpoint)
    parts = {"model": component_from_checkpoint(checkpoint, "model", use_ema=use_ema, ckpt=ckpt)}
    if "latent_cache" in ckpt:  # trained from a latent cache: the VAEs are the ones its manifest names
        from ltx_train.data.latent_cache import encoders_from_record
        parts["vae"], parts["audio_vae"] = encoders_from_record(ckpt["latent_cache"]["encoders"])
    else:
        parts.update({name: component_from_checkpoint(checkpoint, name, ckpt=ckpt) for name in ("vae", "audio_vae")})
    te = ckpt.get("text_encoder") or {}
    vocoder = component_from_checkpoint(vocoder_checkpoint, "vocoder") if vocoder_checkpoint else None
    encoder = FrozenTextEncoder(path=te.get("path"), max_length=te.get("max_length", 64), cache_size=256)
    return LTXVideoPipeline(parts["vae"], parts["audio_vae"], parts["model"], encoder, vocoder).to(device)


def fuse_adapters(pretrained: str | Path, adapters: list[str], weights: list[float] | None, out: str | Path,
                  dtype: torch.dtype | None = None) -> Path:
    """``pretrained`` with ``adapters`` (at ``weights``, default 1 each) merged into its weights, saved to ``out``."""
    from ltx_train.pipeline import LTXVideoPipeline

    weights = [1.0] * len(adapters) if weights is None else [float(w) for w in weights]
    if not adapters or len(weights) != len(adapters):
        raise ConfigError(f"lora: {len(adapters)} adapter(s) and lora_weights: {len(weights)}; "
                          f"give at least one adapter and one weight per adapter")
    pipe = LTXVideoPipeline.from_pretrained(pretrained)
    names = [pipe.load_lora_weights(path, adapter_name=f"adapter{i}") for i, path in enumerate(adapters)]
    pipe.set_adapters(names, weights=weights)
    pipe.fuse_lora()
    pipe.unload_lora_weights(keep_fused=True)
    return pipe.save_pretrained(out, dtype=dtype)


def export(cfg: DictConfig) -> Path:
    check_config(cfg)
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
    if (cfg.checkpoint is None) == (cfg.pretrained is None):
        raise ConfigError("give exactly one of checkpoint= (a training run to export) and pretrained= "
                          "(a pretrained directory to fuse lora=[...] into)")
    if cfg.pretrained is not None:
        out = fuse_adapters(cfg.pretrained, list(cfg.lora), cfg.lora_weights, cfg.out, DTYPES[cfg.dtype])
        print(f"[ltx-export] {out}: {cfg.pretrained} with {len(cfg.lora)} adapter(s) fused in "
              f"(weights {cfg.lora_weights or 'all 1.0'}), model in {cfg.dtype}")
        return out
    if len(cfg.lora):
        raise ConfigError("lora=[...] is fused into pretrained=<dir>; with checkpoint= it has no use")
    if "lora" in safe_load_checkpoint(cfg.checkpoint):
        from ltx_train.modules.lora_module import adapter_from_checkpoint
        size = adapter_from_checkpoint(cfg.checkpoint, cfg.out, use_ema=cfg.use_ema)
        print(f"[ltx-export] {cfg.out}: LoRA adapter, {size / 2**20:.2f} MiB (base: see adapter_config.json)")
        return Path(cfg.out)
    pipe = pipeline_from_checkpoints(cfg.checkpoint, cfg.vocoder_checkpoint, use_ema=cfg.use_ema)
    if cfg.packaged_text_encoder:  # trained against a copy of the packaged MiniLM: refer to the package
        pipe.text_encoder.source_path = None
    out = pipe.save_pretrained(cfg.out, dtype=DTYPES[cfg.dtype], copy_text_encoder=cfg.copy_text_encoder)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"[ltx-export] {out}: {size / 2**20:.1f} MiB "
          f"({'EMA' if cfg.use_ema else 'raw'} weights, model in {cfg.dtype}; "
          f"vocoder: {'yes' if pipe.vocoder is not None else 'none, Griffin-Lim'})")
    return out


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
