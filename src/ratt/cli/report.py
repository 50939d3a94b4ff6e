"""``ratt report``: tables and plots over run directories."""

from __future__ import annotations

import argparse
import sys

from ratt.core.table import text_table
from ratt.report import SOURCES, build_report, results_table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="results table, training curves and flatness over runs")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument(
        "--out", default="report", help="output folder (report.md, report.html, PNGs; default report)"
    )
    p.add_argument(
        "--group-by",
        default="method",
        help="comma list of method, dataset, model, run, sweep (the ratt sweep folder) or config keys "
        "(e.g. method.alpha: adds a figure of accuracy against it)",
    )
    p.add_argument("--title", default="ratt report", help="the report's title")
    p.add_argument(
        "--paired-with", metavar="GROUP",
        help="compare every group with this one, run by run paired by seed (with a sign test)",
    )  # fmt: skip
    p.add_argument(
        "--from", dest="source", choices=SOURCES, default="auto",
        help="which evaluation of each run: eval.json, summary.json (training's final test), or auto "
        "(eval.json when there is one; default)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = build_report(args.runs, args.out, args.group_by, args.title, args.paired_with, args.source)
    for path in report.left_out:
        missing = "eval.json" if args.source == "eval" else "summary.json"
        print(f"ratt report: {path} is not finished (no {missing}): left out", file=sys.stderr)
    for line in report.mixed:
        print(f"ratt report: {line}", file=sys.stderr)
    print(text_table(*results_table(report.rows)))
    print(f"wrote {report.markdown} and {report.html}")
    return 0
