"""The ``ratt`` command: thin sub-commands over the library (parse, call, print)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
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
    from pathlib import Path

    import torch

    from ratt import data
    from ratt.attacks import check_eps_matches, magnitude_note, parse_magnitude
    from ratt.eval import (
        PartialStore,
        eps_sweep,
        evaluate,
        format_flags,
        format_table,
        format_weight_noise,
        gradient_flags,
        result_flags,
        sweep_flag,
        weight_noise_accuracy,
    )
    from ratt.eval.flags import default_sweep
    from ratt.train import load_checkpoint, resolve_device, threat_model

    device = resolve_device(args.device)
    model, config = load_checkpoint(args.checkpoint, device)
    info = data.info(config.data.name)
    trained = threat_model(config, info)
    threat = replace(trained, norm=args.norm or trained.norm)
    if args.eps is not None:
        eps = parse_magnitude(args.eps, "--eps")
        log.info("%s", magnitude_note(args.eps, "--eps"))
        threat = threat.with_eps(eps)
    if args.step:
        threat = replace(threat, step=parse_magnitude(args.step, "--step"))
    check_eps_matches(trained, threat)
    test = data.load(config.data.name, "test", args.data_root or config.data.root)
    if args.n is not None:
        test = test.subset(torch.arange(min(args.n, len(test))))
    attacks = [a for a in args.attacks.split(",") if a]
    seed = config.run.seed if args.seed is None else args.seed
    batch = args.batch or config.run.eval_batch_size
    run_dir = Path(args.checkpoint) if Path(args.checkpoint).is_dir() else None
    store = PartialStore(run_dir / "eval_partial", model) if run_dir and not args.fresh else None
    progress = not args.quiet
    result = evaluate(model, test, attacks, threat, batch, seed, device, progress=progress, store=store)
    print(f"{args.checkpoint}: {config.data.name} test, {threat.describe()}")
    print(format_table(result))
    report = {"checkpoint": str(args.checkpoint), "threat": threat.__dict__, **result.to_dict()}

    flags = gradient_flags(model, test, device=device) + result_flags(result)
    if args.eps_sweep is not None:
        values = (
            default_sweep(threat.eps, threat.norm)
            if args.eps_sweep == "auto"
            else [parse_magnitude(v, "--eps-sweep") for v in args.eps_sweep.split(",") if v]
        )
        attack = next((a for a in attacks if a.startswith("pgd")), "pgd20")
        sweep = eps_sweep(model, test, threat, values, attack, batch, seed, device, progress)
        flags.append(sweep_flag(sweep, len(test)))
        report["eps_sweep"] = {"attack": attack, "accuracy": {str(e): a for e, a in sweep.items()}}
    print(format_flags(flags))
    report["flags"] = [f.to_dict() for f in flags]

    if args.weight_noise:
        sigmas = [float(v) for v in args.weight_noise.split(",") if v]
        first_pgd = [a for a in attacks if a.startswith("pgd")][:1]
        noise_attacks = ("clean", *first_pgd)
        table = weight_noise_accuracy(
            model, test, sigmas, threat, noise_attacks, args.draws, batch, seed, device, progress
        )
        print(format_weight_noise(table, args.draws))
        report["weight_noise"] = {
            "draws": args.draws,
            "accuracy": {
                str(s): {a: {"mean": m, "std": d} for a, (m, d) in row.items()} for s, row in table.items()
            },
        }
    if run_dir:
        (run_dir / "eval.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
    return 0


def _sub_args(parser: argparse.ArgumentParser, command: str, text: str, run_dir: str) -> argparse.Namespace:
    """Parse ``ratt COMMAND RUN_DIR TEXT`` with the real sub-command parser (errors are UserErrors)."""
    import shlex

    argv = [command, run_dir, *shlex.split(text)]
    try:
        return parser.parse_args(argv)
    except SystemExit:
        raise UserError(f"--{command} {text!r}: not valid options of `ratt {command}` (see above)") from None


def _eval_done(run_dir: Path, args: argparse.Namespace) -> bool:
    """``eval.json`` already holds every requested attack on the requested points."""
    path = run_dir / "eval.json"
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    attacks = [a for a in args.attacks.split(",") if a]
    return set(attacks) <= set(done.get("accuracy", {})) and (args.n is None or done.get("n", 0) <= args.n)


def _landscape_done(run_dir: Path, args: argparse.Namespace) -> bool:
    """``landscape.json`` already holds every requested measure."""
    path = run_dir / "landscape.json"
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    return all(w.strip() in done for w in args.what.split(",") if w.strip())


def cmd_sweep(args: argparse.Namespace) -> int:
    from ratt.train import TrainingInterrupted
    from ratt.train.sweep import collect, markdown_table, run_sweep

    parser = build_parser()
    quiet = ["--quiet"] if args.quiet else []
    # Validate the later stages' options before hours of training, on a placeholder run dir.
    if args.eval is not None:
        from ratt.eval import parse_attack

        for spec in _sub_args(parser, "eval", args.eval, "RUN_DIR").attacks.split(","):
            parse_attack(spec)
    if args.landscape is not None:
        from ratt.flatness.command import check_args

        check_args(_sub_args(parser, "landscape", args.landscape, "RUN_DIR"), 1)
    overrides = list(args.overrides) + (["run.progress=false"] if args.quiet else [])
    datasets = [d for d in args.datasets.split(",") if d]
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    try:
        runs = run_sweep(args.out, datasets, methods, seeds, args.config, overrides)
    except TrainingInterrupted as exc:
        print(f"ratt: {exc}; or re-run the same `ratt sweep` command to continue the sweep", file=sys.stderr)
        return 128 + exc.signum
    rows = collect(runs)
    table = markdown_table(rows)
    print(table)
    (Path(args.out) / "results.md").write_text(table + "\n")
    (Path(args.out) / "results.json").write_text(json.dumps(rows, indent=1))
    stages = [
        ("eval", _eval_done, cmd_eval),
        ("landscape", _landscape_done, importlib.import_module("ratt.flatness.command").run),
    ]
    for command, done, func in stages:
        if getattr(args, command) is None:
            continue
        for index, run in enumerate(runs, start=1):
            sub_args = _sub_args(parser, command, f"{getattr(args, command)} {' '.join(quiet)}", str(run.out))
            if done(run.out, sub_args):
                log.info("[%d/%d] %s %s: done, skipped", index, len(runs), command, run.out)
                continue
            log.info("[%d/%d] %s %s", index, len(runs), command, run.out)
            func(sub_args)
    if args.report:
        report = [str(r.out) for r in runs] + ["--out", args.report, "--group-by", "dataset,method"]
        report_args = parser.parse_args(["report", *report])
        report_args.func(report_args)
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
        print("attacks: clean, fgsm, pgdN, cwN, aa (AutoAttack, standard)")
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

    p = sub.add_parser("eval", help="accuracy of a checkpoint under attacks, with gradient-masking checks")
    p.add_argument("checkpoint", help="run directory (uses its best checkpoint) or .safetensors")
    p.add_argument(
        "--attacks",
        default="clean,pgd20",
        help="comma list of clean, fgsm, pgdN, cwN (N steps), aa (standard AutoAttack)",
    )
    p.add_argument("--eps", help="radius, 8/255 or 0.031 (default: the training radius)")
    p.add_argument("--step", help="attack step size (default: the trained step/eps ratio times --eps)")
    p.add_argument("--norm", choices=["linf", "l2"], help="threat norm (default: the training norm)")
    p.add_argument("--n", type=int, help="evaluate the first N test points only")
    p.add_argument("--batch", type=int, help="batch size (default: the run's eval batch size)")
    p.add_argument("--seed", type=int, help="seed of the random starts (default: the run's)")
    p.add_argument(
        "--eps-sweep",
        nargs="?",
        const="auto",
        metavar="E1,E2,...",
        help="also run the first pgdN at several radii (default eps x 0.25,0.5,1,2,4)",
    )
    p.add_argument("--weight-noise", metavar="S1,S2,...", help="relative weight-noise sigmas, e.g. 0.01,0.05")
    p.add_argument("--draws", type=int, default=5, help="noise draws per sigma (default 5)")
    p.add_argument("--fresh", action="store_true", help="ignore finished batches in RUN_DIR/eval_partial")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", help="where to look for the dataset")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sweep", help="train methods x seeds x datasets; skip finished, resume interrupted")
    p.add_argument("--out", required=True, help="root folder; runs go to OUT/DATASET/METHOD/seed-N")
    p.add_argument("--methods", default="trades,rat_trades")
    p.add_argument("--seeds", default="0")
    p.add_argument("--datasets", default="digits")
    p.add_argument("--config", help="base YAML config shared by every run")
    p.add_argument(
        "--eval",
        metavar="OPTIONS",
        help="then `ratt eval RUN_DIR OPTIONS` on each run whose eval.json lacks those attacks, "
        "e.g. --eval '--attacks clean,pgd20,cw20,aa --n 1000'",
    )
    p.add_argument(
        "--landscape",
        metavar="OPTIONS",
        help="then `ratt landscape RUN_DIR OPTIONS` on each run (alone) whose landscape.json lacks "
        "those measures, e.g. --landscape '--what hessian,noise'",
    )
    p.add_argument("--report", metavar="DIR", help="finally `ratt report` over every run, into DIR")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=cmd_sweep)

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
