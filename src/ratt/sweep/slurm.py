"""Cells as Slurm jobs through submitit (``pip install ratt[slurm]``): one job per cell or one
job array. A job that is preempted or reaches its time limit gets submitit's signal, is
requeued, and its cell resumes from its last checkpoint (ratt's exact resume); the sweep's
process waits for every job, then tabulates and reports.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ratt.core.slurm import SlurmOptions, make_executor
from ratt.sweep.cell import CellJob
from ratt.sweep.status import (
    FAILED,
    FINISHED,
    CellView,
    cell_view,
    read_plan,
    read_status,
    write_plan,
    write_status,
)
from ratt.sweep.watch import Signals, SweepInterrupted

log = logging.getLogger(__name__)


def _submit(executor: Any, jobs: list[CellJob], array: bool) -> list[Any]:
    if array and len(jobs) > 1:
        with executor.batch():
            handles = [executor.submit(job) for job in jobs]
        return handles
    return [executor.submit(job) for job in jobs]


def _outcome(job: CellJob, handle: Any) -> CellView:
    """The cell's view once its job ended; a job that ended without recording it (killed,
    out of requeues, node failure) is recorded failed with submitit's reason and log."""
    out = job.cell.out
    if read_status(out).get("state") not in FINISHED:
        try:
            error = handle.exception()
            reason = str(error).strip().splitlines()[-1] if error is not None else handle.state
        except Exception as exc:  # the job left no result behind
            reason = f"{handle.state}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        write_status(out, FAILED, error=f"job {handle.job_id} ended: {reason}", job_id=handle.job_id)
        view = cell_view(out, job.name)
        view.log = Path(handle.paths.stderr)
        return view
    return cell_view(out, job.name)


def run_slurm(
    jobs: list[CellJob], options: SlurmOptions, root: Path, finished: Callable[[CellView], None]
) -> None:
    """Submit ``jobs``, record their ids in ``ROOT/sweep.json`` and wait for them, reporting each
    cell through ``finished``. On SIGINT/SIGTERM the jobs keep running: ``SweepInterrupted``."""
    folder = Path(options.folder) if options.folder else Path(root) / "slurm"
    executor = make_executor(options, folder, name="ratt-sweep")
    for job in jobs:
        job.launcher = "slurm"
        job.own_process = True
    handles = _submit(executor, jobs, options.array)
    plan = read_plan(root)
    entries = plan.setdefault("jobs", {})
    for job, handle in zip(jobs, handles, strict=True):
        entries[job.name] = {
            "job_id": str(handle.job_id),
            "cluster": options.cluster,
            "host": socket.gethostname(),
        }
    write_plan(root, plan)
    log.info("submitted %d job%s (%s); submitit's files: %s", len(jobs), "s" * (len(jobs) != 1),
             ", ".join(str(h.job_id) for h in handles), folder)  # fmt: skip
    poll_s = 0.5 if options.cluster == "local" else 15.0
    waiting = dict(zip(handles, jobs, strict=True))
    with Signals() as signals:
        while waiting and not signals.received:
            for handle in [h for h in waiting if h.done()]:
                finished(_outcome(waiting.pop(handle), handle))
            if waiting:
                time.sleep(poll_s)
    if waiting:
        note = f"; its {len(waiting)} unfinished jobs keep running: `ratt sweep --status {root}` follows them"
        raise SweepInterrupted(signals.received[0], note)
