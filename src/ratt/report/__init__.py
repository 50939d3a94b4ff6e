"""Reports over run directories: results tables (mean ± std over seeds), training curves,
flatness figures, configs and versions, as Markdown and a self-contained HTML page.

Example:
    >>> from ratt.report import build_report
    >>> report = build_report(["runs/a", "runs/b"], "report", group_by="dataset,method")
"""

from __future__ import annotations

from ratt.report.build import Report, build_report
from ratt.report.collect import SOURCES, RunRecord, group_runs, load_run, summarize
from ratt.report.render import results_table, write_report

__all__ = [
    "SOURCES",
    "Report",
    "RunRecord",
    "build_report",
    "group_runs",
    "load_run",
    "results_table",
    "summarize",
    "write_report",
]
