"""Run a grid of configurations (methods x seeds x datasets) one after another.

Finished runs (``summary.json`` present) are skipped, interrupted ones (a checkpoint but no
summary) are resumed, so re-running the same sweep command continues where it stopped.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratt.config import build_config
from ratt.train.trainer import train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRun:
    """One cell of the grid and where it lives."""

    dataset: str
    method: str
    seed: int
    out: Path


def plan(root: Path, datasets: list[str], methods: list[str], seeds: list[int]) -> list[SweepRun]:
    """Every (dataset, method, seed), with its run directory ``root/dataset/method/seed-N``."""
    return [
        SweepRun(d, m, s, root / d / m.replace("+", "_") / f"seed-{s}")
        for d, m, s in itertools.product(datasets, methods, seeds)
    ]


def run_sweep(
    root: str | Path,
    datasets: list[str],
    methods: list[str],
    seeds: list[int],
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> list[SweepRun]:
    """Train every cell of the grid that is not finished yet; returns the plan."""
    runs = plan(Path(root), datasets, methods, seeds)
    configs = []
    for run in runs:  # validate every cell before any work starts
        cell = [f"data.name={run.dataset}", f"method.name={run.method}", f"run.seed={run.seed}"]
        configs.append(build_config(config_path, [*(overrides or []), *cell]))
    for index, (run, config) in enumerate(zip(runs, configs, strict=True), start=1):
        if (run.out / "summary.json").exists():
            log.info("[%d/%d] %s: done, skipped", index, len(runs), run.out)
            continue
        resume = (run.out / "checkpoints" / "last.safetensors").exists()
        log.info("[%d/%d] %s: %s", index, len(runs), run.out, "resuming" if resume else "training")
        train(config, run.out, resume=resume)
    return runs


def collect(runs: list[SweepRun]) -> list[dict[str, Any]]:
    """Per (dataset, method): mean and std over seeds of each test accuracy and train time."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        path = run.out / "summary.json"
        if path.exists():
            groups.setdefault((run.dataset, run.method), []).append(json.loads(path.read_text()))
    rows = []
    for (dataset, method), summaries in groups.items():
        row: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": len(summaries)}
        names = summaries[0]["test"]["accuracy"].keys()
        values = {n: [s["test"]["accuracy"][n] for s in summaries] for n in names}
        values["seconds"] = [s["train_seconds"] for s in summaries]
        for name, vals in values.items():
            row[name] = statistics.fmean(vals)
            row[f"{name}_std"] = statistics.stdev(vals) if len(vals) > 1 else math.nan
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: dataset, method, seeds, each accuracy (%) as mean ± std, seconds."""
    if not rows:
        return "(no finished runs)"
    metrics = [k for k in rows[0] if k not in ("dataset", "method", "seeds") and not k.endswith("_std")]
    header = ["dataset", "method", "seeds", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["dataset"], row["method"], str(row["seeds"])]
        for name in metrics:
            scale, fmt = (1, "{:.0f}") if name == "seconds" else (100, "{:.1f}")
            mean, std = row[name] * scale, row[f"{name}_std"] * scale
            cells.append(fmt.format(mean) + ("" if math.isnan(std) else " ± " + fmt.format(std)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
