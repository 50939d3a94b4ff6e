"""Comparing groups of runs: every group against a reference group, paired by seed (with a
sign test), and how the accuracy follows one setting (the sensitivity view of an ablation)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ratt.core.files import save_figure
from ratt.core.stats import mean_std
from ratt.errors import UserError
from ratt.report.collect import RunRecord, paired_columns
from ratt.report.render import DETECTABLE_HEADING, column_table, detectable_cell, difference_cell

SENSITIVITY_COLUMNS = ("aa", "clean")  # drawn against the setting's value, when present


def paired_differences(groups: dict[str, list[RunRecord]], reference: str) -> list[dict[str, Any]]:
    """Every group minus the ``reference`` group, run by run paired by (dataset, seed).

    Returns:
        one row per other group with paired seeds: ``{"group", "reference", "seeds",
        "columns", column: {"diffs", "mean", "std", "ahead", "behind", "p", "t_p",
        "detectable"}}``, differences as fractions (0.01 = one point), ``p`` the sign test's,
        ``t_p`` the paired t-test's, ``detectable`` the smallest mean difference a paired t-test
        at 5 % finds with 80 % power given this spread (see
        :func:`ratt.core.stats.detectable_difference`); a column only where every pair was
        evaluated the same way.

    Raises:
        UserError: a group holds two runs of one dataset and seed (which to pair is ambiguous).
    """
    for name, records in groups.items():
        seen: dict[tuple[str, int | None], RunRecord] = {}
        for record in records:
            cell = (record.dataset, record.seed)
            if cell in seen:
                raise UserError(
                    f"--paired-with: group {name!r} holds two runs of {cell[0]} seed {cell[1]} "
                    f"({seen[cell].path}, {record.path}), so a pair by seed is ambiguous; group by "
                    "more (e.g. --group-by sweep,method) so each group has one run per dataset and seed"
                )
            seen[cell] = record
    base = {(r.dataset, r.seed): r for r in groups.get(reference, [])}
    rows = []
    for name, records in groups.items():
        if name == reference:
            continue
        matched = sorted(
            ((r, base[(r.dataset, r.seed)]) for r in records if (r.dataset, r.seed) in base),
            key=lambda pair: (pair[0].dataset, pair[0].seed or 0),
        )
        if not matched:
            continue
        row: dict[str, Any] = {"group": name, "reference": reference, "seeds": [r.seed for r, _ in matched]}
        row.update(paired_columns(matched))
        rows.append(row)
    return rows


def _order(value: Any) -> tuple:
    """Numbers first, in numeric order, then everything else by its text."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (not numeric, value if numeric else str(value))


def sensitivity(groups: dict[str, list[RunRecord]], key: str) -> dict[str, Any]:
    """Accuracy against the value of the config ``key`` over all runs of ``groups``.

    Returns:
        ``{"key", "values": [v], column: {"mean": [..], "low": [..], "high": [..]}}`` per
        column of :data:`SENSITIVITY_COLUMNS`, values sorted (numbers numerically).
    """
    by_value: dict[Any, list[RunRecord]] = {}
    for records in groups.values():
        for record in records:
            by_value.setdefault(record.setting(key), []).append(record)
    values = sorted(
        by_value,
        key=lambda v: (not isinstance(v, (int, float)), v if isinstance(v, (int, float)) else str(v)),
    )
    out: dict[str, Any] = {"key": key, "values": values}
    for column in SENSITIVITY_COLUMNS:
        runs = [[r.accuracy.get(column, math.nan) for r in by_value[v]] for v in values]
        if all(all(math.isnan(x) for x in row) for row in runs):
            continue
        out[column] = {
            "mean": [mean_std(row)[0] for row in runs],
            "low": [min((x for x in row if not math.isnan(x)), default=math.nan) for row in runs],
            "high": [max((x for x in row if not math.isnan(x)), default=math.nan) for row in runs],
        }
    return out


def plot_sensitivity(data: dict[str, Any], path: Path, title: str = "") -> Path | None:
    """Accuracy (%) against the setting's value: mean line, min-max band over runs."""
    columns = [c for c in SENSITIVITY_COLUMNS if c in data]
    if not columns or len(data["values"]) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data["values"])
    x = data["values"] if numeric else list(range(len(data["values"])))
    fig, ax = plt.subplots(figsize=(6, 4))
    for column in columns:
        series = data[column]
        (line,) = ax.plot(x, [100 * v for v in series["mean"]], marker="o", label=column)
        ax.fill_between(x, [100 * v for v in series["low"]], [100 * v for v in series["high"]],
                        color=line.get_color(), alpha=0.15, lw=0)  # fmt: skip
    if not numeric:
        ax.set_xticks(x, [str(v) for v in data["values"]])
    positive = [v for v in x if v > 0] if numeric else []
    if positive and min(x) >= 0 and max(positive) >= 100 * min(positive):  # e.g. sigma_w 0, 1e-4 .. 1e-2
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel(data["key"])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or f"accuracy against {data['key']} (band: min-max over runs)")
    ax.legend(frameon=False)
    fig.tight_layout()
    save_figure(fig, path, 120)
    plt.close(fig)
    return path


def _comparison(row: dict[str, Any]) -> list[str]:
    return [f"{row['group']} − {row['reference']}", str(len(row["seeds"]))]


def paired_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of :func:`paired_differences` (points: mean ± std, ahead/behind, p)."""
    return column_table(rows, ["group", "seeds"], _comparison, difference_cell)


def detectable_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the paired t-test's p and the smallest detectable difference (points)
    per comparison of :func:`paired_differences`."""
    return column_table(rows, ["group", "seeds"], _comparison, detectable_cell, DETECTABLE_HEADING)
