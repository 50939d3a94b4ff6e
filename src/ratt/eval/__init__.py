"""Robustness evaluation: accuracy under attacks and the per-point worst case."""

from __future__ import annotations

from ratt.eval.suite import EvalResult, evaluate, format_table, parse_attack

__all__ = ["EvalResult", "evaluate", "format_table", "parse_attack"]
