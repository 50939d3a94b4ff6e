"""``python -m ratt.sweep.worker``: run one cell, a pickled :class:`ratt.sweep.cell.CellJob`
read from stdin (what ``run_sweep(workers=N)`` starts for each cell; stdout and stderr go to
the cell's ``sweep.log``). Exit code 0: done, 1: failed, 128 + signal: stopped by a signal
after saving its state."""

from __future__ import annotations

import pickle
import sys

from ratt.sweep.cell import CellJob
from ratt.train import TrainingInterrupted


def main() -> int:
    """Read the job, run it, return the exit code (the job records its state itself)."""
    job = pickle.load(sys.stdin.buffer)
    if not isinstance(job, CellJob):
        print(f"ratt.sweep.worker: expected a CellJob on stdin, got {type(job).__name__}", file=sys.stderr)
        return 2
    job.own_process = True
    try:
        job()
    except TrainingInterrupted as exc:
        return 128 + exc.signum
    except Exception:  # recorded in the cell's status and log by the job
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
