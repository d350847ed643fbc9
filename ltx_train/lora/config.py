"""What a LoRA adapts (``LoRAConfig``, named presets) and ``add_lora`` for training.

Targets are regexes over ``LTXModel`` module names, matched in full (peft's ``re.fullmatch`` on a
string ``target_modules``). The default adapts the DiT's attention (qkv, proj) and MLP (fc1, fc2)
in every block; ``connector=True`` adds the text connector's blocks, ``audio=True`` the audio
input / output projections (with the blocks, what an audio LoRA needs: the shared blocks carry
the audio tokens too, the projections map them in and out).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from peft import LoraConfig

DIT_BLOCKS = r"dit\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.fc[12])"
CONNECTOR_BLOCKS = r"connector\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.fc[12])"
AUDIO_PROJECTIONS = r"dit\.audio_in|dit\.audio_out\.linear"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MAX_ACTIVE = 3


@dataclass
class LoRAConfig:
    rank: int = 16
    alpha: float | None = None            # None: = rank (scale alpha / rank = 1)
    dropout: float = 0.0
    target_modules: str | list[str] | None = None   # None: DIT_BLOCKS; see target_regex
    connector: bool = False               # also the text connector's blocks
    audio: bool = False                   # also dit.audio_in and dit.audio_out.linear
    init: bool | str = True               # peft init_lora_weights: True = B zero (starts as the base)
    base_dtype: str | None = None         # "bfloat16": hold the frozen base in bf16 (LoRA stays fp32)

    def __post_init__(self):
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRAConfig.rank must be an integer >= 1, got {self.rank!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoRAConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.base_dtype is not None and self.base_dtype not in DTYPES:
            raise ValueError(f"LoRAConfig.base_dtype must be one of {sorted(DTYPES)} or None, got {self.base_dtype!r}")

    def target_regex(self) -> str:
        """One regex for peft, matched against whole module names. A string is such a regex; list
        items match a whole name or its last dotted parts, as peft treats a list (``"qkv"`` adapts
        every ``*.qkv``), and may be regexes too."""
        t = self.target_modules
        if t is None:
            parts = [DIT_BLOCKS]
        elif isinstance(t, str):
            parts = [t]
        else:
            parts = [rf"(?:.*\.)?(?:{p})" for p in t]
        if self.connector:
            parts.append(CONNECTOR_BLOCKS)
        if self.audio:
            parts.append(AUDIO_PROJECTIONS)
        return "|".join(f"(?:{p})" for p in parts)

    def peft_config(self) -> LoraConfig:
        return LoraConfig(r=self.rank, lora_alpha=self.alpha if self.alpha is not None else self.rank,
                          lora_dropout=self.dropout, target_modules=self.target_regex(),
                          init_lora_weights=self.init, bias="none")


LORA_PRESETS: dict[str, LoRAConfig] = {
    "dit": LoRAConfig(),                                   # video style / motion
    "dit_connector": LoRAConfig(connector=True),           # also re-reads the captions (new words)
    "audio": LoRAConfig(audio=True),                       # sound: blocks + audio projections
    "full": LoRAConfig(connector=True, audio=True),
}


def lora_preset(name: str, **overrides) -> LoRAConfig:
    if name not in LORA_PRESETS:
        raise KeyError(f"unknown LoRA preset {name!r}; choose from {sorted(LORA_PRESETS)}")
    return replace(LORA_PRESETS[name], **overrides)


def add_lora(model: nn.Module, cfg: LoRAConfig | None = None, adapter_name: str = "default") -> nn.Module:
    """Inject a fresh trainable adapter into ``model`` in place (peft, no PeftModel wrapper) and
    freeze everything else: afterwards only this adapter's LoRA parameters require grad. The
    adapter joins the active set with weight 1.0. Returns ``model``."""
    from ltx_train.lora.adapters import _check_room, _require_unfused, check_new_name, inject
    cfg = cfg or LoRAConfig()
    check_new_name(model, adapter_name)   # refuse before the dtype cast below changes anything
    _require_unfused(model, f"add adapter {adapter_name!r}")
    _check_room(model, adapter_name)
    if cfg.base_dtype is not None:
        dtype = DTYPES[cfg.base_dtype]
        # parameters only: the latent statistics buffers stay fp32 (normalize() casts them per call)
        for name, p in model.named_parameters():
            if ".lora_" not in name:
                p.data = p.data.to(dtype)
    inject(model, cfg.peft_config(), adapter_name, trainable=True)
    return model
