"""Configurations from YAML files and ``key=value`` overrides: keys resolved, values converted
to each field's type (with did-you-mean errors), the resolved config written back as YAML."""

from __future__ import annotations

import difflib
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
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(f"{key}={value!r} has the wrong type (expected {_type_name(annotation)})")
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise UserError(f"{key}={value!r} should be a list (write a,b,c)")
        return [_coerce(v, args[0], key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise UserError(f"{key}={value!r} should be true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise UserError(f"{key}={value!r} should be an integer")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key}={value!r} should be an integer") from None
        if not as_float.is_integer():
            raise UserError(f"{key}={value!r} should be an integer")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise UserError(f"{key}={value!r} should be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key}={value!r} should be a number") from None
    if annotation is str:
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"{key}={value!r} should be a string")
        return str(value)
    raise TypeError(f"unsupported config type {annotation}")


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


def resolve_key(key: str) -> tuple[str, str]:
    """``"optim.epochs"``, ``"epochs"`` or ``"method"`` -> (section, field)."""
    if "." in key:
        section, name = key.split(".", 1)
        if section in SECTIONS and name in _field_types(section):
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
    """Set one value, converting and type-checking it."""
    section, name = resolve_key(key)
    typed = _coerce(value, _field_types(section)[name], f"{section}.{name}")
    setattr(getattr(config, section), name, typed)


def from_dict(data: dict[str, Any] | None, base: TrainConfig | None = None) -> TrainConfig:
    """A config from nested dicts (as in YAML) on top of ``base`` (default: the defaults)."""
    config = base or TrainConfig()
    for section, values in (data or {}).items():
        if section not in SECTIONS:
            raise UserError(f"unknown config section {section!r}{_did_you_mean(section, SECTIONS)}")
        if not isinstance(values, dict):
            apply(config, section, values)  # "method: trades" as shorthand for the name
            continue
        for name, value in values.items():
            if name not in _field_types(section):
                options = list(_field_types(section))
                raise UserError(f"unknown key {section}.{name}{_did_you_mean(name, options)}")
            apply(config, f"{section}.{name}", value)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a ``UserError``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
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


def save_yaml(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config (every field) as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
