"""Robustness evaluation: accuracy under attacks, the per-point worst case, resumable runs,
gradient-masking checks and accuracy under random weight noise.

Example:
    >>> from ratt.eval import EvalOptions, evaluate_run
    >>> report = evaluate_run("runs/demo", EvalOptions(attacks=["clean", "pgd20", "aa"]))
    >>> report.result.robust
"""

from __future__ import annotations

from ratt.eval.flags import Flag, eps_sweep, gradient_flags, result_flags, sweep_flag
from ratt.eval.format import format_flags, format_result, format_weight_noise
from ratt.eval.partial import PartialStore
from ratt.eval.run import EvalOptions, EvalReport, eval_done, evaluate_run
from ratt.eval.suite import EvalPlan, EvalResult, evaluate
from ratt.eval.weight_noise import weight_noise_accuracy

__all__ = [
    "EvalPlan",
    "EvalOptions",
    "EvalReport",
    "EvalResult",
    "Flag",
    "PartialStore",
    "eps_sweep",
    "eval_done",
    "evaluate",
    "evaluate_run",
    "format_flags",
    "format_result",
    "format_weight_noise",
    "gradient_flags",
    "result_flags",
    "sweep_flag",
    "weight_noise_accuracy",
]
