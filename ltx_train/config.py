"""Typed configs from Hydra dicts, with errors that name the key.

Models take dataclass configs (usable without Hydra); Hydra hands LightningModules plain dicts.
``to_dataclass`` converts one into the other and fails *before training* on an unknown key,
a missing required key or a value of the wrong type, naming the full key path.
"""
from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration value, reported with the key path that holds it."""


def to_plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts / lists (resolved); anything else unchanged."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _one_of(value: Any, choices) -> bool:
    return any(value == c and type(value) is type(c) for c in choices)  # True is not 1 here


def _not_one_of(value: Any, choices, path: str) -> ConfigError:
    return ConfigError(f"{path}: expected one of {', '.join(map(repr, choices))}, got {type(value).__name__} {value!r}")


def _check(value: Any, tp: Any, path: str) -> Any:
    """Return ``value`` coerced to ``tp`` where that is lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Literal:  # e.g. the Trainer's precision
        if not _one_of(value, typing.get_args(tp)):
            raise _not_one_of(value, typing.get_args(tp), path)
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        literals = [v for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
        if _one_of(value, literals):
            return value
        others = [a for a in args if typing.get_origin(a) is not typing.Literal]
        if value is None and type(None) in others:  # before a dataclass member, which would build its defaults
            return None
        errors = []
        for arg in others:
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        if literals and not errors:  # only literals (and None) were allowed
            raise _not_one_of(value, literals, path)
        raise ConfigError(errors[0] if errors else f"{path}: expected {tp}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            items = [_check(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_check(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return to_dataclass(tp, value, path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    return value


def to_dataclass(cls: type[T], value: Any, path: str = "config") -> T:
    """Build dataclass ``cls`` from a dict (or return it unchanged if it already is one)."""
    if isinstance(value, cls):
        return value
    value = to_plain(value)
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping of {cls.__name__} fields, got {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields) - {"_target_"})
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown key for {cls.__name__} "
                          f"(valid keys: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _check(value[name], hints[name], f"{path}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{path}.{name}: missing required key for {cls.__name__}")
    return cls(**kwargs)


def check_arguments(target: Any, values: Mapping, path: str) -> None:
    """Fail, naming ``path.<arg>``, if ``values`` do not fit the signature of ``target`` (a class or function).

    Each value is checked against its parameter's annotation with ``_check`` (the rules of dataclass
    fields: a number for ``float``, an integer for ``int``, ...); an argument the signature does not take
    is an unknown key unless it has ``**kwargs``. Annotations that are not simple types pass unchecked.
    """
    func = inspect.unwrap(target.__init__ if isinstance(target, type) else target)  # decorated __init__s
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins and C extensions may have no signature: nothing to check
        return
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # an annotation that does not evaluate here (e.g. a TYPE_CHECKING import): skip all
        hints = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    name_of = getattr(target, "__qualname__", repr(target))
    for name, value in values.items():
        if name.startswith("_") and name.endswith("_"):  # _target_, _partial_, _recursive_, ...
            continue
        param = params.get(name)
        if param is None or param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            if takes_any:
                continue
            valid = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            raise ConfigError(f"{path}.{name}: unknown key for {name_of} (valid keys: {', '.join(valid)})")
        if isinstance(value, Mapping) and "_target_" in value:
            continue  # Hydra builds it first; its own arguments are checked by the caller
        if name in hints:
            _check(value, hints[name], f"{path}.{name}")
