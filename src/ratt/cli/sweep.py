"""``ratt sweep``: train, evaluate, measure and report a grid of runs; resumable."""

from __future__ import annotations

import argparse
import sys

from ratt.cli import eval as eval_cli
from ratt.cli import landscape as landscape_cli
from ratt.cli.common import comma_list
from ratt.errors import UserError
from ratt.sweep import run_sweep
from ratt.train import TrainingInterrupted


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train methods x seeds x datasets; skip finished, resume interrupted")
    p.add_argument("--out", required=True, help="root folder; runs go to OUT/DATASET/METHOD/seed-N")
    p.add_argument("--methods", default="trades,rat_trades", help="comma list (default trades,rat_trades)")
    p.add_argument("--seeds", default="0", help="comma list of seeds (default 0)")
    p.add_argument("--datasets", default="digits", help="comma list (default digits)")
    p.add_argument("--config", help="base YAML config shared by every run")
    p.add_argument(
        "--eval", metavar="OPTIONS",
        help="then `ratt eval RUN_DIR OPTIONS` on each run whose eval.json lacks those attacks, "
        "e.g. --eval '--attacks clean,pgd20,cw20,aa --n 1000'",
    )  # fmt: skip
    p.add_argument(
        "--landscape", metavar="OPTIONS",
        help="then `ratt landscape RUN_DIR OPTIONS` on each run (alone) whose landscape.json lacks "
        "those measures, e.g. --landscape '--what hessian,noise'",
    )  # fmt: skip
    p.add_argument("--report", metavar="DIR", help="finally `ratt report` over every run, into DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides shared by every run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    quiet = " --quiet" if args.quiet else ""
    eval_options = eval_cli.parse_options(args.eval + quiet) if args.eval is not None else None
    landscape_options = (
        landscape_cli.parse_options(args.landscape + quiet) if args.landscape is not None else None
    )
    try:
        seeds = [int(s) for s in comma_list(args.seeds)]
    except ValueError:
        raise UserError(f"--seeds {args.seeds!r} must be a comma list of integers") from None
    overrides = list(args.overrides) + (["run.progress=false"] if args.quiet else [])
    try:
        result = run_sweep(
            args.out, comma_list(args.datasets), comma_list(args.methods), seeds, args.config, overrides,
            eval_options, landscape_options, args.report,
        )  # fmt: skip
    except TrainingInterrupted as exc:
        print(f"ratt: {exc}; or re-run the same `ratt sweep` command to continue the sweep", file=sys.stderr)
        return 128 + exc.signum
    print(result.table)
    if result.report is not None:
        for path in result.report.left_out:
            print(f"ratt sweep: {path} is not finished: left out of the report", file=sys.stderr)
        print(f"wrote {result.report.markdown} and {result.report.html}")
    return 0
