"""Training cost beside robust accuracy: ``ratt report``'s "Training cost" table (forward units
per step, steps, device seconds, collapses) and its figure of robust accuracy against cost,
one point per group (mean, bars: sample std over runs)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ratt.config import RunConfig
from ratt.core.files import read_regular_text, save_figure
from ratt.core.stats import mean_std
from ratt.eval.overfitting import collapse_epoch, history_of
from ratt.report.collect import ROBUST, RunRecord, column_label

COST_NOTE = (
    "Training cost per run from its summary.json (`cost`): forward units per optimizer step from "
    "the pass-count model (ratt.methods.cost; one forward of the batch = 1), the steps taken, their "
    "product times the batch size (image forward units), and the device seconds of the training "
    "steps (wall time x processes; validation and test excluded); mean ± sample std over runs. "
    "'robust' is AutoAttack where every run of the row has it, else the worst case over the "
    "row's attacks. 'collapsed': runs in which the catastrophic-overfitting guard (run.co_drop; "
    "ratt.eval.overfitting, as it is now) finds a collapse in the run's validation FGSM and PGD "
    "accuracies (metrics.jsonl; else the epoch summary.json recorded), and the epochs. Runs "
    "written before ratt recorded cost show '-'."
)


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The run's summary.json (empty when missing or unreadable)."""
    text = read_regular_text(record.path / "summary.json")
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def collapse_of(record: RunRecord, summary: dict[str, Any]) -> int | None:
    """The epoch the guard flags in the run's validation history (its own ``run.co_drop``), so
    runs trained under an older guard are read by today's; without FGSM accuracies in
    metrics.jsonl, the epoch ``summary.json`` recorded."""
    history = history_of(record.metrics)
    if not history:
        return summary.get("catastrophic_overfitting")
    drop = (record.config.get("run") or {}).get("co_drop", RunConfig.co_drop)
    found = collapse_epoch(history, float(drop))
    return None if found is None else found.epoch


def robust_column(records: list[RunRecord]) -> str:
    """``aa`` when every run has AutoAttack accuracy, else the worst case."""
    return "aa" if records and all("aa" in r.accuracy for r in records) else ROBUST


def _number(cost: dict[str, Any], key: str) -> float:
    value = cost.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def cost_rows(groups: dict[str, list[RunRecord]]) -> list[dict[str, Any]]:
    """One row per group: ``units`` (forward units per step: mean, std), ``steps``,
    ``image_units``, ``device_seconds``, ``robust`` (mean, std of :func:`robust_column`), its
    ``robust_column`` and ``collapsed`` (flagged epochs, None for runs that did not flag)."""
    rows = []
    for name, records in groups.items():
        summaries = [run_summary(r) for r in records]
        costs = [s.get("cost") if isinstance(s.get("cost"), dict) else {} for s in summaries]
        column = robust_column(records)
        rows.append({
            "group": name,
            "runs": len(records),
            "units": mean_std([_number(c, "forward_units_per_step") for c in costs]),
            "steps": mean_std([_number(c, "steps") for c in costs]),
            "image_units": mean_std([_number(c, "image_forward_units") for c in costs]),
            "device_seconds": mean_std([_number(c, "device_seconds") for c in costs]),
            "robust_column": column,
            "robust": mean_std([r.accuracy.get(column, math.nan) for r in records]),
            "collapsed": [collapse_of(r, s) for r, s in zip(records, summaries, strict=True)],
        })  # fmt: skip
    return rows


def _cell(pair: tuple[float, float], scale: float = 1.0, spec: str = ".0f") -> str:
    mean, std = pair
    if math.isnan(mean):
        return "-"
    text = f"{mean * scale:{spec}}"
    return text if math.isnan(std) or std == 0 else f"{text} ± {std * scale:{spec}}"


def cost_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of :func:`cost_rows`."""
    header = ["group", "runs", "F/step", "steps", "image F", "device s", "robust %", "collapsed"]
    cells = []
    for row in rows:
        flagged = [e for e in row["collapsed"] if e is not None]
        collapsed = f"{len(flagged)}/{row['runs']}" + (
            f" (epochs {', '.join(map(str, flagged))})" if flagged else ""
        )
        robust = f"{_cell(row['robust'], 100, '.2f')} ({column_label(row['robust_column'])})"
        cells.append([
            row["group"], str(row["runs"]), _cell(row["units"]), _cell(row["steps"]),
            _cell(row["image_units"], 1, ".3g"), _cell(row["device_seconds"], 1, ".1f"), robust, collapsed,
        ])  # fmt: skip
    return header, cells


def plot_cost(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Robust accuracy (%) against training cost, image forward units (left) and device
    seconds (right); one point per group with its std as bars. None when no row has a cost."""
    rows = [r for r in rows if not math.isnan(r["robust"][0])]
    if not any(not math.isnan(r["image_units"][0]) for r in rows):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, label in ((axes[0], "image_units", "training cost (image forward units)"),
                           (axes[1], "device_seconds", "training cost (device seconds)")):  # fmt: skip
        shown = [row for row in rows if not math.isnan(row[key][0])]
        sides = label_sides([row[key][0] for row in shown])
        for row, side in zip(shown, sides, strict=True):
            (x, x_std), (y, y_std) = row[key], row["robust"]
            ax.errorbar(x, 100 * y, xerr=_bar(x_std), yerr=_bar(100 * y_std), fmt="o", capsize=3)
            offset, align = ((4, 4), "left") if side == "right" else ((-4, 4), "right")
            ax.annotate(
                row["group"], (x, 100 * y), textcoords="offset points", xytext=offset, fontsize=8, ha=align
            )
        ax.set_xlabel(label)
        ax.set_xscale("log")
        ax.margins(x=0.15)  # room for the labels set to the left of the leftmost points
    axes[0].set_ylabel("robust test accuracy (%)")
    fig.suptitle("robust accuracy against training cost (bars: std over runs)")
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)
    return path


def label_sides(xs: list[float]) -> list[str]:
    """``right`` or ``left`` for each point's label: points at the same cost (equal x, as the
    single-step methods' 5 units) alternate sides, in order, so their labels do not overlap."""
    seen: dict[float, int] = {}
    sides = []
    for x in xs:
        sides.append("right" if seen.get(x, 0) % 2 == 0 else "left")
        seen[x] = seen.get(x, 0) + 1
    return sides


def _bar(std: float) -> float | None:
    return None if math.isnan(std) else std
