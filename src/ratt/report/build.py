"""``build_report``: one call from run directories to a written report (what ``ratt report`` does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratt.core.stats import sign_test
from ratt.errors import UserError
from ratt.report.collect import (
    NAMED_PARTS,
    RunRecord,
    group_runs,
    load_run,
    mixed_groups,
    mixed_settings,
    summarize,
)
from ratt.report.compare import (
    detectable_table,
    paired_differences,
    paired_table,
    plot_sensitivity,
    sensitivity,
)
from ratt.report.cost import COST_NOTE, cost_rows, cost_table, plot_cost
from ratt.report.render import DETECTABLE_NOTE, write_report

PAIRED_NOTE = (
    "Each group minus the reference group, run by run with the same dataset and seed (same "
    "initialization, data order and validation split): mean ± sample std of the differences in "
    "percentage points, seeds ahead/behind, and the two-sided sign test's p (the chance of a split "
    "at least this uneven if ahead and behind were equally likely; {smallest})."
)


def paired_note(pairs: list[dict[str, Any]]) -> str:
    """:data:`PAIRED_NOTE` with the smallest sign-test p that the rows' seed count allows."""
    counts = sorted({len(row["seeds"]) for row in pairs}) or [0]
    most = counts[-1]
    seeds = f"{most} seed{'s' if most != 1 else ''}" + (
        ", the most of any row here," if len(counts) > 1 else ""
    )
    return PAIRED_NOTE.format(smallest=f"with {seeds} the smallest possible p is {sign_test(most, 0):.3g}")


@dataclass
class Report:
    """A written report.

    Attributes:
        groups: group name -> its runs (finished runs only).
        rows: one summary row per group (see :func:`ratt.report.collect.summarize`).
        left_out: run directories given but not finished (no test accuracy yet).
        markdown, html: the files written.
        mixed: one line per group whose runs were evaluated differently (test points,
            attacks or threat model), which the table shows as one row per evaluation, and
            per group whose runs differ in more than their seed (its mean spans settings).
    """

    groups: dict[str, list[RunRecord]]
    rows: list[dict[str, Any]]
    left_out: list[Path]
    markdown: Path
    html: Path
    mixed: list[str]


def build_report(
    run_dirs: list[str | Path],
    out: str | Path,
    group_by: str = "method",
    title: str = "ratt report",
    paired_with: str | None = None,
    source: str = "auto",
) -> Report:
    """Read the runs, group them by ``group_by`` (a comma list of ``method``, ``dataset``,
    ``model``, ``run``, ``sweep`` or config keys such as ``method.alpha``), and write
    ``report.md``, ``report.html``, ``report.json`` and figures into ``out``.

    With ``paired_with`` (a group's name), every other group is compared with it run by run,
    paired by seed (mean ± std of the differences, seeds ahead/behind, a sign test, a paired
    t-test and the smallest difference it can detect). For every
    config key in ``group_by``, a figure shows the accuracy against its value. ``source`` picks
    each run's evaluation (``auto``, ``eval`` or ``summary``; see :func:`load_run`). Runs
    without it are left out, named in the report and in ``Report.left_out``."""
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file; the report is a folder (report.md, report.html, figures)")
    runs = [load_run(path, source) for path in run_dirs]
    finished = [r for r in runs if r.accuracy]
    left_out = [r.path for r in runs if not r.accuracy]
    if not finished:
        raise UserError("none of the runs is finished: nothing to report")
    groups = group_runs(finished, group_by)
    if paired_with is not None and paired_with not in groups:
        raise UserError(f"--paired-with {paired_with!r} is not a group; the groups are: {', '.join(groups)}")
    rows = summarize(groups)
    sections, figures, extra = [], [], {}
    if paired_with is not None:
        pairs = paired_differences(groups, paired_with)
        sections.append((f"Paired with {paired_with}, by seed", paired_note(pairs), *paired_table(pairs)))
        sections.append(("What these seeds can detect", DETECTABLE_NOTE, *detectable_table(pairs)))
        extra["paired"] = pairs
    costs = cost_rows(groups)  # training cost beside robust accuracy, with the collapses flagged
    sections.append(("Training cost", COST_NOTE, *cost_table(costs)))
    extra["cost"] = costs
    Path(out).mkdir(parents=True, exist_ok=True)
    cost_figure = plot_cost(costs, Path(out) / "cost.png")
    if cost_figure is not None:
        figures.append(("Robust accuracy against training cost (mean; bars: std over runs)", cost_figure))
    for key in [p.strip() for p in group_by.split(",") if p.strip() not in (*NAMED_PARTS, "run", "sweep")]:
        data = sensitivity(groups, key)
        extra.setdefault("sensitivity", {})[key] = data
        Path(out).mkdir(parents=True, exist_ok=True)
        figure = plot_sensitivity(data, Path(out) / f"sensitivity-{key.replace('.', '-')}.png")
        if figure is not None:
            figures.append((f"Test accuracy against {key} (mean; band: min to max over runs)", figure))
    markdown, html = write_report(
        groups, rows, Path(out), title=title, left_out=left_out, sections=sections, extra_figures=figures,
        extra_json=extra,
    )  # fmt: skip
    return Report(groups, rows, left_out, markdown, html, mixed_groups(groups) + mixed_settings(groups))
