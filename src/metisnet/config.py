"""Frozen configuration loaded from one TOML file per node, overridable by environment.

A config is a frozen dataclass; :func:`load_config` reads a TOML table into it, then lets
environment variables ``<PREFIX>_<FIELD>`` (upper case) override single fields. Unknown
keys are refused so that a typo in a config file is an error, not a silent default.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from metisnet.errors import ConfigError

__all__ = ["config_from_mapping", "load_config"]

C = TypeVar("C")

_SCALARS: dict[type, Any] = {int: int, float: float, str: str}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(name, value, args[0])
    if hint is bool:
        if isinstance(value, bool):
            return value
        truthy, falsy = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
        if isinstance(value, str) and value.lower() in truthy + falsy:
            return value.lower() in truthy
        raise ConfigError(f"config field {name!r} must be a boolean, got {type(value).__name__}")
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"config field {name!r} must be a path string")
        return Path(value)
    if hint in _SCALARS:
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, hint) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return _SCALARS[hint](value)
            except ValueError:
                pass
        raise ConfigError(f"config field {name!r} must be of type {hint.__name__}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config field {name!r} must be a list")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return tuple(_coerce(name, v, item) for v in value)
    return value


def config_from_mapping(cls: type[C], data: Mapping[str, Any], *, env_prefix: str = "") -> C:
    """Build the frozen dataclass ``cls`` from ``data``; environment variables override."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)}")
    values: dict[str, Any] = dict(data)
    if env_prefix:
        for name in names:
            env = os.environ.get(f"{env_prefix}_{name}".upper())
            if env is not None:
                values[name] = env
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def load_config(cls: type[C], path: str | Path, *, table: str = "", env_prefix: str = "METIS") -> C:
    """Read ``path`` (TOML), take ``[table]`` if given, and build ``cls`` from it."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    if table:
        section = raw.get(table, {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{table}] in {p} must be a table")
        raw = section
    return config_from_mapping(cls, raw, env_prefix=env_prefix)
