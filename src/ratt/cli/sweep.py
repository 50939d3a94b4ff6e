"""``ratt sweep``: train, evaluate, measure and report a grid of runs; resumable, in parallel
(``--workers``) or on a Slurm cluster (``--launcher slurm``); ``--status DIR`` shows each cell."""

from __future__ import annotations

import argparse
import re
import sys

from ratt.cli import eval as eval_cli
from ratt.cli import landscape as landscape_cli
from ratt.cli.common import comma_list
from ratt.errors import UserError
from ratt.sweep import SlurmOptions, SweepInterrupted, format_status, run_sweep, sweep_status
from ratt.train import TrainingInterrupted

SLURM_FLAGS = ("slurm_partition", "slurm_time", "slurm_gpus", "slurm_cpus", "slurm_mem", "slurm_array",
               "slurm_parallel", "slurm_opt", "slurm_requeues", "slurm_cluster", "slurm_folder")  # fmt: skip


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train methods x seeds x datasets; skip finished, resume interrupted")
    p.add_argument("--out", help="root folder; runs go to OUT/DATASET/METHOD/seed-N")
    p.add_argument("--status", metavar="DIR", help="only show each cell's state in the sweep at DIR")
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
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="cells at once on this machine, each in its own process (default 1: one after "
                   "another); on the CPU the cores are split between them (run.threads)")  # fmt: skip
    p.add_argument(
        "--devices",
        metavar="LIST",
        help="GPUs for --workers, one cell per GPU, e.g. 0,1,2,3 (default: all visible)",
    )
    p.add_argument("--launcher", default="local", choices=["local", "slurm"],
                   help="local (this machine) or slurm (one job per cell through submitit)")  # fmt: skip
    s = p.add_argument_group("Slurm (--launcher slurm; needs pip install 'ratt[slurm]')")
    s.add_argument("--slurm-partition", metavar="NAME", help="partition (default: the cluster's)")
    s.add_argument(
        "--slurm-time",
        default="240",
        metavar="TIME",
        help="time limit per job: minutes, H:MM:SS or D-HH:MM:SS",
    )
    s.add_argument("--slurm-gpus", type=int, default=0, metavar="N", help="GPUs per job (default 0)")
    s.add_argument(
        "--slurm-cpus", type=int, metavar="N", help="CPU cores per job (also run.threads when unset)"
    )
    s.add_argument("--slurm-mem", type=float, metavar="GB", help="memory per job in GB")
    s.add_argument("--slurm-array", action="store_true", help="one job array instead of one job per cell")
    s.add_argument("--slurm-parallel", type=int, metavar="N", help="at most N array tasks at once")
    s.add_argument("--slurm-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="more sbatch options, repeatable, e.g. --slurm-opt account=proj")  # fmt: skip
    s.add_argument(
        "--slurm-requeues", type=int, default=3, metavar="N", help="requeues after the time limit (default 3)"
    )
    s.add_argument("--slurm-cluster", default="slurm", choices=["slurm", "local"],
                   help="local: submitit's local executor, jobs as local processes")  # fmt: skip
    s.add_argument("--slurm-folder", metavar="DIR", help="submitit's job files and logs (default OUT/slurm)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides shared by every run")
    p.set_defaults(func=run)


def minutes(text: str) -> int:
    """``90``, ``1:30:00`` or ``1-06:00:00`` -> minutes (``UserError`` otherwise)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d):(\d\d)", text.strip())
    if match:
        days, hours, mins, secs = (int(g or 0) for g in match.groups())
        return days * 1440 + hours * 60 + mins + (secs > 0)
    if text.strip().isdigit():
        return int(text)
    raise UserError(f"--slurm-time {text!r}: write minutes (240), H:MM:SS (4:00:00) or D-HH:MM:SS")


def _slurm_options(args: argparse.Namespace) -> SlurmOptions | None:
    defaults = {"slurm_time": "240", "slurm_gpus": 0, "slurm_opt": [], "slurm_requeues": 3,
                "slurm_cluster": "slurm", "slurm_array": False}  # fmt: skip
    given = [f for f in SLURM_FLAGS if getattr(args, f) not in (None, defaults.get(f))]
    if args.launcher != "slurm":
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} needs --launcher slurm")
        return None
    return SlurmOptions(
        partition=args.slurm_partition, time=minutes(args.slurm_time), gpus=args.slurm_gpus,
        cpus=args.slurm_cpus, mem_gb=args.slurm_mem, array=args.slurm_array, parallel=args.slurm_parallel,
        sbatch=list(args.slurm_opt), requeues=args.slurm_requeues, cluster=args.slurm_cluster,
        folder=args.slurm_folder,
    )  # fmt: skip


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
    slurm = _slurm_options(args)
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
