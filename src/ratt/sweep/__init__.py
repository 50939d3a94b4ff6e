"""Grids of runs: ``run_sweep`` trains, evaluates, measures and reports datasets x methods x seeds.

Example:
    >>> from ratt.sweep import run_sweep
    >>> result = run_sweep("runs/study", ["digits"], ["trades", "rat_trades"], [0, 1, 2])
"""

from __future__ import annotations

from ratt.sweep.grid import Cell, SweepResult, plan, run_sweep

__all__ = ["Cell", "SweepResult", "plan", "run_sweep"]
