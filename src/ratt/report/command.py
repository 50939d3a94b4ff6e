"""``ratt report RUN_DIR [RUN_DIR ...]``: tables and plots over runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ratt.errors import UserError


def run(args: argparse.Namespace) -> int:
    from ratt.report.collect import group_runs, load_run, summarize
    from ratt.report.render import results_table, write_report

    runs = [load_run(path) for path in args.runs]
    finished = [r for r in runs if r.accuracy]
    left_out = [r.path for r in runs if not r.accuracy]
    for path in left_out:
        print(f"ratt report: {path} is not finished (no summary.json): left out", file=sys.stderr)
    if not finished:
        raise UserError("none of the runs is finished: nothing to report")
    groups = group_runs(finished, args.group_by)
    rows = summarize(groups)
    md_path, html_path = write_report(groups, rows, Path(args.out), args.title, left_out)
    header, body = results_table(rows)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for cells in body:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    print(f"wrote {md_path} and {html_path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``ratt report``."""
    p = sub.add_parser("report", help="results table, training curves and flatness over runs")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report", help="output folder (report.md, report.html, PNGs)")
    p.add_argument(
        "--group-by", default="method", help="comma list of method, dataset, model, run (e.g. dataset,method)"
    )
    p.add_argument("--title", default="ratt report")
    p.set_defaults(func=run)
