"""The ``ratt`` command: thin sub-commands over the library (parse, call, print)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from ratt.errors import UserError

log = logging.getLogger("ratt")

# Larger sub-commands live beside the code they drive; each module has
# ``add_parser(subparsers)`` that registers its command and sets ``func``.
COMMAND_MODULES = ["ratt.bench.command", "ratt.flatness.command", "ratt.report.command"]


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ratt.config import build_config
    from ratt.eval import format_table
    from ratt.eval.suite import EvalResult
    from ratt.train import TrainingInterrupted, train

    overrides = list(args.overrides)
    if args.quiet:
        overrides.append("run.progress=false")
    config = build_config(args.config, overrides)
    try:
        summary = train(config, args.out, resume=args.resume)
    except TrainingInterrupted as exc:
        print(f"ratt: {exc}", file=sys.stderr)
        return 128 + exc.signum
    test = summary["test"]
    result = EvalResult(test["accuracy"], test["seconds"], test["robust"], test["n"])
    print(
        f"run: {args.out}  ({summary['epochs']} epochs, {summary['train_seconds']:.1f} s, "
        f"checkpoint {summary['checkpoint']})"
    )
    print(f"test split, {config.data.name}, {config.method.name}:")
    print(format_table(result))
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from ratt import data
    from ratt.attacks import parse_magnitude
    from ratt.eval import evaluate, format_table
    from ratt.train import load_checkpoint, resolve_device, threat_model

    device = resolve_device(args.device)
    model, config = load_checkpoint(args.checkpoint, device)
    info = data.info(config.data.name)
    threat = threat_model(config, info)
    if args.eps is not None:
        eps = parse_magnitude(args.eps, "--eps")
        if args.step:
            step = parse_magnitude(args.step, "--step")
        else:  # keep the trained step/eps ratio (eps/4 if trained at eps=0)
            step = eps * (threat.step / threat.eps if threat.eps > 0 else 0.25)
        if abs(eps - threat.eps) > 1e-9:
            log.warning("evaluating at eps=%.4f; the model was trained at eps=%.4f", eps, threat.eps)
        threat = replace(threat, eps=eps, step=step)
    test = data.load(config.data.name, "test", args.data_root or config.data.root)
    if args.n is not None:
        test = test.subset(torch.arange(min(args.n, len(test))))
    attacks = [a for a in args.attacks.split(",") if a]
    seed = config.run.seed if args.seed is None else args.seed
    batch = args.batch or config.run.eval_batch_size
    result = evaluate(model, test, attacks, threat, batch, seed, device, progress=not args.quiet)
    print(f"{args.checkpoint}: {config.data.name} test, {threat.describe()}")
    print(format_table(result))
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "threat": threat.__dict__, **result.to_dict()}))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ratt.data import DATASETS
    from ratt.methods import METHODS
    from ratt.models import MODELS

    kinds = {"datasets": DATASETS, "models": MODELS, "methods": METHODS}
    chosen = [args.kind] if args.kind else list(kinds)
    for kind in chosen:
        print(f"{kind}: {', '.join(kinds[kind].names())}")
    if not args.kind or args.kind == "attacks":
        print("attacks: clean, fgsm, pgdN, cwN")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ratt", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True)

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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy of a checkpoint under attacks")
    p.add_argument("checkpoint", help="run directory (uses its best checkpoint) or .safetensors")
    p.add_argument("--attacks", default="clean,pgd20", help="comma list: clean,fgsm,pgdN,cwN")
    p.add_argument("--eps", help="L-inf radius (e.g. 8/255); default: the training radius")
    p.add_argument("--step", help="attack step size; default: scaled with --eps")
    p.add_argument("--n", type=int, help="evaluate the first N test points only")
    p.add_argument("--batch", type=int, help="batch size (default: the run's eval batch size)")
    p.add_argument("--seed", type=int, help="seed of the random starts (default: the run's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", help="where to look for the dataset")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("list", help="registered datasets, models, methods and attacks")
    p.add_argument("kind", nargs="?", choices=["datasets", "models", "methods", "attacks"])
    p.set_defaults(func=cmd_list)

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ratt`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"ratt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ratt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
