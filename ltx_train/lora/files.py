"""Adapter files in peft's own format, and the check that an adapter fits a base.

    <dir>/adapter_config.json         peft LoraConfig (LoraConfig.save_pretrained)
    <dir>/adapter_model.safetensors   keys "base_model.model.<module>.lora_A.weight" etc.

exactly what ``PeftModel.save_pretrained`` writes, so ``PeftModel.from_pretrained(ltx_model, dir)``
reads it. The base fingerprint (``{module: [out_features, in_features]}`` of every adapted layer,
and the base's LTXModel config) travels in the safetensors header metadata, which peft ignores and
which cannot be separated from the weights. Loading checks the recorded shapes, the shapes the LoRA
tensors themselves imply (all a foreign peft file offers) and the config's architecture fields that
leave shapes alone (heads, depth, patch size; ``ARCH_KEYS``); non-architecture fields (fps default,
checkpointing, physics heads) may differ.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from peft import LoraConfig, get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

from ltx_train.lora.adapters import (LoraError, _check_room, _check_weight, _require_unfused, check_new_name, inject,
                                     lora_layers)

ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter_model.safetensors", "adapter_config.json"
PEFT_PREFIX = "base_model.model."          # PeftModel's own prefix in saved keys
FINGERPRINT_KEY = "ltx_train.lora_base"
# architecture fields that change what a layer means without changing its shape (heads, depth,
# patching, ...): an adapter recorded on a base that differs in one of them is refused
ARCH_KEYS = {"dit": ("width", "depth", "heads", "patch_size", "mlp_ratio", "video_channels", "audio_channels",
                     "text_dim", "modulation", "qk_norm", "separate_audio_text"),
             "connector": ("in_dim", "in_layers", "width", "width_multiplier", "layers", "heads", "mlp_ratio",
                           "registers", "register_mode", "out_dim", "qk_norm")}


@dataclass
class AdapterFile:
    weights: Path
    config: LoraConfig
    state: dict[str, torch.Tensor]     # keys without PEFT_PREFIX, as set_peft_model_state_dict takes them
    fingerprint: dict | None           # {"modules": {name: [out, in]}, "config": {...}} or None


def _base_layer(model: nn.Module, name: str) -> nn.Module | None:
    try:
        m = model.get_submodule(name)
    except AttributeError:
        return None
    return m.get_base_layer() if hasattr(m, "get_base_layer") else m


def base_fingerprint(model: nn.Module, adapter_name: str) -> dict:
    modules = {q: [layer.get_base_layer().out_features, layer.get_base_layer().in_features]
               for q, layer in lora_layers(model) if adapter_name in layer.lora_A}
    cfg = getattr(model, "cfg", None)
    return {"modules": modules, "config": cfg.to_dict() if hasattr(cfg, "to_dict") else None}


def save_lora(model: nn.Module, directory: str | Path, adapter_name: str = "default", verbose: bool = True) -> int:
    """Write adapter ``adapter_name`` of ``model`` to ``directory``; returns the weights file's size in
    bytes (rank x adapted widths; the base's weights are not in it)."""
    if adapter_name not in getattr(model, "peft_config", {}):
        raise LoraError(f"save_lora: no adapter {adapter_name!r}; loaded: {list(getattr(model, 'peft_config', {}))}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    tensors = {PEFT_PREFIX + k: v.detach().contiguous().cpu().clone() for k, v in state.items()}
    meta = {"format": "pt", FINGERPRINT_KEY: json.dumps(base_fingerprint(model, adapter_name))}
    tmp = directory / (ADAPTER_WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(directory / ADAPTER_WEIGHTS)
    config = copy.deepcopy(model.peft_config[adapter_name])
    config.inference_mode = True            # as PeftModel.save_pretrained writes it
    config.save_pretrained(str(directory))
    size = (directory / ADAPTER_WEIGHTS).stat().st_size
    if verbose:
        print(f"saved LoRA {adapter_name!r} (rank {config.r}, {len(tensors) // 2} layers): "
              f"{size / 2**20:.2f} MiB -> {directory}")
    return size


def read_adapter(path: str | Path) -> AdapterFile:
    """``path``: an adapter folder, or its ``.safetensors`` file with ``adapter_config.json`` beside it."""
    path = Path(path)
    if path.is_dir():
        weights = path / ADAPTER_WEIGHTS
        if not weights.is_file():
            raise LoraError(f"{path}: not a LoRA adapter folder (no {ADAPTER_WEIGHTS}; save one with save_lora)")
    elif path.is_file():
        weights = path
    else:
        raise LoraError(f"{path}: no such LoRA adapter file or folder")
    cfg_file = weights.parent / ADAPTER_CONFIG
    if not cfg_file.is_file():
        raise LoraError(f"{weights}: not a LoRA adapter (no {ADAPTER_CONFIG} beside it)")
    try:
        raw = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LoraError(f"{cfg_file}: not valid JSON ({e})") from e
    kind = raw.get("peft_type") if isinstance(raw, dict) else None
    if kind != "LORA":
        raise LoraError(f"{cfg_file}: not a peft LoRA config (peft_type {kind!r})")
    try:
        config = LoraConfig.from_pretrained(str(cfg_file.parent))
    except (TypeError, ValueError) as e:
        raise LoraError(f"{cfg_file}: not a valid peft LoraConfig ({e})") from e
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k.removeprefix(PEFT_PREFIX): f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own types for foreign / truncated files
        raise LoraError(f"{weights}: not a readable safetensors file ({e})") from e
    bad = [k for k in state if ".lora_" not in k]
    if not state or bad:
        raise LoraError(f"{weights}: not a LoRA adapter (key {bad[0] if bad else None!r} is no LoRA weight)")
    fp = json.loads(meta[FINGERPRINT_KEY]) if FINGERPRINT_KEY in meta else None
    return AdapterFile(weights, config, state, fp)


def check_base(model: nn.Module, adapter: AdapterFile) -> None:
    """Refuse an adapter trained on another base: name the first mismatching module and both shapes."""
    def fail(name, theirs, ours):
        theirs = tuple("?" if v is None else v for v in theirs)
        raise LoraError(f"{adapter.weights}: trained on another base: {name} is {theirs} "
                        f"(out, in) in the adapter's base, {ours} in this model")

    recorded = (adapter.fingerprint or {}).get("modules", {})
    implied: dict[str, list] = {}                    # (out, in) as the LoRA tensors themselves say
    for key, t in adapter.state.items():
        name, _, kind = key.partition(".lora_")
        out_in = implied.setdefault(name, [None, None])
        if kind == "A.weight":
            out_in[1] = t.shape[1]
        elif kind == "B.weight":
            out_in[0] = t.shape[0]
    for name, theirs in [*sorted(recorded.items()), *sorted(implied.items())]:
        layer = _base_layer(model, name)
        if layer is None:
            fail(name, theirs, "absent (no such module)")
        if not isinstance(layer, nn.Linear):
            fail(name, theirs, f"a {type(layer).__name__}, not a Linear")
        ours = (layer.out_features, layer.in_features)
        if any(t is not None and t != o for t, o in zip(theirs, ours)):
            fail(name, theirs, ours)
    theirs_cfg = (adapter.fingerprint or {}).get("config") or {}
    cfg = getattr(model, "cfg", None)
    ours_cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else {}
    for part, keys in ARCH_KEYS.items():
        a, b = theirs_cfg.get(part) or {}, ours_cfg.get(part) or {}
        for k in keys:
            if k in a and k in b and a[k] != b[k]:
                raise LoraError(f"{adapter.weights}: trained on another base: {part}.{k} = {a[k]!r} in the "
                                f"adapter's base, {b[k]!r} in this model")
    if not adapter.config.rank_pattern:
        for key, t in adapter.state.items():
            if key.endswith(".lora_A.weight") and t.shape[0] != adapter.config.r:
                raise LoraError(f"{adapter.weights}: {key} has rank {t.shape[0]}, its config says r={adapter.config.r}")


def load_lora(model: nn.Module, path: str | Path, adapter_name: str = "default", weight: float = 1.0,
              activate: bool = True, adapter: AdapterFile | None = None) -> str:
    """Load an adapter file into ``model``; it joins the active set with ``weight`` unless
    ``activate=False``. Every check runs before the model is touched."""
    check_new_name(model, adapter_name)
    _require_unfused(model, f"load adapter {adapter_name!r}")
    _check_weight(adapter_name, weight)
    if activate:
        _check_room(model, adapter_name)
    adapter = adapter or read_adapter(path)
    check_base(model, adapter)
    inject(model, adapter.config, adapter_name, state_dict=adapter.state, activate=activate, weight=weight)
    return adapter_name
