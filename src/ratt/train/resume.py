"""Resuming from a run directory alone: its saved config, and the changes a resume may make.

``ratt train --resume DIR`` needs nothing of the command line that started the run: the
config is the one saved in ``DIR/config.yaml`` (:func:`saved_config`), and ``key=value``
given with ``--resume`` are changes to it, each logged, allowed only for the keys that do
not make it another run (:data:`ratt.train.checkpointing.RESUMABLE_KEYS`; :func:`apply_changes`).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from ratt import config as cfg
from ratt.errors import UserError
from ratt.runs import RunFiles
from ratt.runs.build import check_trusted, config_from_metadata
from ratt.runs.checkpoint import read_header
from ratt.train.checkpointing import RESUMABLE_KEYS

log = logging.getLogger(__name__)


def saved_config(out_dir: str | Path, *, trust_code: bool = False) -> cfg.TrainConfig:
    """The config a run directory was started with: its ``config.yaml`` (or, if that is missing
    or unreadable, the one stored in ``checkpoints/last.safetensors``).

    Raises:
        UserError: the directory holds no run, or its config names a model that runs code
            (``file.py:fn``) and ``trust_code`` is not given (a run directory is data).
    """
    files = RunFiles(out_dir)
    if not files.root.is_dir():
        raise UserError(f"{files.root} does not exist: there is no run to resume (start it without --resume)")
    last = files.weights("last")
    if not files.config.is_file() and not last.is_file():
        raise UserError(f"{files.root} holds no run to resume (no config.yaml); start it without --resume")
    if files.config.is_file():
        try:
            config = cfg.from_dict(with_earlier_numerics(cfg.load_yaml(files.config)))
        except UserError as exc:
            if not last.is_file():
                raise
            log.warning("%s; using the config stored in %s", exc, last)
        else:
            check_trusted(config, files.config, trust_code=trust_code)
            return config
    _, meta = read_header(last)
    if isinstance(meta.get("config"), dict):
        meta = {**meta, "config": with_earlier_numerics(meta["config"])}
    return config_from_metadata(meta, last, trust_code=trust_code)


def with_earlier_numerics(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config from before ``method.numerics`` existed (commit f33a68b and earlier) ran
    with what is now ``numerics=paper``: say so, so that a resume continues the same run."""
    method = saved.get("method")
    if isinstance(method, dict) and "numerics" not in method:
        return {**saved, "method": {**method, "numerics": "paper"}}
    return saved


def apply_changes(config: cfg.TrainConfig, overrides: list[str], where: str | Path) -> cfg.TrainConfig:
    """``config`` with the ``key=value`` changes applied, each logged in one line
    (``changing optim.epochs 3 -> 10``); only :data:`RESUMABLE_KEYS` may change. A value equal
    to the saved one is no change.

    Raises:
        UserError: a malformed or unknown key, a bad value, or a change that would make the
            resumed run another run (naming the key, the saved value and the new one).
    """
    new = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        cfg.apply(new, key.strip(), value.strip())
    old_dict, new_dict = config.to_dict(), new.to_dict()
    changed = cfg.diff_keys(old_dict, new_dict)
    for key in changed:
        if key not in RESUMABLE_KEYS:
            raise UserError(
                f"cannot change {key} ({_value(old_dict, key)} -> {_value(new_dict, key)}) when resuming "
                f"{where}: only {', '.join(sorted(RESUMABLE_KEYS))} may change (start a new run instead)"
            )
    cfg.validate(new)
    for key in changed:
        log.info("changing %s %s -> %s", key, _value(old_dict, key), _value(new_dict, key))
    return new


def _value(nested: dict[str, Any], key: str) -> str:
    section, name = key.split(".", 1)
    value = nested.get(section, {}).get(name)
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)
