"""Adapter bookkeeping on a plain model: inject, activate with weights, disable, fuse, delete, unload.

Mixing: every active adapter runs its own LoRA branch and peft's per-adapter ``scaling`` is set to
``weight * alpha / rank`` (``LoraLayer.set_scale``, what diffusers' ``set_adapters`` does), so a
layer computes ``W x + sum_i weight_i * (alpha_i / r_i) * B_i A_i x``: exactly linear in each weight,
adapters of different ranks and targets stack, and nothing is rebuilt when a weight changes.
(``add_weighted_adapter`` would build a new adapter; its ``"linear"`` mode mixes A and B separately,
which is not linear in the weights, and its ``"cat"`` mode costs a copy per weight setting.)

Bit-exactness: the base ``nn.Linear`` objects are never written, except by ``fuse_lora``, which
first keeps a (host-memory) copy of each weight it changes and writes the copy back on ``unfuse_lora`` (peft's
``unmerge`` subtracts the delta again, which is only equal up to rounding). ``unload_lora`` puts the
original ``nn.Linear`` objects back in place of peft's wrappers and restores the parameters'
``requires_grad`` flags as they were before the first adapter.

Every check runs before anything is changed, so a refused call leaves the model as it was.
"""
from __future__ import annotations

import copy
import math
import re
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from peft.functional import cast_adapter_dtype, delete_adapter
from peft.tuners.lora import LoraLayer

from ltx_train.lora.config import MAX_ACTIVE
from ltx_train.pretrained import PretrainedError

STATE_ATTR = "_ltx_lora"


class LoraError(PretrainedError):
    """A refused LoRA operation (bad adapter file, wrong base, unknown name, too many adapters)."""


@dataclass
class LoraState:
    weights: dict[str, float] = field(default_factory=dict)   # active adapters, in order -> weight
    disabled: bool = False
    trainable: set[str] = field(default_factory=set)           # adapters made by add_lora
    base_requires_grad: dict[str, bool] = field(default_factory=dict)   # before the first adapter
    fused: dict[str, tuple[torch.Tensor, torch.Tensor | None]] | None = None   # module -> original (W, b)
    fused_names: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- queries
def lora_state(model: nn.Module) -> LoraState | None:
    return model.__dict__.get(STATE_ATTR)


def lora_layers(model: nn.Module) -> list[tuple[str, LoraLayer]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]


def list_adapters(model: nn.Module) -> list[str]:
    """Loaded adapters, in load order (active or not)."""
    return list(getattr(model, "peft_config", {}) or {})


def get_active_adapters(model: nn.Module) -> list[str]:
    st = lora_state(model)
    return list(st.weights) if st is not None else []


def adapter_weights(model: nn.Module) -> dict[str, float]:
    st = lora_state(model)
    return dict(st.weights) if st is not None else {}


