"""Typed configuration from YAML: plain mappings become dataclasses, every key and type checked.

Both the board files of ``rtser listen`` and the training recipes are read with :func:`build`, so
an unknown key or a value of the wrong type is always refused the same way, naming the key
(``mqtt.port: expected an integer, got str 'abc'``).

A configuration file may be hostile or not a configuration at all (``--config /etc/shadow``), so
it is read within bounds (:data:`MAX_CONFIG_BYTES`, :data:`MAX_DEPTH`, no anchors or aliases: a
board file needs none, and they are how a small file expands into a huge value), numbers must be
finite, and error messages name keys and types but show a value only when it is short, of a setting
that is no secret, and the key is a setting's name (the lines of another file never reach a log).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing

from .errors import RtserError

MAX_CONFIG_BYTES = 1 << 20  # board files and recipes are a few kilobytes
MAX_DEPTH = 16  # nesting of mappings and lists
SECRET_KEYS = frozenset({"password", "username", "keyfile"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


class ConfigError(RtserError):
    """A configuration file or value that cannot be used."""


def load_yaml(path: str) -> dict:
    """A YAML file's top-level mapping (safe loader; an empty file is an empty mapping)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MB: not a configuration file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text: not a configuration file") from None
    import yaml  # here: reading a model or a file needs no YAML, and replay starts sooner without it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where PyYAML has it
    try:
        _check_structure(text, loader)
        raw = yaml.load(text, Loader=loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return raw


def _check_structure(text: str, loader) -> None:
    """Refuse anchors, aliases and nesting deeper than :data:`MAX_DEPTH` before building anything."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            raise ConfigError(f"line {mark.line + 1}: anchors and aliases are not allowed in a configuration")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"line {event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


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
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {_show(values, where)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if key not in fields:
            named = _join(where, key) if isinstance(key, str) and _NAME.fullmatch(key) else where or "top level"
            what = "unknown key" if named != (where or "top level") else "an entry that is not a setting's name"
            raise ConfigError(f"{named}: {what} (known: {', '.join(sorted(fields))})")
    kwargs = {key: convert(hints[key], value, _join(where, key)) for key, value in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def _show(value, where: str = "") -> str:
    """A value for an error message: its type, and the value itself when it is short and not a
    secret's."""
    if value is None:
        return "nothing"
    shown = repr(value) if isinstance(value, (str, int, float, bool)) else ""
    if len(shown) > 40 or where.rpartition(".")[2] in SECRET_KEYS:
        shown = ""
    return f"{type(value).__name__} {shown}".rstrip()


def convert(kind, value, where: str):
    """``value`` as the type ``kind`` (a scalar, list, tuple, dict, union or dataclass) of the setting
    at ``where``; ConfigError naming ``where`` and the value's type when it is not one."""
    origin = typing.get_origin(kind) or (kind if kind in (list, tuple, dict) else None)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return convert(option, value, where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0] if len(errors) == 1 else ConfigError(f"{where}: {_show(value, where)} is not a valid value")
    if dataclasses.is_dataclass(kind):
        return build(kind, value, where)
    if kind is typing.Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_show(value, where)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else typing.Any
        converted = [convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value, where)}")
        key_kind, item_kind = args or (typing.Any, typing.Any)
        return {convert(key_kind, k, where): convert(item_kind, v, _join(where, k)) for k, v in value.items()}
    return _scalar(kind, value, where)


def _scalar(kind, value, where: str):
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {_show(value, where)}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_show(value, where)}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{where}: expected a finite number, got {_show(value, where)}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {_show(value, where)}")
    raise TypeError(f"unsupported config type {kind!r} at {where}")
