"""Cells as Slurm jobs through submitit (``pip install ratt[slurm]``): one job per cell or one
job array. A job that is preempted or reaches its time limit gets submitit's signal, is
requeued, and its cell resumes from its last checkpoint (ratt's exact resume); the sweep's
process waits for every job, then tabulates and reports.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratt.errors import UserError
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

CLUSTERS = ("slurm", "local")
INSTALL = "pip install 'ratt[slurm]'"


@dataclass
class SlurmOptions:
    """How cells are submitted (every field has ``ratt sweep``'s default).

    Attributes:
        partition: ``--partition`` (None: the cluster's default).
        time: time limit of each job, minutes.
        gpus: GPUs per job.
        cpus: CPU cores per job (None: Slurm's default); also ``run.threads`` of cells that
            do not set it.
        mem_gb: memory per job, GB (None: Slurm's default).
        array: one job array for all cells instead of one job per cell.
        parallel: at most this many tasks of the array at once (None: all).
        sbatch: more sbatch options, ``KEY=VALUE`` (``--KEY=VALUE``) or ``KEY`` (a flag),
            e.g. ``["account=myproj", "qos=normal"]``.
        requeues: how many times a job that reached its time limit is requeued (preemptions
            are always requeued).
        cluster: ``slurm``, or ``local``: submitit's local executor, the same code path with
            jobs as processes on this machine (to try a sweep's setup without a cluster).
        folder: submitit's folder (job scripts, pickles, its logs); None: ``ROOT/slurm``.
    """

    partition: str | None = None
    time: int = 240
    gpus: int = 0
    cpus: int | None = None
    mem_gb: float | None = None
    array: bool = False
    parallel: int | None = None
    sbatch: list[str] = field(default_factory=list)
    requeues: int = 3
    cluster: str = "slurm"
    folder: str | None = None

    def sbatch_options(self) -> dict[str, Any]:
        """``sbatch`` as a dict (``KEY`` alone: a flag, True)."""
        out: dict[str, Any] = {}
        for item in self.sbatch:
            key, sep, value = item.partition("=")
            key = key.strip().lstrip("-")
            if not key:
                raise UserError(
                    f"--slurm-opt {item!r}: write KEY=VALUE (an sbatch option), e.g. account=proj"
                )
            out[key] = value if sep else True
        return out

    def check(self) -> None:
        """Validate every option (``UserError`` on the first bad one); needs submitit."""
        if self.cluster not in CLUSTERS:
            raise UserError(f"--slurm-cluster {self.cluster!r}: choose from {', '.join(CLUSTERS)}")
        for name, value, low in (("--slurm-time", self.time, 1), ("--slurm-gpus", self.gpus, 0),
                                 ("--slurm-cpus", self.cpus, 1), ("--slurm-parallel", self.parallel, 1),
                                 ("--slurm-requeues", self.requeues, 0)):  # fmt: skip
            if value is not None and value < low:
                raise UserError(f"{name} {value}: must be at least {low}")
        if self.parallel is not None and not self.array:
            raise UserError("--slurm-parallel limits a job array: add --slurm-array")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise UserError(f"--slurm-mem {self.mem_gb}: must be positive (GB)")
        self.sbatch_options()
        submitit_module()
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise UserError(
                "--launcher slurm: no `sbatch` on this machine; run the sweep on the cluster's login "
                "node (or --slurm-cluster local to try it here)"
            )


def submitit_module() -> Any:
    """``submitit``, or a ``UserError`` saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise UserError(f"--launcher slurm needs submitit: {INSTALL}") from None
    return submitit


def make_executor(options: SlurmOptions, folder: Path) -> Any:
    """A submitit executor for ``options`` (``UserError`` if submitit refuses them)."""
    submitit = submitit_module()
    try:
        executor = submitit.AutoExecutor(
            folder=folder, cluster=options.cluster, slurm_max_num_timeout=options.requeues
        )
        params: dict[str, Any] = {"timeout_min": options.time, "name": "ratt-sweep"}
        if options.gpus:
            params["gpus_per_node"] = options.gpus
        if options.cpus:
            params["cpus_per_task"] = options.cpus
        if options.mem_gb:
            params["mem_gb"] = options.mem_gb
        if options.partition:
            params["slurm_partition"] = options.partition
        if options.sbatch:
            params["slurm_additional_parameters"] = options.sbatch_options()
        if options.parallel:
            params["slurm_array_parallelism"] = options.parallel
        executor.update_parameters(**params)
    except (RuntimeError, ValueError, NameError) as exc:
        raise UserError(f"--launcher slurm: {str(exc).splitlines()[0]}") from None
    return executor


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
    executor = make_executor(options, folder)
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
