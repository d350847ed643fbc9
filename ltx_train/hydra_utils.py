"""Shared plumbing of the Hydra entry points: resolvers, config checks, building objects by key."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ltx_train.config import ConfigError, check_arguments, to_plain

log = logging.getLogger("ltx_train")

# conf/ sits next to the package in the repository (install with `pip install -e .`).
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("wandb_offline"):
        # W&B stays offline unless the user has configured a key: no network access is assumed.
        OmegaConf.register_new_resolver("wandb_offline", lambda: not os.environ.get("WANDB_API_KEY"))


def check_config(cfg: DictConfig, required: tuple[str, ...] = ()) -> None:
    """Fail before any work on missing values (``???``) or absent required groups, naming the key."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"missing value for config key(s): {', '.join(missing)} (set them on the "
                          f"command line, e.g. {missing[0]}=...)")
    for key in required:
        if OmegaConf.select(cfg, key, default=None) is None:
            raise ConfigError(f"config key '{key}' is required but not set")
    try:  # every interpolation must resolve now, not halfway through training
        OmegaConf.resolve(OmegaConf.create(OmegaConf.to_container(cfg, resolve=False)))
    except Exception as e:  # omegaconf raises several error types; they all name the key
        raise ConfigError(f"config does not resolve: {e}") from e


def _source_of(cfg: DictConfig, path: str) -> tuple[str, str] | None:
    """The key to override for ``path`` when a node on it is an interpolation: ``model.vae.x`` -> ``vae.x``.

    ``model.vae`` is ``${vae}``: Hydra cannot set ``model.vae.latent_channels``, the user must set
    ``vae.latent_channels``, so an error about the first names the second too.
    Returns (the interpolated node, the key to override), or None.
    """
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    parts = path.split(".")
    for i, part in enumerate(parts):
        node = node.get(part) if isinstance(node, dict) else None
        m = re.fullmatch(r"\$\{([\w.]+)\}", node) if isinstance(node, str) else None
        if m:
            return ".".join(parts[:i + 1]), ".".join([m[1], *parts[i + 1:]])
    return None


def _named(cfg: DictConfig, key: str, error: Exception) -> ConfigError:
    """``error`` as a ConfigError whose message starts with the full key (not prefixed twice)."""
    msg = str(error)
    if not (isinstance(error, ConfigError) and (msg.startswith(f"{key}.") or msg.startswith(f"{key}:"))):
        msg = f"{key}: {msg}"
    m = re.match(r"([\w.]+)(\[\d+\])*: ", msg)
    source = _source_of(cfg, m[1]) if m else None
    if source:
        msg += f" ({source[0]} is an interpolation: override {source[1]} instead)"
    return ConfigError(msg)


def _check_node(value: Any, path: str, skip: frozenset = frozenset()) -> None:
    """Type-check the arguments of every ``_target_`` node in ``value`` (resolved), naming ``path.<arg>``."""
    from hydra.utils import get_object

    if isinstance(value, dict):
        target = value.get("_target_")
        if target is not None:
            try:
                obj = get_object(target)
            except Exception as e:  # ImportError, AttributeError, ...: the target is the bad key
                raise ConfigError(f"{path}._target_: cannot import {target!r}: {e}") from e
            check_arguments(obj, {k: v for k, v in value.items() if k not in skip}, path)
        for k, v in value.items():
            if k not in skip:
                _check_node(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_node(v, f"{path}[{i}]")


def check_targets(cfg: DictConfig, keys: tuple[str, ...], **kwargs: Any) -> None:
    """Check the constructor arguments of ``cfg[key]`` for each key (before anything is built).

    ``kwargs`` are arguments the caller passes itself (not checked). A key that is a mapping group
    without ``_target_`` (``callbacks``, ``logger``) has each member checked.
    """
    for key in keys:
        node = OmegaConf.select(cfg, key)
        if node is None:
            continue
        value = to_plain(node)
        try:
            _check_node(value, key, frozenset(kwargs))
        except ConfigError as e:
            raise _named(cfg, key, e) from e


def build(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of ``cfg[key]`` after ``check_targets``; errors are re-raised naming the key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    node = OmegaConf.select(cfg, key)
    if node is None:
        raise ConfigError(f"config key '{key}' is not set")
    check_targets(cfg, (key,), **kwargs)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise _named(cfg, key, cause) from cause
    except (ConfigError, TypeError, ValueError, FileNotFoundError) as e:
        raise _named(cfg, key, e) from e


def build_all(cfg: DictConfig, key: str) -> list[Any]:
    """Instantiate every entry of a mapping group such as ``callbacks`` or ``logger``."""
    node = OmegaConf.select(cfg, key)
    if not node:
        return []
    return [build(cfg, f"{key}.{name}") for name in node if OmegaConf.select(node, f"{name}._target_")]
