"""One cell of a grid and the job that runs it: train (or resume), then evaluate, then measure,
in whatever process it is given (this one, a worker process, a Slurm job), recording its
state and log in its run directory (:mod:`ratt.sweep.status`)."""

from __future__ import annotations

import itertools
import logging
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ratt import config as cfg
from ratt.core.env import configure_runtime
from ratt.errors import UserError
from ratt.eval import EvalOptions, eval_done, evaluate_run
from ratt.flatness import LandscapeOptions, measure_runs
from ratt.flatness.measure import landscape_done
from ratt.models import runs_code
from ratt.runs import RunFiles
from ratt.sweep.status import DONE, FAILED, PENDING, RUNNING, STOPPED, error_line, log_path, write_status
from ratt.train import TrainingInterrupted, train

log = logging.getLogger(__name__)

STAGES = ("train", "eval", "landscape")


@dataclass(frozen=True)
class Cell:
    """One cell of the grid and where it lives."""

    dataset: str
    method: str
    seed: int
    out: Path


def plan(root: Path, datasets: list[str], methods: list[str], seeds: list[int]) -> list[Cell]:
    """Every (dataset, method, seed), with its run directory ``root/dataset/method/seed-N``;
    ``UserError`` if a list is empty (an empty grid is a mistake, not a finished sweep)."""
    for option, values in (("--datasets", datasets), ("--methods", methods), ("--seeds", seeds)):
        if not values:
            raise UserError(f"{option} is empty: the sweep would run nothing (give at least one)")
    return [
        Cell(d, m, s, Path(root) / d / m.replace("+", "_") / f"seed-{s}")
        for d, m, s in itertools.product(datasets, methods, seeds)
    ]


@dataclass
class CellJob:
    """Everything one cell needs (picklable, to travel to a worker process or a Slurm job).

    Calling it runs the stages the cell still lacks: training (resumed from its checkpoint
    when it has one but no ``summary.json``), evaluation, landscape. It records ``running``,
    then ``done``, ``failed`` (and re-raises) or ``stopped`` (on ``TrainingInterrupted``, re-raised).

    Attributes:
        cell: the cell.
        config: its full training config.
        eval_options, landscape_options: the stages after training (None: not asked).
        own_process: the job has its process to itself: log at INFO into the cell's log, no
            progress bars, torch's thread count from ``config.run.threads`` for every stage.
        where: what ``--status`` says runs the cell (``"gpu 1"``); Slurm jobs add their id.
        launcher: ``local`` or ``slurm`` (a job submitit started: its id is recorded).
    """

    cell: Cell
    config: cfg.TrainConfig
    eval_options: EvalOptions | None = None
    landscape_options: LandscapeOptions | None = None
    own_process: bool = False
    where: str = ""
    launcher: str = "local"

    @property
    def name(self) -> str:
        """``dataset/method/seed-N``."""
        return "/".join(self.cell.out.parts[-3:])

    def stages(self) -> list[str]:
        """The stages the cell still lacks, in order."""
        out = self.cell.out
        todo = [] if RunFiles(out).summary.exists() else ["train"]
        if self.eval_options is not None and (todo or not eval_done(out, self.eval_options)):
            todo.append("eval")
        if self.landscape_options is not None and (todo or not landscape_done(out, self.landscape_options)):
            todo.append("landscape")
        return todo

    def __call__(self) -> str:
        """Run the missing stages; returns ``"done"``."""
        out = self.cell.out
        out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path(out))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        if self.own_process:
            root.setLevel(logging.INFO)
            configure_runtime(self.config.run.threads)
            self._no_bars()
        info = {"where": self.where, "epochs": self.config.optim.epochs, **self._job_info()}
        start = time.time()
        try:
            for stage in self.stages():
                write_status(out, RUNNING, stage=stage, **info)
                self._run(stage)
        except TrainingInterrupted as exc:
            write_status(out, STOPPED, error=str(exc).split(";")[0], **info)
            raise
        except KeyboardInterrupt:
            write_status(out, STOPPED, error="KeyboardInterrupt", **info)
            raise
        except Exception as exc:
            write_status(out, FAILED, error=error_line(exc), **info)
            handler.stream.write(traceback.format_exc())
            raise
        finally:
            root.removeHandler(handler)
            handler.close()
        write_status(out, DONE, seconds=time.time() - start, **info)
        return DONE

    def _no_bars(self) -> None:
        """No progress bars in a log file (``run.progress`` changes no number)."""
        self.config = replace(self.config, run=replace(self.config.run, progress=False))
        if self.eval_options is not None:
            self.eval_options = replace(self.eval_options, progress=False)
        if self.landscape_options is not None:
            self.landscape_options = replace(self.landscape_options, progress=False)

    def _run(self, stage: str) -> None:
        out = self.cell.out
        if stage == "train":
            # a directory without a complete checkpoint (killed in its first save) starts again
            resume = RunFiles(out).root.exists()
            log.info("%s: %s", self.name, "resuming" if resume else "training")
            train(self.config, out, resume=resume)
        elif stage == "eval":
            log.info("%s: evaluating", self.name)
            evaluate_run(out, replace(self.eval_options, trust_code=self._trusted))
        else:
            log.info("%s: measuring the landscape", self.name)
            measure_runs([out], replace(self.landscape_options, trust_code=self._trusted))

    @property
    def _trusted(self) -> bool:
        """The sweep's own config (the user's) names a model that runs code: the cell's
        checkpoint may follow it."""
        return runs_code(self.config.model.name)

    def _job_info(self) -> dict[str, Any]:
        """The Slurm job id and node when submitit runs this job."""
        if self.launcher != "slurm":
            return {}
        import submitit  # only here when submitit launched the job

        env = submitit.JobEnvironment()
        return {"job_id": env.job_id, "where": f"job {env.job_id} on {env.hostname}"}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook on preemption or time limit: requeue this same job (it resumes
        from the cell's last checkpoint)."""
        import submitit

        log.warning("%s: preempted or timed out: requeued, to resume from its last checkpoint", self.name)
        write_status(self.cell.out, PENDING, detail="requeued (preempted or timed out)")
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)
