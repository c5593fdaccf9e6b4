"""Typed configuration from YAML: plain mappings become dataclasses, every key and type checked.

Both the board files of ``rtser listen`` and the training recipes are read with :func:`build`, so
an unknown key or a value of the wrong type is always refused the same way, naming the key
(``mqtt.port: expected an integer, got str 'abc'``).
"""

from __future__ import annotations

import dataclasses
import types
import typing

import yaml

from .errors import RtserError


class ConfigError(RtserError):
    """A configuration file or value that cannot be used."""


def load_yaml(path: str) -> dict:
    """A YAML file's top-level mapping (safe loader; an empty file is an empty mapping)."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return raw


def load(cls, path: str, raw: dict | None = None):
    """An instance of dataclass ``cls`` from the YAML file ``path`` (or from ``raw``, already read
    from it); errors start with the file's name."""
    try:
        return build(cls, load_yaml(path) if raw is None else raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def build(cls, values, where: str = ""):
    """An instance of dataclass ``cls`` from a mapping, checking keys and value types."""
    if isinstance(values, cls):
        return values
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {_show(values)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if key not in fields:
            raise ConfigError(f"{_join(where, key)}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {key: _convert(hints[key], value, _join(where, key)) for key, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def _show(value) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _convert(kind, value, where: str):
    origin = typing.get_origin(kind) or (kind if kind in (list, tuple, dict) else None)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0] if len(errors) == 1 else ConfigError(f"{where}: {_show(value)} is not a valid value")
    if dataclasses.is_dataclass(kind):
        return build(kind, value, where)
    if kind is typing.Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else typing.Any
        converted = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        key_kind, item_kind = args or (typing.Any, typing.Any)
        return {_convert(key_kind, k, where): _convert(item_kind, v, _join(where, k)) for k, v in value.items()}
    return _scalar(kind, value, where)


def _scalar(kind, value, where: str):
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {_show(value)}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {_show(value)}")
    raise TypeError(f"unsupported config type {kind!r} at {where}")
