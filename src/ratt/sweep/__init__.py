"""Grids of runs: ``run_sweep`` trains, evaluates, measures and reports datasets x methods x
seeds, one cell after another, in parallel worker processes, or as Slurm jobs;
``sweep_status`` says where each cell stands.

Example:
    >>> from ratt.sweep import run_sweep, sweep_status, format_status
    >>> result = run_sweep("runs/study", ["digits"], ["trades", "rat_trades"], [0, 1, 2], workers=2)
    >>> print(format_status(sweep_status("runs/study")))
"""

from __future__ import annotations

from ratt.sweep.cell import Cell, CellJob, plan
from ratt.sweep.grid import SweepResult, run_sweep
from ratt.sweep.slurm import SlurmOptions
from ratt.sweep.status import CellView, format_status, sweep_status
from ratt.sweep.watch import SweepInterrupted

__all__ = [
    "Cell",
    "CellJob",
    "CellView",
    "SlurmOptions",
    "SweepInterrupted",
    "SweepResult",
    "format_status",
    "plan",
    "run_sweep",
    "sweep_status",
]
