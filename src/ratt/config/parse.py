"""Configurations from YAML files and ``key=value`` overrides: keys resolved, values converted
to each field's type (with did-you-mean errors), the resolved config written back as YAML."""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from ratt.config.sections import TrainConfig
from ratt.config.validate import validate
from ratt.errors import UserError

SECTIONS = [f.name for f in fields(TrainConfig)]


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {name: hints[name] for name in SECTIONS}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a ``key=value`` string) to ``annotation`` or raise."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, annotation, key)
    if origin is dict:
        return _coerce_dict(value, key)
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise UserError(f"{key}={value!r} should be a list (write a,b,c)")
        return [_coerce(v, typing.get_args(annotation)[0], key) for v in value]
    scalar = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}.get(annotation)
    if scalar is None:
        raise TypeError(f"unsupported config type {annotation}")
    return scalar(value, key)


def _coerce_union(value: Any, annotation: Any, key: str) -> Any:
    """``X | None`` (``none``/``null`` for None) or ``X | Y``: the first type that fits."""
    args = typing.get_args(annotation)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if type(None) in args:
            return None
    for option in args:
        if option is type(None):
            continue
        try:
            return _coerce(value, option, key)
        except UserError:
            pass
    raise UserError(f"{key}={value!r} has the wrong type (expected {_type_name(annotation)})")


def _coerce_dict(value: Any, key: str) -> dict:
    if isinstance(value, str):
        value = _yaml_value(value, key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise UserError(f"{key}={value!r} should be a mapping (YAML {{name: value}}, or {key}.NAME=value)")
    return dict(value)


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
        return False
    raise UserError(f"{key}={value!r} should be true or false")


def _number(value: Any, key: str, what: str) -> float:
    """``value`` as a float (not a bool); ``UserError`` saying it should be ``what``."""
    if isinstance(value, bool):
        raise UserError(f"{key}={value!r} should be {what}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{key}={value!r} should be {what}") from None


def _to_int(value: Any, key: str) -> int:
    as_float = _number(value, key, "an integer")
    if not as_float.is_integer():
        raise UserError(f"{key}={value!r} should be an integer")
    return int(as_float)


def _to_float(value: Any, key: str) -> float:
    number = _number(value, key, "a number")
    if not math.isfinite(number):
        raise UserError(f"{key}={value!r} should be a finite number")
    return number


def _to_str(value: Any, key: str) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise UserError(f"{key}={value!r} should be a string")
    if isinstance(value, bool):  # YAML's true/false for a key such as data.stream
        return "true" if value else "false"
    return str(value)


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args) or str(annotation)


def _field_types(section: str) -> dict[str, Any]:
    cls = _section_types()[section]
    return typing.get_type_hints(cls)


def _did_you_mean(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _all_keys() -> list[str]:
    keys = list(SECTIONS)
    for section in SECTIONS:
        keys += [f"{section}.{name}" for name in _field_types(section)]
        keys += list(_field_types(section))
    return keys


def _yaml_value(text: str, key: str) -> Any:
    """A command-line value read as YAML (``2`` -> 2, ``true`` -> True, ``[1, 2]`` -> a list)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"{key}={text!r} is not a valid YAML value") from None


def _is_mapping_field(section: str, name: str) -> bool:
    return typing.get_origin(_field_types(section).get(name)) is dict


def resolve_key(key: str) -> tuple[str, str]:
    """``"optim.epochs"``, ``"epochs"`` or ``"method"`` -> (section, field); a mapping field's
    entry (``"model.kwargs.width"``) -> (section, ``"kwargs.width"``)."""
    if "." in key:
        section, name = key.split(".", 1)
        if section in SECTIONS and name in _field_types(section):
            return section, name
        head = name.split(".", 1)[0]
        if section in SECTIONS and "." in name and _is_mapping_field(section, head):
            return section, name
    elif key in SECTIONS:
        return key, "name"
    else:
        owners = [s for s in SECTIONS if key in _field_types(s)]
        if len(owners) == 1:
            return owners[0], key
        if len(owners) > 1:
            raise UserError(f"{key!r} is ambiguous; write one of: {', '.join(f'{s}.{key}' for s in owners)}")
    raise UserError(f"unknown config key {key!r}{_did_you_mean(key, _all_keys())}")


def apply(config: TrainConfig, key: str, value: Any) -> None:
    """Set one value, converting and type-checking it (``model.kwargs.NAME=value``: one entry
    of a mapping field, the value read as YAML)."""
    section, name = resolve_key(key)
    if "." in name:
        head, entry = name.split(".", 1)
        mapping = dict(getattr(getattr(config, section), head) or {})
        mapping[entry] = _yaml_value(value, f"{section}.{name}") if isinstance(value, str) else value
        setattr(getattr(config, section), head, mapping)
        return
    typed = _coerce(value, _field_types(section)[name], f"{section}.{name}")
    setattr(getattr(config, section), name, typed)


def from_dict(data: dict[str, Any] | None, base: TrainConfig | None = None) -> TrainConfig:
    """A config from nested dicts (as in YAML) on top of ``base`` (default: the defaults)."""
    config = base or TrainConfig()
    for section, values in (data or {}).items():
        if section not in SECTIONS:
            raise UserError(f"unknown config section {section!r}{_did_you_mean(section, SECTIONS)}")
        if values is None:  # an empty section
            continue
        if not isinstance(values, dict):  # "method: trades" as shorthand for the name
            if not isinstance(values, str) or "name" not in _field_types(section):
                raise UserError(
                    f"config section {section!r} holds a {type(values).__name__}: write it as a "
                    f"mapping of keys, e.g. {section}: {{key: value}}"
                )
            apply(config, section, values)
            continue
        for name, value in values.items():
            if name not in _field_types(section):
                options = list(_field_types(section))
                raise UserError(f"unknown key {section}.{name}{_did_you_mean(name, options)}")
            apply(config, f"{section}.{name}", value)
    return config


MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; refuse to read a device or a dump


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (a regular file of at most 1 MiB); anything else is a ``UserError``."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"config file {path} does not exist")
    if not path.is_file():
        raise UserError(f"config file {path} is not a regular file")
    with open(path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise UserError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 20} MiB; is it a config?")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"config file {path} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections")
    return data


def parse_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides; types and ranges
    checked with :func:`validate` (registry names are not: see :func:`ratt.build_config`)."""
    config = from_dict(load_yaml(path)) if path else TrainConfig()
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        apply(config, key.strip(), value.strip())
    validate(config)
    return config


def diff_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
