"""``build_report``: one call from run directories to a written report (what ``ratt report`` does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratt.errors import UserError
from ratt.report.collect import RunRecord, group_runs, load_run, mixed_groups, summarize
from ratt.report.render import write_report


@dataclass
class Report:
    """A written report.

    Attributes:
        groups: group name -> its runs (finished runs only).
        rows: one summary row per group (see :func:`ratt.report.collect.summarize`).
        left_out: run directories given but not finished (no test accuracy yet).
        markdown, html: the files written.
        mixed: one line per group whose runs were evaluated differently (test points,
            attacks or threat model), which the table shows as one row per evaluation.
    """

    groups: dict[str, list[RunRecord]]
    rows: list[dict[str, Any]]
    left_out: list[Path]
    markdown: Path
    html: Path
    mixed: list[str]


def build_report(
    run_dirs: list[str | Path], out: str | Path, group_by: str = "method", title: str = "ratt report"
) -> Report:
    """Read the runs, group them by ``group_by`` (a comma list of ``method``, ``dataset``,
    ``model``, ``run``), and write ``report.md``, ``report.html``, ``report.json`` and figures
    into ``out``. Unfinished runs are left out, named in the report and in ``Report.left_out``."""
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out} is a file; the report is a folder (report.md, report.html, figures)")
    runs = [load_run(path) for path in run_dirs]
    finished = [r for r in runs if r.accuracy]
    left_out = [r.path for r in runs if not r.accuracy]
    if not finished:
        raise UserError("none of the runs is finished: nothing to report")
    groups = group_runs(finished, group_by)
    rows = summarize(groups)
    markdown, html = write_report(groups, rows, Path(out), title, left_out)
    return Report(groups, rows, left_out, markdown, html, mixed_groups(groups))
