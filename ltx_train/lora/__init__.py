"""peft LoRA adapters on ``LTXModel``: training injection, peft-format files, diffusers-style loading.

    model = add_lora(LTXModel(cfg), LoRAConfig(rank=16, audio=True))     # train: only LoRA params need grad
    save_lora(model, "my-style-lora")           # adapter_model.safetensors + adapter_config.json (peft's own)

    pipe.load_lora_weights("my-style-lora", adapter_name="style")        # LoraLoaderMixin on pipe.model
    pipe.load_lora_weights("my-motion-lora", adapter_name="motion")
    pipe.set_adapters(["style", "motion"], weights=[0.8, 0.6])           # at most 3 active
    pipe.fuse_lora(); pipe.unfuse_lora(); pipe.disable_lora(); pipe.enable_lora()
    pipe.unload_lora_weights()                                           # the base again, bit for bit
    apply_lora_spec(pipe, "[style_dir:0.8,motion_dir:0.6]")              # the CLI's lora=...

Modules: ``config`` (what is adapted, ``add_lora``), ``adapters`` (active set, weights, fuse, unload;
how weights mix), ``files`` (save / read / base check), ``spec`` (CLI spec), ``mixin``.
"""
from ltx_train.lora.adapters import (LoraError, adapter_weights, delete_adapters, disable_lora, enable_lora,
                                     fuse_lora, get_active_adapters, list_adapters, lora_layers, set_adapters,
                                     unfuse_lora, unload_lora)
from ltx_train.lora.config import LORA_PRESETS, MAX_ACTIVE, LoRAConfig, add_lora, lora_preset
from ltx_train.lora.files import base_fingerprint, check_base, load_lora, read_adapter, save_lora
from ltx_train.lora.mixin import LoraLoaderMixin
from ltx_train.lora.spec import adapter_name_for, apply_lora_spec, parse_lora_spec

__all__ = ["LORA_PRESETS", "MAX_ACTIVE", "LoRAConfig", "LoraError", "LoraLoaderMixin", "adapter_name_for",
           "adapter_weights", "add_lora", "apply_lora_spec", "base_fingerprint", "check_base", "delete_adapters",
           "disable_lora", "enable_lora", "fuse_lora", "get_active_adapters", "list_adapters", "load_lora",
           "lora_layers", "lora_preset", "parse_lora_spec", "read_adapter", "save_lora", "set_adapters",
           "unfuse_lora", "unload_lora"]
