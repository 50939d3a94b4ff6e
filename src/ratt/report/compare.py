"""Comparing groups of runs: every group against a reference group, paired by seed (with a
sign test), and how the accuracy follows one setting (the sensitivity view of an ablation)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ratt.core.stats import detectable_difference, mean_std, paired_t_test
from ratt.errors import UserError
from ratt.report.collect import ROBUST, RunRecord, accuracy_columns

SENSITIVITY_COLUMNS = ("aa", "clean")  # drawn against the setting's value, when present


def sign_test(ahead: int, behind: int) -> float:
    """Two-sided exact sign test: the probability, if ahead and behind were equally likely, of a
    split at least this uneven (ties left out). 1.0 without any non-tied pair."""
    n = ahead + behind
    if n == 0:
        return 1.0
    k = min(ahead, behind)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def _comparable(a: RunRecord, b: RunRecord, column: str) -> bool:
    if (a.n, a.threat) != (b.n, b.threat):  # the same points and ball
        return False
    if column == ROBUST:  # the worst case only over the same attacks
        return set(a.accuracy) == set(b.accuracy)
    return column in a.accuracy and column in b.accuracy


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
        row["columns"] = []
        for column in accuracy_columns([r.accuracy for pair in matched for r in pair]):
            if all(_comparable(r, ref, column) for r, ref in matched):
                diffs = [r.accuracy[column] - ref.accuracy[column] for r, ref in matched]
                mean, std = mean_std(diffs)
                ahead, behind = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
                row[column] = {"diffs": diffs, "mean": mean, "std": std, "ahead": ahead, "behind": behind,
                               "p": sign_test(ahead, behind), "t_p": paired_t_test(diffs),
                               "detectable": detectable_difference(std, len(diffs))}  # fmt: skip
                row["columns"].append(column)
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _column_table(
    rows: list[dict[str, Any]], heading: Callable[[str], str], cell: Callable[[dict[str, Any]], str | None]
) -> tuple[list[str], list[list[str]]]:
    """One line per comparison of :func:`paired_differences`, one cell per accuracy column:
    ``heading(label)`` names the column, ``cell(entry)`` fills it ('–' where it gives None)."""
    from ratt.report.collect import column_label

    columns = accuracy_columns([dict.fromkeys(row["columns"]) for row in rows])
    header = ["group", "seeds", *[heading(column_label(c)) for c in columns]]
    body = []
    for row in rows:
        cells = [f"{row['group']} − {row['reference']}", str(len(row["seeds"]))]
        cells += [(cell(row[c]) if c in row else None) or "–" for c in columns]
        body.append(cells)
    return header, body


def _difference_cell(e: dict[str, Any]) -> str:
    text = f"{100 * e['mean']:+.1f}" + (f" ± {100 * e['std']:.1f}" if math.isfinite(e["std"]) else "")
    return f"{text} ({e['ahead']}↑ {e['behind']}↓, p={e['p']:.2g})"


def _detectable_cell(e: dict[str, Any]) -> str | None:
    if not math.isfinite(e["detectable"]):
        return None
    p = f"p={e['t_p']:.2g}" if math.isfinite(e["t_p"]) else "p=–"
    return f"{p}, {100 * e['detectable']:.1f}"


def paired_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of :func:`paired_differences` (points: mean ± std, ahead/behind, p)."""
    return _column_table(rows, lambda label: f"Δ {label} (points)", _difference_cell)


def detectable_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the paired t-test's p and the smallest detectable difference (points)
    per comparison of :func:`paired_differences`."""
    return _column_table(rows, lambda label: f"{label}: t-test p, detectable (points)", _detectable_cell)
