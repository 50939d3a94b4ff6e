"""Run directories: their files, checkpoints, and the objects a run's configuration names.

Example:
    >>> from ratt.runs import RunFiles, load_checkpoint
    >>> model, config = load_checkpoint("runs/demo")
    >>> RunFiles("runs/demo").metrics
"""

from __future__ import annotations

from ratt.runs.build import (
    build_config,
    build_model,
    check_names,
    initial_model,
    load_checkpoint,
    load_described,
    load_foreign,
    threat_model,
)
from ratt.runs.checkpoint import (
    load_state,
    read_weights,
    resolve_checkpoint,
    save_state,
    save_weights,
)
from ratt.runs.files import EMA_SUFFIX, WEIGHTS_SUFFIX, RunFiles

__all__ = [
    "EMA_SUFFIX",
    "WEIGHTS_SUFFIX",
    "RunFiles",
    "build_config",
    "build_model",
    "check_names",
    "initial_model",
    "load_checkpoint",
    "load_described",
    "load_foreign",
    "load_state",
    "read_weights",
    "resolve_checkpoint",
    "save_state",
    "save_weights",
    "threat_model",
]
