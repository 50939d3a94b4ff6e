"""``ratt train``: train one configuration into a run directory."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ratt.eval import EvalResult, format_result
from ratt.runs import build_config
from ratt.train import TrainingInterrupted, train


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: digits + smallcnn + TRADES)")
    p.add_argument("--config", help="YAML file with the values that differ from the defaults")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--json", action="store_true", help="print the summary as JSON last")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. method=pgd_at epochs=10 eps=8/255",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + (["run.progress=false"] if args.quiet else [])
    config = build_config(args.config, overrides)
    try:
        summary = train(config, args.out, resume=args.resume)
    except TrainingInterrupted as exc:
        print(f"ratt: {exc}", file=sys.stderr)
        return 128 + exc.signum
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    test = summary["test"]
    result = EvalResult(test["accuracy"], test["seconds"], test["robust"], test["n"])
    print(
        f"run: {args.out}  ({summary['epochs']} epochs, {summary['train_seconds']:.1f} s, "
        f"checkpoint {summary['checkpoint']})"
    )
    print(f"test split, {config.data.name}, {config.method.name}:")
    print(format_result(result))
    if args.json:
        print(json.dumps(summary))
    return 0
