"""Slurm through submitit (``pip install 'ratt[slurm]'``): the options of a submission and the
executor they make, shared by ``ratt sweep`` (one job per cell) and ``ratt train --launcher
slurm`` (one job of several nodes for one run)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratt.errors import UserError

CLUSTERS = ("slurm", "local")
INSTALL = "pip install 'ratt[slurm]'"


@dataclass
class SlurmOptions:
    """How jobs are submitted (every field has ``ratt sweep``'s default).

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
        nodes: nodes per job (``ratt train --nodes``; a sweep's cells take one each).
        tasks_per_node: processes per node (None: one; ``ratt train --launcher slurm`` starts
            one per GPU).
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
    nodes: int = 1
    tasks_per_node: int | None = None

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
                                 ("--slurm-requeues", self.requeues, 0), ("--nodes", self.nodes, 1),
                                 ("--tasks-per-node", self.tasks_per_node, 1)):  # fmt: skip
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


def make_executor(options: SlurmOptions, folder: Path, *, name: str) -> Any:
    """A submitit executor for ``options``, its jobs called ``name`` (``UserError`` if submitit
    refuses the options)."""
    submitit = submitit_module()
    try:
        executor = submitit.AutoExecutor(
            folder=folder, cluster=options.cluster, slurm_max_num_timeout=options.requeues
        )
        params: dict[str, Any] = {"timeout_min": options.time, "name": name}
        optional = {  # submitit's parameter -> the option; unset (falsy) ones are left to Slurm
            "nodes": options.nodes if options.nodes > 1 else None,
            "tasks_per_node": options.tasks_per_node,
            "gpus_per_node": options.gpus,
            "cpus_per_task": options.cpus,
            "mem_gb": options.mem_gb,
            "slurm_partition": options.partition,
            "slurm_additional_parameters": options.sbatch_options() if options.sbatch else None,
            "slurm_array_parallelism": options.parallel,
        }
        params.update({key: value for key, value in optional.items() if value})
        executor.update_parameters(**params)
    except (RuntimeError, ValueError, NameError) as exc:
        raise UserError(f"--launcher slurm: {str(exc).splitlines()[0]}") from None
    return executor
