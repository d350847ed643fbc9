"""Components on disk without pickles: ``config.json`` + ``model.safetensors`` per component.

A pretrained directory (what ``LTXVideoPipeline.save_pretrained`` and ``ltx-export`` write) is

    model_index.json          {"_class_name": "LTXVideoPipeline", "vae": "VideoVAE", ..., "text_encoder": {...}}
    vae/config.json           {"_class_name": "VideoVAE", ...VideoVAEConfig fields}
    vae/model.safetensors
    audio_vae/ vocoder/ model/   likewise (vocoder absent: Griffin-Lim)
    text_encoder/             only when the encoder was copied; otherwise model_index.json names its path

Loading reads local files only and checks every key and shape against the config's architecture,
naming the file and the first mismatching key. Training checkpoints record the same configs under
``checkpoint["components"]`` (see ``component_from_checkpoint``), so a Lightning checkpoint converts
into this layout without instantiating its LightningModule.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from ltx_train.config import ConfigError, to_dataclass

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
FORMAT_VERSION = 1


class PretrainedError(ConfigError):
    """A pretrained directory or checkpoint that does not match what is asked of it."""


def _plain(x: Any) -> Any:
    if dataclasses.is_dataclass(x):
        x = dataclasses.asdict(x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _registry() -> dict[str, tuple[type[nn.Module], Callable[[dict], Any]]]:
    """class name -> (module class, config builder from a plain dict)."""
    from ltx_train.models.audio.audio_vae import AudioVAE, AudioVAEConfig
    from ltx_train.models.audio.vocoder import HiFiGAN, HiFiGANConfig
    from ltx_train.models.ltx import LTXModel, LTXModelConfig
    from ltx_train.models.vae import VideoVAE, VideoVAEConfig

    return {
        "VideoVAE": (VideoVAE, lambda d: to_dataclass(VideoVAEConfig, d, "vae config")),
        "AudioVAE": (AudioVAE, lambda d: to_dataclass(AudioVAEConfig, d, "audio_vae config")),
        "HiFiGAN": (HiFiGAN, lambda d: to_dataclass(HiFiGANConfig, d, "vocoder config")),
        "LTXModel": (LTXModel, lambda d: LTXModelConfig.from_dict(d, "model config")),
    }


def config_of(module: nn.Module) -> dict:
    """The plain config dict of a registered component."""
    cfg = getattr(module, "cfg", None) or getattr(module, "config", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        raise TypeError(f"{type(module).__name__} has no dataclass config (.cfg / .config)")
    return _plain(cfg)


def build_component(class_name: str, config: dict, where: str = "") -> nn.Module:
    reg = _registry()
    if class_name not in reg:
        raise PretrainedError(f"{where}: unknown component class {class_name!r} (known: {', '.join(sorted(reg))})")
    cls, make_cfg = reg[class_name]
    try:
        return cls(make_cfg(config))
    except (ConfigError, ValueError, TypeError) as e:
        raise PretrainedError(f"{where}: bad {class_name} config: {e}") from e


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict(strict=True)`` with an error naming the first missing, unexpected or
    mis-shaped key (and both shapes) instead of a wall of text."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key {missing[0]!r} ({len(missing)} missing)")
        if unexpected:
            parts.append(f"unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected)")
        raise PretrainedError(f"{where}: weights do not match the {type(module).__name__} architecture: "
                              + "; ".join(parts))
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise PretrainedError(f"{where}: key {k!r} has shape {tuple(v.shape)}, the architecture wants "
                                  f"{tuple(own[k].shape)}")
    module.load_state_dict(state, strict=True)


def save_component(module: nn.Module, path: str | Path, dtype: torch.dtype | None = None,
                   state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``path/config.json`` and ``path/model.safetensors``. ``dtype`` casts floating-point
    parameters (buffers such as latent statistics keep theirs); ``state`` replaces the module's own
    weights (e.g. EMA averages)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = dict(state if state is not None else module.state_dict())
    params = {n for n, _ in module.named_parameters()}
    out = {}
    for k, v in state.items():
        v = v.detach()
        if dtype is not None and k in params and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous().cpu().clone()
    config = {"_class_name": type(module).__name__, "_format_version": FORMAT_VERSION, **config_of(module)}
    tmp = path / (WEIGHTS_NAME + ".tmp")
    save_file(out, str(tmp), metadata={"format": "pt"})
    tmp.replace(path / WEIGHTS_NAME)
    (path / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return path


def read_config(path: Path) -> dict:
    file = path / CONFIG_NAME
    if not file.is_file():
        raise PretrainedError(f"{file}: no such file (a component folder holds {CONFIG_NAME} + {WEIGHTS_NAME})")
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise PretrainedError(f"{file}: not valid JSON ({e})") from e
    if "_class_name" not in config:
        raise PretrainedError(f"{file}: no '_class_name' key")
    return config


def load_component(path: str | Path, name: str | None = None, device: str | torch.device = "cpu",
                   dtype: torch.dtype | None = None, expect: str | None = None) -> nn.Module:
    """Build a component from ``path`` (its folder, or a pipeline folder + ``name``) in eval mode."""
    path = Path(path)
    if name is not None and not (path / CONFIG_NAME).is_file() and (path / name).is_dir():
        path = path / name
    config = read_config(path)
    class_name = config.pop("_class_name")
    config.pop("_format_version", None)
    if expect is not None and class_name != expect:
        raise PretrainedError(f"{path / CONFIG_NAME}: holds a {class_name}, expected a {expect}")
    module = build_component(class_name, config, str(path / CONFIG_NAME))
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise PretrainedError(f"{weights}: no such file")
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for truncated / foreign files
        raise PretrainedError(f"{weights}: not a readable safetensors file ({e})") from e
    load_state_checked(module, state, str(weights))
    module.to(device=device)
    if dtype is not None:
        module.to(dtype=dtype)
    return module.eval()


# ---------------------------------------------------------------------------- training checkpoints
WHAT = {"vae": "video VAE", "audio_vae": "audio VAE", "vocoder": "vocoder", "model": "DiT"}


def safe_load_checkpoint(path: str | Path, what: str = "") -> dict:
    """``torch.load(weights_only=True)``: a checkpoint can hold tensors and plain containers only, so a
    crafted pickle cannot run code here. A DeepSpeed checkpoint directory (``trainer=deepspeed_*``) is
    merged into one (``modules.zero_checkpoint``; DeepSpeed's shard files are read as DeepSpeed writes
    them, with pickles: pass only directories your own runs wrote)."""
    import pickle

    from ltx_train.modules.zero_checkpoint import ZeroCheckpointError, convert_zero_checkpoint, is_zero_checkpoint
    path = Path(path)
    label = f"{what} checkpoint" if what else "checkpoint"
    if is_zero_checkpoint(path):   # trainer=deepspeed_*: a directory of shards, merged into one checkpoint here
        try:
            return convert_zero_checkpoint(path)
        except ZeroCheckpointError as e:
            raise PretrainedError(str(e)) from e
    if not path.is_file():
        raise PretrainedError(f"{label} not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise PretrainedError(f"{path}: refusing to load this {label}: it holds objects other than plain types "
                              f"and tensors, and unpickling them could run code ({first}). Checkpoints written by "
                              f"ltx-train hold plain types only; re-save an old, trusted one with "
                              f"`python -m ltx_train.modules.convert_checkpoint SRC DST`") from e
    except Exception as e:  # RuntimeError / EOFError for truncated or foreign files
        raise PretrainedError(f"{path}: not a readable {label} ({type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0][:200]})") from e


def record_component(checkpoint: dict, name: str, module: nn.Module, prefix: str,
                     ema_prefix: str | None = None) -> None:
    """Called from ``on_save_checkpoint``: note which state-dict prefix holds component ``name`` and
    its architecture, so ``component_from_checkpoint`` can rebuild it from plain data."""
    checkpoint.setdefault("components", {})[name] = {
        "class_name": type(module).__name__, "config": config_of(module), "prefix": prefix, "ema_prefix": ema_prefix}


def checkpoint_components(ckpt: dict, path: str | Path) -> dict:
    comps = ckpt.get("components")
    if not isinstance(comps, dict) or not comps:
        raise PretrainedError(f"{path}: no component record in this checkpoint (written by an older ltx-train, "
                              f"or not an ltx-train checkpoint)")
    return comps


def component_from_checkpoint(path: str | Path, name: str, use_ema: bool = True,
                              ckpt: dict | None = None) -> nn.Module:
    """Rebuild component ``name`` (e.g. "vae", "audio_vae", "vocoder", "model") from a training
    checkpoint, with its EMA weights when the checkpoint has them and ``use_ema``."""
    ckpt = ckpt if ckpt is not None else safe_load_checkpoint(path, WHAT.get(name, name))
    comps = checkpoint_components(ckpt, path)
    if name not in comps:
        raise PretrainedError(f"{path}: holds {', '.join(sorted(comps))}, not a {name!r} component "
                              f"(is this the right checkpoint?)")
    rec = comps[name]
    module = build_component(rec["class_name"], rec["config"], f"{path} [{name}]")
    sd = ckpt["state_dict"]
    prefix = rec["prefix"]
    state = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if use_ema and rec.get("ema_prefix"):
        from ltx_train.modules.ema import EMA
        state.update(EMA.averages_from_state_dict(sd, rec["ema_prefix"]))
    load_state_checked(module, state, f"{path} [{name}]")
    return module.requires_grad_(False).eval()


def weights_sha256(module: nn.Module) -> str:
    """A hash of a module's weights (names, dtypes, shapes and bytes), to tell encoders apart: the
    latent cache's manifest records it, the generation encoding cache keys on it."""
    import hashlib
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
