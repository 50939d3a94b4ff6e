"""One training run on a Slurm cluster: ``ratt train --launcher slurm --nodes N
--gpus-per-node G`` submits one job of N nodes x G tasks through submitit (``pip install
'ratt[slurm]'``). Every task exports torch.distributed's ``env://`` variables from Slurm's
(submitit's ``TorchDistributedEnvironment``: the first node's address, a port from the job
id, global and local ranks) and calls :func:`ratt.train.train`, so the run is the one
``torchrun`` would make with the same processes (DDP over the global batch, files written by
global rank 0). On preemption or at the time limit, Slurm's warning signal reaches
submitit's handler in global rank 0, which requeues the job (``--slurm-requeues`` times for
time limits); the requeued job resumes the run exactly from its last checkpoint
(``run.checkpoint_every`` for step-level checkpoints).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ratt import config as cfg
from ratt.core.slurm import SlurmOptions, make_executor
from ratt.errors import UserError
from ratt.runs import RunFiles
from ratt.train.entry import resume_run, train

log = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    """The Slurm job of a run ended without finishing it (its message is one line)."""


@dataclass
class TrainJob:
    """One run as a submitit job (picklable): a new run (``config``) or a resumed one.

    Attributes:
        out: the run directory (on a file system every node sees).
        config: the run's config; None with ``resume``: the run's own saved config.
        resume: continue the run in ``out`` (set on every requeue).
        changes: ``key=value`` changes to a resumed run's saved config.
        trust_code: follow a saved config's model spec that runs code.
    """

    out: str
    config: cfg.TrainConfig | None = None
    resume: bool = False
    changes: list[str] = field(default_factory=list)
    trust_code: bool = False

    def __call__(self) -> dict[str, Any]:
        """Join the job's process group (several tasks) and train; returns the summary."""
        export_distributed_environment()
        if self.config is None:
            return resume_run(self.out, self.changes, trust_code=self.trust_code)
        return train(self.config, self.out, resume=self.resume)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook on preemption or time limit: requeue as a resume of the same run."""
        import submitit

        log.warning("%s: preempted or timed out: requeued, to resume from its last checkpoint", self.out)
        return submitit.helpers.DelayedSubmission(replace(self, resume=True), *args, **kwargs)


def export_distributed_environment() -> None:
    """``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
    ``LOCAL_WORLD_SIZE`` of this task, from the job's (nothing for a one-task job). GPUs are
    left visible: each process takes ``cuda:LOCAL_RANK`` of what it sees, which is right
    whether or not Slurm binds one GPU to each task."""
    import submitit

    if submitit.JobEnvironment().num_tasks <= 1:
        return
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


def submit_run(job: TrainJob, options: SlurmOptions, *, poll_seconds: float | None = None) -> dict[str, Any]:
    """Submit ``job`` as one Slurm job of ``options.nodes`` nodes and wait for it.

    ``options.tasks_per_node`` defaults to one task per GPU (at least one). submitit's files
    (the sbatch script, each task's log) go to ``options.folder`` or ``OUT/slurm``. Returns
    global rank 0's summary.

    Raises:
        UserError: bad options, or a new run into a directory that already holds one.
        JobFailed: the job ended without finishing the run (one line, with the log's path).
        KeyboardInterrupt: the job keeps running (said in a log line first).
    """
    files = RunFiles(job.out)
    if not job.resume and (files.metrics.exists() or files.weights("last").exists()):
        raise UserError(
            f"{job.out} already holds a run; continue it with: ratt train --resume {job.out} --launcher slurm"
        )
    if options.tasks_per_node is None:
        options = replace(options, tasks_per_node=max(options.gpus, 1))
    options.check()
    if job.config is not None and job.config.run.threads is None and options.cpus:
        job = replace(job, config=replace(job.config, run=replace(job.config.run, threads=options.cpus)))
    folder = Path(options.folder) if options.folder else Path(job.out) / "slurm"
    executor = make_executor(options, folder, name="ratt-train")
    handle = executor.submit(job)
    tasks = options.nodes * (options.tasks_per_node or 1)
    log.info(
        "submitted job %s: %d node%s x %d task%s for %s; logs in %s", handle.job_id, options.nodes,
        "s" * (options.nodes != 1), options.tasks_per_node, "s" * (tasks != 1), job.out, folder,
    )  # fmt: skip
    poll = poll_seconds if poll_seconds is not None else (0.5 if options.cluster == "local" else 15.0)
    try:
        while not handle.done():
            time.sleep(poll)
    except KeyboardInterrupt:
        log.warning("job %s keeps running (scancel %s stops it); its run is in %s", handle.job_id,
                    handle.job_id, job.out)  # fmt: skip
        raise
    return _summary(handle)


def _summary(handle: Any) -> dict[str, Any]:
    """Global rank 0's summary, or :class:`JobFailed` naming the job, the reason and its log."""
    try:
        results = handle.results()
    except Exception as exc:  # submitit's FailedJobError carries the task's traceback
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else type(exc).__name__
        raise JobFailed(f"job {handle.job_id} failed: {reason} (log: {handle.paths.stderr})") from None
    return results[0]
