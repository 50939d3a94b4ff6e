"""``ratt sweep``: train, evaluate, measure and report a grid of runs; resumable, in parallel
(``--workers``) or on a Slurm cluster (``--launcher slurm``); ``--status DIR`` shows each cell."""

from __future__ import annotations

import argparse
import sys

from ratt.cli import eval as eval_cli
from ratt.cli import landscape as landscape_cli
from ratt.cli.common import comma_list
from ratt.cli.slurm import add_slurm_arguments, slurm_options
from ratt.config import describe_keys
from ratt.errors import UserError
from ratt.sweep import SweepInterrupted, format_status, run_sweep, sweep_status
from ratt.train import TrainingInterrupted

# the commands a sweep can run on each finished run: flag -> its --help
FOLLOW_UPS = {
    "--eval": "then `ratt eval RUN_DIR OPTIONS` on each run whose eval.json lacks those attacks, "
    "e.g. --eval '--attacks clean,pgd20,cw20,aa --n 1000'",
    "--landscape": "then `ratt landscape RUN_DIR OPTIONS` on each run (alone) whose landscape.json "
    "lacks those measures, e.g. --landscape '--what hessian,noise'",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train methods x seeds x datasets; skip finished, resume interrupted",
        epilog="configuration keys of the key=value overrides (as for ratt train; write "
        "section.key=value,\na bare key=value when the key is unique):\n\n" + describe_keys(),
    )
    p.add_argument("--out", help="root folder; runs go to OUT/DATASET/METHOD/seed-N")
    p.add_argument("--status", metavar="DIR", help="only show each cell's state in the sweep at DIR")
    p.add_argument("--methods", default="trades,rat_trades", help="comma list (default trades,rat_trades)")
    p.add_argument("--seeds", default="0", help="comma list of seeds (default 0)")
    p.add_argument("--datasets", default="digits", help="comma list (default digits)")
    p.add_argument("--config", help="base YAML config shared by every run")
    for flag, follow_up in FOLLOW_UPS.items():
        p.add_argument(flag, metavar="OPTIONS", help=follow_up)
    p.add_argument("--report", metavar="DIR", help="finally `ratt report` over every run, into DIR")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="cells at once on this machine, each in its own process (default 1: one after "
                   "another); on the CPU the cores are split between them (run.threads)")  # fmt: skip
    p.add_argument(
        "--devices",
        metavar="LIST",
        help="GPUs for --workers, one cell per GPU, e.g. 0,1,2,3 (default: all visible)",
    )
    add_slurm_arguments(p, unit="cell")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides shared by every run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.status is not None:
        print(format_status(sweep_status(args.status)))
        return 0
    if args.out is None:
        raise UserError("ratt sweep needs --out DIR (or --status DIR to see a sweep's cells)")
    quiet = " --quiet" if args.quiet else ""
    eval_options = eval_cli.parse_options(args.eval + quiet) if args.eval is not None else None
    landscape_options = (
        landscape_cli.parse_options(args.landscape + quiet) if args.landscape is not None else None
    )
    try:
        seeds = [int(s) for s in comma_list(args.seeds)]
        devices = [int(d) for d in comma_list(args.devices)] if args.devices is not None else None
    except ValueError:
        raise UserError("--seeds and --devices must be comma lists of integers") from None
    slurm = slurm_options(args)
    overrides = list(args.overrides) + (["run.progress=false"] if args.quiet else [])
    try:
        result = run_sweep(
            args.out, comma_list(args.datasets), comma_list(args.methods), seeds, config_path=args.config,
            overrides=overrides, eval_options=eval_options, landscape_options=landscape_options,
            report_dir=args.report, workers=args.workers, devices=devices,
            launcher=args.launcher, slurm=slurm, progress=not args.quiet,
        )  # fmt: skip
    except TrainingInterrupted as exc:
        print(f"ratt: {exc}; or re-run the same `ratt sweep` command to continue the sweep", file=sys.stderr)
        return 128 + exc.signum
    except SweepInterrupted as exc:
        print(f"ratt: {exc}; re-run the same `ratt sweep` command to continue the sweep", file=sys.stderr)
        return 128 + exc.signum
    print(result.table)
    if result.report is not None:
        for path in result.report.left_out:
            print(f"ratt sweep: {path} is not finished: left out of the report", file=sys.stderr)
        print(f"wrote {result.report.markdown} and {result.report.html}")
    for view in result.failed:
        log = f" (log: {view.log})" if view.log else ""
        print(f"ratt sweep: {view.name} {view.state}: {view.detail}{log}", file=sys.stderr)
    if result.failed:
        print(f"ratt sweep: {len(result.failed)} cells unfinished; re-run the same command to retry them",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
