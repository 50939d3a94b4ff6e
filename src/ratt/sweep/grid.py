"""A grid of runs (datasets x methods x seeds): train each cell, then evaluate and measure it,
then tabulate and report, skipping what is done and resuming what was interrupted.

Re-running the same sweep continues where it stopped: a cell with ``summary.json`` is not
trained again, one with a checkpoint is resumed, and a cell whose ``eval.json`` or
``landscape.json`` already holds what was asked is not evaluated or measured again. A cell
that fails is recorded (``sweep_status.json``, ``sweep.log``) and the others go on; the next
run retries it.

Cells run one after another in this process (``workers=1``), in worker processes on this
machine (``workers=N``: one per GPU, or the CPU cores split between them), or as Slurm jobs
(``launcher="slurm"``); a cell's numbers are the same whichever runs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ratt import config as cfg
from ratt.core.files import json_ready, write_json, write_text
from ratt.core.table import markdown_table
from ratt.errors import UserError
from ratt.eval import EvalOptions
from ratt.flatness import LandscapeOptions
from ratt.report import Report, build_report, group_runs, load_run, results_table, summarize
from ratt.runs import RunFiles, build_config
from ratt.sweep.cell import Cell, CellJob, plan
from ratt.sweep.local import cpu_count, run_workers
from ratt.sweep.slurm import SlurmOptions, run_slurm
from ratt.sweep.status import PENDING, CellView, cell_view, owner, read_plan, write_plan, write_status
from ratt.sweep.watch import Progress, wait_for_owned
from ratt.train import TrainingInterrupted

log = logging.getLogger(__name__)

LAUNCHERS = ("local", "slurm")


@dataclass
class SweepResult:
    """The cells, the results table over the finished ones, the report if one was asked, and
    the cells that did not finish this time (failed or stopped, with their logs)."""

    cells: list[Cell]
    table: str
    report: Report | None = None
    failed: list[CellView] = field(default_factory=list)


def _configs(
    cells: list[Cell], config_path: str | None, overrides: list[str], threads: int | None = None
) -> list[cfg.TrainConfig]:
    """Every cell's config, all checked before any work starts. ``threads`` sets
    ``run.threads`` where the config leaves it unset (recorded in the run's config)."""
    out = []
    for cell in cells:
        own = [f"data.name={cell.dataset}", f"method.name={cell.method}", f"run.seed={cell.seed}"]
        config = build_config(config_path, [*overrides, *own])
        if threads is not None and config.run.threads is None:
            config.run.threads = threads  # >= 1: a core count
        out.append(config)
    return out


def _devices(workers: int, devices: list[int] | None, configs: list[cfg.TrainConfig]) -> list[int] | None:
    """The GPUs the workers share (None: cells run on the CPU), checked."""
    on_cpu = all(c.run.device == "cpu" for c in configs) or not torch.cuda.is_available()
    if on_cpu:
        if devices:
            raise UserError(
                f"--devices {','.join(map(str, devices))}: no CUDA device is visible to torch here"
            )
        return None
    pinned = sorted({c.run.device for c in configs if c.run.device not in ("auto", "cuda", "cpu")})
    if pinned:
        raise UserError(
            f"run.device={pinned[0]} pins every cell to one GPU; use run.device=auto with --devices"
        )
    count = torch.cuda.device_count()
    devices = list(range(count)) if devices is None else devices
    bad = [d for d in devices if not 0 <= d < count]
    if bad or len(set(devices)) != len(devices) or not devices:
        raise UserError(f"--devices {','.join(map(str, devices))}: this machine has GPUs 0..{count - 1}")
    if workers > len(devices):
        raise UserError(
            f"--workers {workers} but {len(devices)} GPUs: one cell per GPU (use --workers {len(devices)})"
        )
    return devices


def _threads(launcher: str, workers: int, slurm: SlurmOptions | None) -> int | None:
    """``run.threads`` for cells that leave it unset: the cores split between the workers, or
    a Slurm job's cores (None: torch's default, as a sweep in one process always had)."""
    if launcher == "slurm":
        return slurm.cpus if slurm is not None else None
    return max(1, cpu_count() // workers) if workers > 1 else None


def _write_plan(root: Path, cells: list[Cell], launcher: str, workers: int, jobs: dict) -> None:
    """``ROOT/sweep.json``: the grid's cells (what ``--status`` lists) and known Slurm jobs."""
    entries = [
        {"name": "/".join(c.out.parts[-3:]), "dataset": c.dataset, "method": c.method, "seed": c.seed}
        for c in cells
    ]
    write_plan(root, {"cells": entries, "launcher": launcher, "workers": workers, "jobs": jobs})


def _run_here(jobs: list[CellJob], progress: Progress) -> dict[str, Path]:
    """One cell after another in this process (a cell's failure is recorded, the next goes on).

    Returns the cells another process started after this sweep planned them (a second sweep
    sharing the root), name -> run directory: left to it, not marked failed, to wait for."""
    taken: dict[str, Path] = {}
    for index, job in enumerate(jobs, start=1):
        who = owner(job.cell.out)
        if who:
            log.warning("%s: %s started it meanwhile; waiting for it", job.name, who)
            taken[job.name] = job.cell.out
            continue
        log.info("[%d/%d] %s: %s", index, len(jobs), job.cell.out, ", ".join(job.stages()))
        try:
            job()
        except TrainingInterrupted:
            raise
        except Exception:  # recorded in the cell's status and log
            pass
        progress.finished(cell_view(job.cell.out, job.name))
    return taken


def run_sweep(
    root: str | Path,
    datasets: list[str],
    methods: list[str],
    seeds: list[int],
    *,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    eval_options: EvalOptions | None = None,
    landscape_options: LandscapeOptions | None = None,
    report_dir: str | Path | None = None,
    workers: int = 1,
    devices: list[int] | None = None,
    launcher: str = "local",
    slurm: SlurmOptions | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run every unfinished cell (train, then evaluate and measure if asked), then write
    ``results.md`` and ``results.json`` (mean ± std over seeds of each finished group) into
    ``root`` and the report into ``report_dir``. Everything is checked before any work.

    Args:
        workers: cells at once on this machine, each in its own process (1: one after
            another in this process). Cells whose config leaves ``run.threads`` unset get
            ``cores // workers`` threads each (recorded in their ``config.yaml``).
        devices: GPUs for the workers, one cell per GPU (None: every visible GPU). Given,
            cells run in worker processes even with ``workers=1``.
        launcher: ``local`` or ``slurm`` (through submitit, with ``slurm`` options).
        progress: an overall progress bar (when stderr is a terminal).

    Example:
        >>> result = run_sweep("runs/study", ["digits"], ["trades"], [0, 1, 2, 3], workers=2)
    """
    root = Path(root)
    slurm = _check_launcher(launcher, workers, devices, slurm)
    cells = plan(root, datasets, methods, seeds)
    configs = _configs(cells, config_path, list(overrides or []), _threads(launcher, workers, slurm))
    gpus = _devices(workers, devices, configs) if launcher == "local" else None
    if eval_options is not None:
        eval_options.check()
    if landscape_options is not None:
        landscape_options.check(1)

    jobs = [CellJob(c, conf, eval_options, landscape_options) for c, conf in zip(cells, configs, strict=True)]
    jobs = [job for job in jobs if job.stages()]
    todo, owned, previous = _claim(root, cells, jobs, launcher, workers)
    skipped = len(cells) - len(jobs)
    if skipped:
        log.info("%d of %d cells done already, skipped", skipped, len(cells))
    with Progress(len(jobs), show=progress) as bar:
        if launcher == "slurm" and todo:
            run_slurm(todo, slurm or SlurmOptions(), root, bar.finished)
        elif (workers > 1 or devices is not None) and todo:
            run_workers(todo, workers, gpus, bar.finished)
        else:
            owned.update(_run_here(todo, bar))
        wait_for_owned(owned, previous, bar.finished)
    table, report = _results(root, cells, report_dir)
    return SweepResult(cells, table, report, bar.failed)


def _claim(
    root: Path, cells: list[Cell], jobs: list[CellJob], launcher: str, workers: int
) -> tuple[list[CellJob], dict[str, Path], dict]:
    """The jobs this sweep runs (each marked pending), those another process is running
    already (name -> directory, waited for) and the previous plan's jobs; writes the plan."""
    previous = read_plan(root).get("jobs", {})
    owners = {job.name: owner(job.cell.out, previous.get(job.name)) for job in jobs}
    owned = {job.name: job.cell.out for job in jobs if owners[job.name]}
    for name in owned:
        log.warning("%s: %s is running it already; waiting for it", name, owners[name])
    todo = [job for job in jobs if job.name not in owned]
    _write_plan(root, cells, launcher, workers, {n: j for n, j in previous.items() if n in owned})
    for job in todo:
        write_status(job.cell.out, PENDING)
    return todo, owned, previous


def _check_launcher(
    launcher: str, workers: int, devices: list[int] | None, slurm: SlurmOptions | None
) -> SlurmOptions | None:
    """The launcher's options, checked (Slurm's defaults when ``launcher`` is ``slurm``)."""
    if launcher not in LAUNCHERS:
        raise UserError(f"--launcher {launcher!r}: choose from {', '.join(LAUNCHERS)}")
    if workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    if launcher == "slurm":
        if workers != 1 or devices is not None:
            raise UserError(
                "--workers and --devices are for --launcher local (Slurm: --slurm-gpus, --slurm-array)"
            )
        slurm = slurm or SlurmOptions()
        slurm.check()
    return slurm


def _results(root: Path, cells: list[Cell], report_dir: str | Path | None) -> tuple[str, Report | None]:
    """``results.md`` and ``results.json`` over the cells that started, and the report."""
    started = [c.out for c in cells if RunFiles(c.out).config.exists()]  # a failed cell may have none
    rows = summarize(group_runs([load_run(out) for out in started], "dataset,method"))
    table = markdown_table(*results_table(rows))
    write_text(root / "results.md", table + "\n")
    write_json(root / "results.json", json_ready(rows))
    report = None
    if report_dir is not None:
        report = build_report(started, report_dir, "dataset,method")
    return table, report
