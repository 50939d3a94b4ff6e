"""Run configuration: one dataclass per concern, YAML files and ``key=value`` overrides.

A YAML file holds only what differs from the defaults::

    data: {name: cifar10}
    model: {name: wrn-34-10}
    method: {name: rat_trades, alpha: 0.2}
    optim: {epochs: 200}

On the command line a key is ``section.field=value``; a field name that exists in only one
section may be written bare (``epochs=5``), and a section name alone sets its ``name``
(``method=pgd_at``).

This module checks types, ranges and closed sets of values; names that live in a registry
(datasets, models, methods, attacks) are checked by :func:`ratt.runs.check_names`, and
:func:`ratt.build_config` does both.
"""

from __future__ import annotations

from ratt.config.describe import describe_keys
from ratt.config.parse import (
    SECTIONS,
    apply,
    diff_keys,
    from_dict,
    load_yaml,
    parse_config,
    resolve_key,
)
from ratt.config.sections import (
    CHOICES,
    RESUMABLE_KEYS,
    AttackConfig,
    DataConfig,
    MethodConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)
from ratt.config.validate import validate

__all__ = [
    "CHOICES",
    "RESUMABLE_KEYS",
    "diff_keys",
    "SECTIONS",
    "AttackConfig",
    "DataConfig",
    "MethodConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "apply",
    "describe_keys",
    "from_dict",
    "load_yaml",
    "parse_config",
    "resolve_key",
    "validate",
]
