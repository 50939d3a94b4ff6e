"""Render a report: Markdown (figures as files beside it) and one self-contained HTML page."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ratt.core.files import json_ready, save_figure, write_bytes, write_text
from ratt.report.collect import RunRecord, accuracy_columns, column_label, rat_effects
from ratt.report.page import EFFECT_NOTE, RESULTS_NOTE, Page, Table, html_page, markdown_page


def _fmt(value: tuple[float, float], scale: float = 100.0, digits: int = 1) -> str:
    mean, std = value
    if not math.isfinite(mean):
        return "–"
    text = f"{mean * scale:.{digits}f}"
    return text if not math.isfinite(std) else f"{text} ± {std * scale:.{digits}f}"


def results_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table (accuracies in %, mean ± std over runs)."""
    columns = accuracy_columns([dict.fromkeys(row["columns"]) for row in rows])
    header = ["group", "runs", "test points", *[f"{column_label(c)} (%)" for c in columns], "train (s)"]
    body = [
        [str(row["group"]), str(row["runs"]), "/".join(map(str, row.get("n", []))) or "?",
         *[_fmt(row[c]) if c in row else "–" for c in columns], _fmt(row["train_seconds"], 1.0, 0)]
        for row in rows
    ]  # fmt: skip
    return header, body


DIFFERENCE_HEADING = "Δ {} (points)"
DETECTABLE_HEADING = "{}: t-test p, detectable (points)"
DETECTABLE_NOTE = (
    "How much each comparison can tell: the paired t-test's two-sided p for the differences above, "
    "and the smallest true mean difference (points) a paired t-test at 5 % would detect with 80 % "
    "power given their spread, (t(0.975, n-1) + t(0.8, n-1)) · std / √n. A difference smaller than "
    "that can be real but these seeds cannot show it."
)


def column_table(
    rows: list[dict[str, Any]],
    lead_header: list[str],
    lead: Callable[[dict[str, Any]], list[str]],
    cell: Callable[[dict[str, Any]], str | None],
    heading: str = DIFFERENCE_HEADING,
) -> tuple[list[str], list[list[str]]]:
    """One line per paired comparison (rows of :func:`ratt.report.compare.paired_differences` or
    :func:`ratt.report.collect.rat_effects`), one cell per accuracy column: ``lead(row)`` fills
    the ``lead_header`` columns, ``heading.format(label)`` names an accuracy column and
    ``cell(entry)`` fills it ('–' where the row lacks the column or ``cell`` gives None)."""
    columns = accuracy_columns([dict.fromkeys(row["columns"]) for row in rows])
    header = [*lead_header, *[heading.format(column_label(c)) for c in columns]]
    body = [[*lead(row), *[(cell(row[c]) if c in row else None) or "–" for c in columns]] for row in rows]
    return header, body


def _mean_std_points(e: dict[str, Any]) -> str:
    return f"{100 * e['mean']:+.1f}" + (f" ± {100 * e['std']:.1f}" if math.isfinite(e["std"]) else "")


def difference_cell(e: dict[str, Any]) -> str:
    """A paired difference in points: mean ± std, seeds ahead/behind and the sign test's p."""
    return f"{_mean_std_points(e)} ({e['ahead']}↑ {e['behind']}↓, p={e['p']:.2g})"


def detectable_cell(e: dict[str, Any]) -> str | None:
    """The paired t-test's p and the smallest detectable difference (points); None if undefined."""
    if not math.isfinite(e["detectable"]):
        return None
    p = f"p={e['t_p']:.2g}" if math.isfinite(e["t_p"]) else "p=–"
    return f"{p}, {100 * e['detectable']:.1f}"


def _effect_pair(row: dict[str, Any]) -> list[str]:
    setting = f" [{row['setting']}]" if row.get("setting") else ""
    return [row["dataset"], f"{row['method']} − {row['base']}{setting}", str(len(row["seeds"]))]


