"""Hyper-parameters and checkpoints made of plain types only.

``torch.load(weights_only=True)`` (torch's default, and what every loader here uses) refuses to unpickle
classes such as OmegaConf's ``DictConfig``, which Hydra hands every ``__init__``. Lightning's
``save_hyperparameters()`` stores the arguments as given, so a module built by Hydra wrote checkpoints
that could not be resumed. Every LightningModule calls ``save_plain_hyperparameters(self)`` instead::

    def __init__(self, lr: float = 1e-3, vae: dict | None = None):
        super().__init__()
        save_plain_hyperparameters(self)          # instead of self.save_hyperparameters()
"""
from __future__ import annotations

import dataclasses
import inspect
from collections import OrderedDict
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

# what torch's weights_only unpickler accepts without allow-listing (tensors are handled apart)
_LEAVES = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device, torch.Size)


def plain(value: Any, path: str = "value") -> Any:
    """``value`` as nested dict / list / tuple / scalars / tensors; TypeError naming ``path`` otherwise.

    OmegaConf containers are resolved, dataclasses become dicts; anything else (a class, a function,
    an arbitrary object) is refused, since loading it would need ``weights_only=False``.
    """
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, torch.Tensor) or isinstance(value, _LEAVES):
        return value
    if isinstance(value, (dict, OrderedDict)):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                raise TypeError(f"{path}: key {k!r} is a {type(k).__name__}; checkpoints hold plain keys only")
            out[k] = plain(v, f"{path}.{k}")
        return OrderedDict(out) if isinstance(value, OrderedDict) else out
    if isinstance(value, (list, tuple, set)):
        items = [plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items) if isinstance(value, tuple) else set(items)
    what = value if isinstance(value, type) else type(value)
    kind = "the class" if isinstance(value, type) else "a"
    raise TypeError(f"{path} is {kind} {what.__module__}.{what.__qualname__}: checkpoints hold plain "
                    "types only (dict, list, str, numbers, tensors); pass it as a dict or leave it out")


def save_plain_hyperparameters(module, ignore: tuple[str, ...] = ()) -> None:
    """``module.save_hyperparameters()`` of the caller's ``__init__`` arguments, converted by ``plain``.

    Call it from ``__init__`` (it reads the caller's frame, as Lightning does); ``ignore`` names
    arguments not to store (e.g. an ``nn.Module`` passed in).
    """
    from lightning.pytorch.core.mixins import HyperparametersMixin
    from lightning.pytorch.utilities.parsing import collect_init_args

    frame = inspect.currentframe().f_back
    init_args: dict[str, Any] = {}
    for local_args in collect_init_args(frame, [], classes=(HyperparametersMixin,)):
        init_args.update(local_args)
    hp = {k: plain(v, f"{type(module).__name__}.{k}") for k, v in init_args.items() if k not in ignore}
    if hp:
        module.save_hyperparameters(hp, frame=frame)
