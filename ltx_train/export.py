"""`ltx-export`: training checkpoints -> a pretrained directory (safetensors + json, no pickles).

    ltx-export checkpoint=<dit.ckpt> vocoder_checkpoint=<vocoder.ckpt> out=<dir> [dtype=bfloat16] [use_ema=true]
    ltx-export checkpoint=<lora.ckpt> out=<dir>      # a LoRA run: the adapter alone, in peft's format

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


def export(cfg: DictConfig) -> Path:
    check_config(cfg)
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
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
