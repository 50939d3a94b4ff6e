"""A grid of runs (datasets x methods x seeds): train each cell, then evaluate, measure and
report it, skipping what is done and resuming what was interrupted.

Re-running the same sweep continues where it stopped: a cell with ``summary.json`` is not
trained again, one with a checkpoint is resumed, and a cell whose ``eval.json`` or
``landscape.json`` already holds what was asked is not evaluated or measured again.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

from ratt import config as cfg
from ratt.core.files import json_ready, write_json, write_text
from ratt.core.table import markdown_table
from ratt.eval import EvalOptions, eval_done, evaluate_run
from ratt.flatness import LandscapeOptions, measure_runs
from ratt.flatness.measure import landscape_done
from ratt.report import Report, build_report, group_runs, load_run, results_table, summarize
from ratt.runs import RunFiles, build_config
from ratt.train import train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """One cell of the grid and where it lives."""

    dataset: str
    method: str
    seed: int
    out: Path


@dataclass
class SweepResult:
    """The cells, the results table over the finished ones, and the report if one was asked."""

    cells: list[Cell]
    table: str
    report: Report | None = None


def plan(root: Path, datasets: list[str], methods: list[str], seeds: list[int]) -> list[Cell]:
    """Every (dataset, method, seed), with its run directory ``root/dataset/method/seed-N``."""
    return [
        Cell(d, m, s, Path(root) / d / m.replace("+", "_") / f"seed-{s}")
        for d, m, s in itertools.product(datasets, methods, seeds)
    ]


def _configs(cells: list[Cell], config_path: str | None, overrides: list[str]) -> list[cfg.TrainConfig]:
    """Every cell's config, all checked before any work starts."""
    out = []
    for cell in cells:
        own = [f"data.name={cell.dataset}", f"method.name={cell.method}", f"run.seed={cell.seed}"]
        out.append(build_config(config_path, [*overrides, *own]))
    return out


def run_sweep(
    root: str | Path,
    datasets: list[str],
    methods: list[str],
    seeds: list[int],
    config_path: str | None = None,
    overrides: list[str] | None = None,
    eval_options: EvalOptions | None = None,
    landscape_options: LandscapeOptions | None = None,
    report_dir: str | Path | None = None,
) -> SweepResult:
    """Train every unfinished cell, then (optionally) evaluate and measure each, and report.

    Writes ``results.md`` and ``results.json`` (mean ± std over seeds of each finished
    group) into ``root``. Every cell's config and every option is checked before any work.
    """
    cells = plan(Path(root), datasets, methods, seeds)
    configs = _configs(cells, config_path, list(overrides or []))
    if eval_options is not None:
        eval_options.check()
    if landscape_options is not None:
        landscape_options.check(1)
    total = len(cells)
    for index, (cell, config) in enumerate(zip(cells, configs, strict=True), start=1):
        files = RunFiles(cell.out)
        if files.summary.exists():
            log.info("[%d/%d] %s: done, skipped", index, total, cell.out)
            continue
        resume = files.weights("last").exists()
        log.info("[%d/%d] %s: %s", index, total, cell.out, "resuming" if resume else "training")
        train(config, cell.out, resume=resume)
    rows = summarize(group_runs([load_run(cell.out) for cell in cells], "dataset,method"))
    table = markdown_table(*results_table(rows))
    write_text(Path(root) / "results.md", table + "\n")
    write_json(Path(root) / "results.json", json_ready(rows))
    stages = [("eval", eval_options, eval_done), ("landscape", landscape_options, landscape_done)]
    for stage, options, done in stages:
        if options is None:
            continue
        for index, cell in enumerate(cells, start=1):
            if done(cell.out, options):
                log.info("[%d/%d] %s %s: done, skipped", index, total, stage, cell.out)
                continue
            log.info("[%d/%d] %s %s", index, total, stage, cell.out)
            if stage == "eval":
                evaluate_run(cell.out, options)
            else:
                measure_runs([cell.out], options)
    report = None
    if report_dir is not None:
        report = build_report([c.out for c in cells], report_dir, "dataset,method")
    return SweepResult(cells, table, report)
