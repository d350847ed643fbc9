"""Shared plumbing of the Hydra entry points: resolvers, config checks, building objects by key."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ltx_train.config import ConfigError

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


def build(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of ``cfg[key]``; errors are re-raised naming the key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    node = OmegaConf.select(cfg, key)
    if node is None:
        raise ConfigError(f"config key '{key}' is not set")
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"{key}: {cause}") from cause
    except (ConfigError, TypeError, ValueError, FileNotFoundError) as e:
        raise ConfigError(f"{key}: {e}") from e


def build_all(cfg: DictConfig, key: str) -> list[Any]:
    """Instantiate every entry of a mapping group such as ``callbacks`` or ``logger``."""
    node = OmegaConf.select(cfg, key)
    if not node:
        return []
    return [build(cfg, f"{key}.{name}") for name in node if OmegaConf.select(node, f"{name}._target_")]
