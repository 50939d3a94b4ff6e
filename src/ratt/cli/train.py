"""``ratt train``: train one configuration into a run directory, or continue one.

``ratt train --out DIR [--config FILE] [key=value ...]`` starts a run;
``ratt train --resume DIR [key=value ...]`` (or ``--resume --out DIR``) continues it from
its own saved config, the ``key=value`` being changes to it (only the resumable keys:
epochs, threads, progress, checkpoint cadence, device, ...). ``--config`` cannot be given
with ``--resume``: the run's config is already fixed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ratt.cli.common import add_trust_code
from ratt.cli.slurm import add_slurm_arguments, slurm_options
from ratt.config import describe_keys
from ratt.core.files import check_name_lengths
from ratt.core.table import plural
from ratt.errors import UserError
from ratt.eval import EvalResult, format_result
from ratt.runs import build_config
from ratt.train import TrainingInterrupted, train
from ratt.train.checkpointing import RESUMABLE_KEYS
from ratt.train.entry import resume_run
from ratt.train.resume import saved_config
from ratt.train.slurm import JobFailed, TrainJob, submit_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default: digits + smallcnn + TRADES)",
        description=__doc__,
        epilog="configuration keys (write section.key=value, a bare key=value when the key is unique,\n"
        "or a section name for its name, e.g. method=pgd_at):\n\n" + describe_keys(),
    )
    p.add_argument("--config", help="YAML file with the values that differ from the defaults")
    p.add_argument("--out", help="run directory to create (with --resume: the run to continue)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="DIR",
        help="continue the run in DIR (or --out) from its saved config; key=value are then changes, "
        f"allowed for: {', '.join(sorted(RESUMABLE_KEYS))}",
    )
    add_trust_code(p)
    add_slurm_arguments(p, unit="run")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--json", action="store_true", help="print the summary as JSON last")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. method=pgd_at epochs=10 eps=8/255",
    )
    p.set_defaults(func=run)


def _resume_target(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The run directory and the changes of ``--resume [DIR] [--out DIR] [key=value ...]``."""
    overrides = list(args.overrides)
    target = args.resume
    if isinstance(target, str) and args.out and target != args.out:
        if "=" not in target or Path(target).is_dir():
            raise UserError(f"two run directories given ({target} and --out {args.out}); give one")
        overrides.insert(0, target)  # `--resume epochs=5 --out DIR`: argparse took the change
        target = True
    out = args.out if target is True else target
    if not out or "=" in out and not Path(out).is_dir():
        raise UserError("--resume needs the run directory: ratt train --resume DIR [key=value ...]")
    if args.config:
        raise UserError(
            "--config cannot be combined with --resume: a resumed run keeps its saved config "
            f"({Path(out) / 'config.yaml'}); give changes as key=value (e.g. epochs=10)"
        )
    return out, overrides


def run(args: argparse.Namespace) -> int:
    quiet = ["run.progress=false"] if args.quiet else []
    slurm = slurm_options(args)
    try:
        if args.resume is not None:
            out, changes = _resume_target(args)
            if slurm is not None:
                check_name_lengths(out, "--resume")
                config = saved_config(out, trust_code=args.trust_code)  # a run to continue, checked first
                job = TrainJob(out, None, resume=True, changes=changes + quiet, trust_code=args.trust_code)
                summary = submit_run(job, slurm)
            else:
                summary = resume_run(out, changes + quiet, trust_code=args.trust_code)
                config = saved_config(out, trust_code=args.trust_code)
        else:
            if not args.out:
                raise UserError("--out is required: the run directory to create (or --resume DIR)")
            out = args.out
            config = build_config(args.config, list(args.overrides) + quiet)
            summary = submit_run(TrainJob(out, config), slurm) if slurm is not None else train(config, out)
    except TrainingInterrupted as exc:
        print(f"ratt: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except JobFailed as exc:
        print(f"ratt: error: {exc}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    _print_summary(out, summary, config.data.name, config.method.name, args.json)
    return 0


def _print_summary(out: str, summary: dict[str, Any], dataset: str, method: str, as_json: bool) -> None:
    test = summary["test"]
    result = EvalResult(test["accuracy"], test["seconds"], test["robust"], test["n"])
    print(
        f"run: {out}  ({plural(summary['epochs'], 'epoch')}, {summary['train_seconds']:.1f} s, "
        f"checkpoint {summary['checkpoint']})"
    )
    print(f"test split, {dataset}, {method}:")
    print(format_result(result))
    if as_json:
        print(json.dumps(summary))
