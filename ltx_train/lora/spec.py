"""``lora=[style_dir:0.8,motion_dir:0.6]`` for the CLI: parse, then load and activate atomically."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch.nn as nn

from ltx_train.config import to_plain
from ltx_train.lora.adapters import LoraError, delete_adapters, list_adapters, set_adapters
from ltx_train.lora.config import MAX_ACTIVE
from ltx_train.lora.files import ADAPTER_WEIGHTS, check_base, load_lora, read_adapter


def _entry(item) -> tuple[str, float]:
    if isinstance(item, (list, tuple)) and len(item) == 2:
        path, weight = str(item[0]), item[1]
    elif isinstance(item, str):
        path, sep, tail = item.strip().rpartition(":")
        try:
            weight = float(tail) if sep else None
        except ValueError:
            weight = None
        if weight is None:               # no ":weight" suffix (or a ':' inside the path): weight 1
            path, weight = item.strip(), 1.0
    else:
        raise LoraError(f"LoRA spec entry {item!r}: expected 'path:weight', 'path' or (path, weight)")
    if not path:
        raise LoraError(f"LoRA spec entry {item!r}: empty path")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise LoraError(f"LoRA spec entry {item!r}: weight must be a finite number, got {weight!r}")
    return path, float(weight)


def parse_lora_spec(spec) -> list[tuple[str, float]]:
    """``'[a:0.8,b:0.6]'``, ``'a:0.8'``, ``'a'`` (weight 1), a list of such strings or of (path, weight)
    pairs, or a {path: weight} mapping -> [(path, weight), ...]. None or '' -> []."""
    spec = to_plain(spec)   # Hydra hands lists / dicts over as OmegaConf containers
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [_entry((k, v)) for k, v in spec.items()]
    if isinstance(spec, str):
        s = spec.strip()
        if s.startswith("[") and s.endswith("]"):
            s = s[1:-1]
        return [_entry(part) for part in s.split(",") if part.strip()]
    if isinstance(spec, (list, tuple)):
        return [_entry(item) for item in spec]
    raise LoraError(f"LoRA spec must be a string, a list or a mapping, got {type(spec).__name__}: {spec!r}")


def adapter_name_for(path: str | Path, taken: list[str]) -> str:
    """The adapter's folder name (or file stem), made a valid unique peft adapter name."""
    p = Path(path)
    stem = p.parent.name if p.name == ADAPTER_WEIGHTS else (p.stem if p.suffix == ".safetensors" else p.name)
    base = re.sub(r"[^A-Za-z0-9_-]", "_", stem) or "lora"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def apply_lora_spec(pipe_or_model, spec) -> list[str]:
    """Load every adapter of ``spec`` into ``pipe.model`` (or a model) and make exactly them active
    with their weights. All files are read and checked against the base first, and a failure while
    loading removes what this call loaded, so a refused spec leaves the model as it was."""
    model: nn.Module = getattr(pipe_or_model, "model", pipe_or_model)
    entries = parse_lora_spec(spec)
    if not entries:
        return []
    if len(entries) > MAX_ACTIVE:
        raise LoraError(f"at most {MAX_ACTIVE} adapters can be active at once; the spec names {len(entries)}")
    adapters, names = [], []
    for path, _ in entries:
        adapter = read_adapter(path)
        check_base(model, adapter)
        adapters.append(adapter)
        names.append(adapter_name_for(path, list_adapters(model) + names))
    done = []
    try:
        for (path, _), adapter, name in zip(entries, adapters, names):
            load_lora(model, path, name, activate=False, adapter=adapter)
            done.append(name)
        set_adapters(model, names, [w for _, w in entries])
    except Exception:
        if done:
            delete_adapters(model, done)
        raise
    return names