def effects_table(effects: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of RAT minus its base, paired by seed (points: mean ± std, seeds ahead)."""
    return column_table(
        effects,
        ["dataset", "RAT method − base", "seeds"],
        _effect_pair,
        lambda e: f"{_mean_std_points(e)} (ahead {e['ahead']}, behind {e['behind']})",
    )


def effects_detectable_table(effects: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the paired t-test's p and the smallest detectable difference (points)
    of RAT minus its base."""
    return column_table(
        effects, ["dataset", "RAT method − base", "seeds"], _effect_pair, detectable_cell, DETECTABLE_HEADING
    )


def flatness_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the flatness table: one row per measure of
    ``landscape.json["summary"]``, one column per group that has them (mean ± std)."""
    groups = [row for row in rows if row["flatness"]]
    keys = sorted({k for row in groups for k in row["flatness"]})
    header = ["measure", *[str(row["group"]) for row in groups]]
    body = [
        [key, *[_fmt(row["flatness"].get(key, (math.nan, math.nan)), 1.0, 3) for row in groups]]
        for key in keys
    ]
    return header, body


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _subplots(plt, *args, **kwargs):
    """``plt.subplots`` whose axes cycle the 10 colours, then the 10 colours dashed, then dotted
    (so a report of 21 groups does not draw the 11th like the 1st; up to 10 groups look as before)."""
    from matplotlib import cycler

    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    cycle = cycler(linestyle=["-", "--", ":"]) * cycler(color=colours)
    with plt.rc_context({"axes.prop_cycle": cycle}):
        return plt.subplots(*args, **kwargs)


def _band(ax, x, data, label: str) -> None:
    """Mean over rows of ``data`` (runs x points) as a line, the min-max over runs as a band
    (a std band would hide a diverged run and leave [0, 100] %)."""
    import warnings

    import numpy as np

    with warnings.catch_warnings():  # a point no run has (e.g. an epoch past a short run) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, low, high = np.nanmean(data, axis=0), np.nanmin(data, axis=0), np.nanmax(data, axis=0)
    (line,) = ax.plot(x, mean, marker="o" if len(x) < 12 else None, ms=3, label=label)
    if len(data) > 1:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.12, lw=0)


def _legend_below(fig, ax) -> None:
    """One legend for every panel, under the panels (so it hides no curve), then lay out."""
    handles, labels = ax.get_legend_handles_labels()
    rows = -(-len(labels) // 4)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.035 * rows + 0.02, 1, 0.95))


def plot_curves(groups: dict[str, list[RunRecord]], path: Path, title: str = "") -> Path | None:
    """Validation clean/robust accuracy and training loss per epoch: mean and range over runs."""
    import numpy as np

    panels = [("val_clean_acc", "validation clean accuracy (%)", 100), ("val_robust_acc",
              "validation PGD accuracy (%)", 100), ("train_loss", "training loss", 1)]  # fmt: skip
    if not any(r.metrics for records in groups.values() for r in records):
        return None
    plt = _pyplot()
    fig, axes = _subplots(plt, 1, 3, figsize=(15, 4.4))
    for name, records in groups.items():
        curves_of = [r.metrics for r in records if r.metrics]
        if not curves_of:
            continue
        length = min(len(m) for m in curves_of)
        for ax, (key, label, scale) in zip(axes, panels, strict=True):
            data = np.array([[row.get(key, np.nan) for row in m[:length]] for m in curves_of], dtype=float)
            _band(ax, np.arange(1, length + 1), data * scale, f"{name} (n={len(curves_of)})")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    _legend_below(fig, axes[0])
    fig.suptitle(f"Training curves{f' — {title}' if title else ''} (line: mean over runs, band: min to max)")
    save_figure(fig, path, 110)
    plt.close(fig)
    return path


def plot_noise_groups(groups: dict[str, list[RunRecord]], path: Path, title: str = "") -> Path | None:
    """Weight-noise curves of each group, mean and range over its runs: loss increase over the
    noise-free loss and accuracy, for the clean and the adversarial loss (``landscape.json``)."""
    import numpy as np

    names = [n for n in ("clean", "adv") if any(n in r.noise for rs in groups.values() for r in rs)]
    if not names:
        return None
    plt = _pyplot()
    fig, axes = _subplots(plt, len(names), 2, figsize=(13, 4.2 * len(names)), squeeze=False)
    for group, records in groups.items():
        for row, name in enumerate(names):
            curves = [r.noise[name] for r in records if name in r.noise]
            if not curves or any(c["sigmas"] != curves[0]["sigmas"] for c in curves):
                continue
            sigmas = np.array(curves[0]["sigmas"])
            zero = curves[0]["sigmas"].index(0.0) if 0.0 in curves[0]["sigmas"] else None
            loss = np.array([c["loss_mean"] for c in curves])
            rise = loss - (loss[:, [zero]] if zero is not None else 0.0)
            acc = 100 * np.array([c["acc_mean"] for c in curves])
            _band(axes[row, 0], sigmas, rise, f"{group} (n={len(curves)})")
            _band(axes[row, 1], sigmas, acc, f"{group} (n={len(curves)})")
    for row, name in enumerate(names):
        kind = "clean" if name == "clean" else "adversarial (PGD)"
        axes[row, 0].set_ylabel(f"{kind} loss increase L(w+u) − L(w)")
        axes[row, 1].set_ylabel(f"{kind} accuracy (%)")
        for ax in axes[row]:
            ax.set_xlabel("σ: weight-noise std relative to each tensor's RMS")
            ax.grid(alpha=0.3)
    _legend_below(fig, axes[0, 0])
    fig.suptitle(
        f"Weight noise{f' — {title}' if title else ''}: each run's mean over noise draws; "
        "line: mean over runs, band: min to max"
    )
    save_figure(fig, path, 110)
    plt.close(fig)
    return path


def _by_dataset(groups: dict[str, list[RunRecord]]) -> dict[str, dict[str, list[RunRecord]]]:
    """Groups split by the dataset of their runs (curves of different datasets are not comparable)."""
    out: dict[str, dict[str, list[RunRecord]]] = {}
    for name, records in groups.items():
        for record in records:
            label = name.removeprefix(f"{record.dataset} / ")  # the figure's title names the dataset
            out.setdefault(record.dataset, {}).setdefault(label, []).append(record)
    return out


def report_json(groups: dict[str, list[RunRecord]], rows: list[dict], effects: list[dict]) -> dict:
    """Every number of the report (mean, std) and the per-run values behind each mean."""
    runs = [
        {"path": str(r.path), "group": name, "dataset": r.dataset, "method": r.method, "seed": r.seed,
         "n": r.n, "accuracy": r.accuracy, "source": r.source, "weights": r.weights,
         "threat": r.threat, "train_seconds": r.train_seconds, "flatness": r.flatness,
         "noise": r.noise, "metrics": r.metrics, "versions": r.versions}
        for name, records in groups.items() for r in records
    ]  # fmt: skip
    return json_ready({"groups": rows, "rat_effects": effects, "runs": runs})


def write_report(
    groups: dict[str, list[RunRecord]],
    rows: list[dict[str, Any]],
    out: Path,
    *,
    title: str = "ratt report",
    left_out: list[Path] | None = None,
    sections: list[Table] | None = None,
    extra_figures: list[tuple[str, Path]] | None = None,
    extra_json: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNG files), ``report.json`` and a self-contained ``report.html``;
    ``left_out``: run directories given but not finished, named in the page; ``sections``:
    more tables as (title, note, header, rows), after RAT's effect; ``extra_figures``: figures
    shown first; ``extra_json``: more entries of report.json."""
    out.mkdir(parents=True, exist_ok=True)
    records = [r for rs in groups.values() for r in rs]
    effects = rat_effects(records)
    figures = list(extra_figures or []) + _figures(groups, out)
    tables = list(sections or [])  # RAT's effect first, when there are pairs
    if effects:
        tables[:0] = [
            ("RAT's effect, paired by seed", EFFECT_NOTE, *effects_table(effects)),
            (
                "RAT's effect: what these seeds can detect",
                DETECTABLE_NOTE,
                *effects_detectable_table(effects),
            ),
        ]
    note = RESULTS_NOTE
    if left_out:
        note += f" Left out, not finished (no test accuracy yet): {', '.join(map(str, left_out))}."
    flat = flatness_table(rows) if any(row["flatness"] for row in rows) else None
    page = Page(title, note, results_table(rows), tables, flat, figures, [str(r.path) for r in records])
    md_path = out / "report.md"
    write_text(md_path, markdown_page(page))
    data = {**report_json(groups, rows, effects), **json_ready(extra_json or {})}
    write_text(out / "report.json", json.dumps(data, indent=1) + "\n")
    html_path = out / "report.html"
    write_text(html_path, html_page(page, groups, records[0].versions))
    return md_path, html_path


def _figures(groups: dict[str, list[RunRecord]], out: Path) -> list[tuple[str, Path]]:
    """The plots over all runs of each dataset, then each run's own figures that they do not
    replace, copied into ``out`` (each distinct file once): (caption, path)."""
    figures: list[tuple[str, Path]] = []
    per_dataset = _by_dataset(groups)
    aggregated = set()  # per-run plot names that a plot over all runs replaces
    for dataset, dataset_groups in per_dataset.items():
        suffix = f"-{dataset}" if len(per_dataset) > 1 else ""
        curves = plot_curves(dataset_groups, out / f"curves{suffix}.png", dataset)
        if curves:
            figures.append((f"Training curves, {dataset}", curves))
        noise = plot_noise_groups(dataset_groups, out / f"noise{suffix}.png", dataset)
        if noise:
            figures.append((f"Weight-noise curves, {dataset} (ratt landscape --what noise)", noise))
            aggregated.add("landscape_noise.png")
    seen: set[str] = set()  # `ratt landscape` writes shared plots into every run it compares
    for name, group_records in groups.items():
        for figure in group_records[0].figures:
            digest = hashlib.sha256(figure.read_bytes()).hexdigest()
            if figure.name in aggregated or digest in seen:
                continue
            seen.add(digest)
            target = out / f"{name.replace('+', '_').replace(' / ', '-')}-{figure.name}"
            write_bytes(target, figure.read_bytes())
            figures.append((f"{name}: {figure.stem} ({group_records[0].path})", target))
    return figures
