"""Robustness evaluation: accuracy under attacks, the per-point worst case, resumable runs,
gradient-masking checks and accuracy under random weight noise."""

from __future__ import annotations

from ratt.eval.flags import Flag, eps_sweep, format_flags, gradient_flags, result_flags, sweep_flag
from ratt.eval.partial import PartialStore
from ratt.eval.suite import EvalResult, evaluate, format_table, parse_attack
from ratt.eval.weight_noise import format_weight_noise, weight_noise_accuracy

__all__ = [
    "EvalResult",
    "Flag",
    "PartialStore",
    "eps_sweep",
    "evaluate",
    "format_flags",
    "format_table",
    "format_weight_noise",
    "gradient_flags",
    "parse_attack",
    "result_flags",
    "sweep_flag",
    "weight_noise_accuracy",
]
