"""Reports over run directories: results tables (mean ± std over seeds), training curves,
flatness figures, configs and versions, as Markdown and a self-contained HTML page."""

from __future__ import annotations

from ratt.report.collect import RunRecord, group_runs, load_run, summarize
from ratt.report.render import write_report

__all__ = ["RunRecord", "group_runs", "load_run", "summarize", "write_report"]