def _names(names: str | list[str] | tuple[str, ...]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _require_known(model: nn.Module, names: list[str]) -> None:
    loaded = list_adapters(model)
    for n in names:
        if n not in loaded:
            raise LoraError(f"unknown adapter {n!r}; loaded: {loaded or 'none'}")


def _require_unfused(model: nn.Module, doing: str) -> None:
    st = lora_state(model)
    if st is not None and st.fused is not None:
        raise LoraError(f"cannot {doing} while adapters {st.fused_names} are fused into the base weights; "
                        f"call unfuse_lora() first (or unload_lora_weights(keep_fused=True) to keep them baked in)")


def check_new_name(model: nn.Module, name: str) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise LoraError(f"adapter_name must be a non-empty string without '.', got {name!r}")
    if name in list_adapters(model):
        raise LoraError(f"adapter_name {name!r} is already loaded; pick another name or delete_adapters({name!r})")


def _check_weight(name: str, w) -> float:
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
        raise LoraError(f"weight of adapter {name!r} must be a finite number, got {w!r}")
    return float(w)


def _check_room(model: nn.Module, adding: str) -> None:
    active = get_active_adapters(model)
    if len(active) >= MAX_ACTIVE:
        raise LoraError(f"at most {MAX_ACTIVE} adapters can be active; {active} already are, so {adding!r} would be "
                        f"a fourth (load it with activate=False, or set_adapters(...) to fewer first)")


# ---------------------------------------------------------------------------- state -> layers
def _apply(model: nn.Module) -> None:
    """Push the active set, weights, enabled flag and trainability to every LoRA layer."""
    st = lora_state(model)
    active = list(st.weights)
    for _, layer in lora_layers(model):
        layer.set_adapter(active, inference_mode=True)
        for name in list(layer.scaling):
            layer.set_scale(name, st.weights.get(name, 1.0))
        layer.enable_adapters(not st.disabled)
        # enable_adapters(True) hands grads to every active adapter: only add_lora's adapters train
        for attr in layer.adapter_layer_names:
            for name, sub in getattr(layer, attr).items():
                sub.requires_grad_(name in st.trainable)


def inject(model: nn.Module, config: LoraConfig, name: str, *, trainable: bool = False,
           state_dict: dict[str, torch.Tensor] | None = None, activate: bool = True, weight: float = 1.0) -> None:
    """Add adapter ``name`` (fresh, or with ``state_dict``'s weights, keys as peft saves them without the
    ``base_model.model.`` prefix); a failure inside peft removes it again."""
    check_new_name(model, name)
    _require_unfused(model, f"add adapter {name!r}")
    weight = _check_weight(name, weight)
    if activate:
        _check_room(model, name)
    st = lora_state(model)
    if st is None:
        st = LoraState(base_requires_grad={n: p.requires_grad for n, p in model.named_parameters()})
        model.__dict__[STATE_ATTR] = st
    config = copy.deepcopy(config)
    config.inference_mode = not trainable
    try:
        with warnings.catch_warnings():   # a second adapter on a plain model is the design here
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            inject_adapter_in_model(config, model, adapter_name=name, state_dict=state_dict)
        cast_adapter_dtype(model, name)   # fp32 adapters on a bf16 base, as PeftModel does
        if state_dict is not None:
            result = set_peft_model_state_dict(model, state_dict, adapter_name=name)
            missing = [k for k in result.missing_keys if re.search(rf"\.lora_\w+\.{re.escape(name)}\.", k)]
            if result.unexpected_keys or missing:
                raise LoraError(f"adapter {name!r}: weights do not fit the injected layers (unexpected "
                                f"{result.unexpected_keys[:1]}, missing {missing[:1]})")
    except Exception:
        _drop(model, [name])
        raise
    if activate:
        st.weights[name] = weight
    if trainable:
        st.trainable.add(name)
    # peft froze every base parameter; keep it that way for all adapters (training or inference)
    _apply(model)


# ---------------------------------------------------------------------------- public operations
def set_adapters(model: nn.Module, names: str | list[str], weights: float | list[float] | None = None) -> None:
    """Make exactly ``names`` active, adapter i's delta scaled by ``weights[i]`` (default 1.0; one
    number applies to all). Other loaded adapters stay loaded but inactive."""
    names = _names(names)
    if weights is None:
        weights = [1.0] * len(names)
    elif isinstance(weights, (int, float)):
        weights = [float(weights)] * len(names)
    weights = list(weights)
    if len(weights) != len(names):
        raise LoraError(f"set_adapters: {len(names)} adapters {names} but {len(weights)} weights {weights}")
    _require_known(model, names)
    if len(set(names)) != len(names):
        raise LoraError(f"set_adapters: an adapter is named twice in {names}")
    if len(names) > MAX_ACTIVE:
        raise LoraError(f"at most {MAX_ACTIVE} adapters can be active at once, got {len(names)}: {names}")
    weights = [_check_weight(n, w) for n, w in zip(names, weights)]
    _require_unfused(model, "change the active adapters")
    lora_state(model).weights = dict(zip(names, weights))
    _apply(model)


def disable_lora(model: nn.Module) -> None:
    """Run the base alone (adapters stay loaded, with their weights); no-op without adapters."""
    if lora_state(model) is None:
        return
    _require_unfused(model, "disable LoRA")
    lora_state(model).disabled = True
    _apply(model)


def enable_lora(model: nn.Module) -> None:
    if lora_state(model) is None:
        return
    lora_state(model).disabled = False
    _apply(model)


def fuse_lora(model: nn.Module, lora_scale: float = 1.0, adapter_names: list[str] | None = None) -> None:
    """Add ``lora_scale * weight_i * delta_i`` of the active adapters into the base weights (no LoRA
    branch at run time). peft's merged layers skip unmerged adapters, so ``adapter_names`` (default:
    the active ones) must be the whole active set."""
    st = lora_state(model)
    if st is None:
        raise LoraError("fuse_lora: no LoRA adapters loaded")
    _require_unfused(model, "fuse again")
    active = list(st.weights)
    names = active if adapter_names is None else _names(adapter_names)
    _require_known(model, names)
    if not names:
        raise LoraError("fuse_lora: no active adapters to fuse (set_adapters(...) first)")
    if set(names) != set(active):
        raise LoraError(f"fuse_lora: adapters {names} are not the active set {active}: peft's fused layers "
                        f"would silently skip the rest; set_adapters({names!r}, ...) first")
    if st.disabled:
        raise LoraError("fuse_lora: LoRA is disabled; enable_lora() first")
    saved = {}
    for qual, layer in lora_layers(model):
        here = [n for n in names if n in layer.lora_A]
        if not here:
            continue
        base = layer.get_base_layer()
        # the exact originals, kept in host memory: fusing is for inference, where device memory is dear
        bias = base.bias.detach().to("cpu", copy=True) if base.bias is not None else None
        saved[qual] = (base.weight.detach().to("cpu", copy=True), bias)
        for n in here:
            layer.set_scale(n, lora_scale * st.weights[n])
        layer.merge(adapter_names=here)
        for n in here:
            layer.set_scale(n, st.weights[n])
    st.fused, st.fused_names = saved, names


def unfuse_lora(model: nn.Module) -> None:
    """Write back the exact base weights kept by ``fuse_lora``; no-op when nothing is fused."""
    st = lora_state(model)
    if st is None or st.fused is None:
        return
    layers = dict(lora_layers(model))
    with torch.no_grad():
        for qual, (w, b) in st.fused.items():
            base = layers[qual].get_base_layer()
            base.weight.copy_(w)
            if b is not None:
                base.bias.copy_(b)
            layers[qual].merged_adapters.clear()
    st.fused, st.fused_names = None, []


def delete_adapters(model: nn.Module, names: str | list[str]) -> None:
    names = _names(names)
    _require_known(model, names)
    _require_unfused(model, f"delete adapters {names}")
    _drop(model, names)


def unload_lora(model: nn.Module, keep_fused: bool = False) -> None:
    """Remove every adapter and peft wrapper: the original ``nn.Linear`` modules return with their
    original weights (bit for bit; ``keep_fused=True`` keeps fused deltas in them instead)."""
    st = lora_state(model)
    if st is None:
        return
    if not keep_fused:
        unfuse_lora(model)
    for qual, layer in lora_layers(model):
        _replace(model, qual, layer.get_base_layer())
    _forget(model)


# ---------------------------------------------------------------------------- internals
def _replace(model: nn.Module, qual: str, module: nn.Module) -> None:
    parent, _, child = qual.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _drop(model: nn.Module, names: list[str]) -> None:
    """Delete adapters; unwrap layers left without any; forget LoRA entirely when none is left."""
    st = lora_state(model)
    for n in names:
        if any(n in layer.lora_A for _, layer in lora_layers(model)):
            delete_adapter(model, n, prefix="lora_", layer_cls=LoraLayer)
        getattr(model, "peft_config", {}).pop(n, None)
        if st is not None:
            st.weights.pop(n, None)
            st.trainable.discard(n)
    for qual, layer in lora_layers(model):
        if not layer.lora_A:
            _replace(model, qual, layer.get_base_layer())
    if not list_adapters(model):
        _forget(model)
    elif st is not None:
        _apply(model)


def _forget(model: nn.Module) -> None:
    st = model.__dict__.pop(STATE_ATTR, None)
    if "peft_config" in model.__dict__:
        del model.__dict__["peft_config"]
    if st is not None:
        for n, p in model.named_parameters():
            if n in st.base_requires_grad:
                p.requires_grad_(st.base_requires_grad[n])
