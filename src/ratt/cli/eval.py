"""``ratt eval``: accuracy of a checkpoint under attacks, with gradient-masking checks."""

from __future__ import annotations

import argparse
import json
import shlex

from ratt.cli.common import add_quiet_json, add_trust_code, comma_list, floats, magnitudes
from ratt.config import describe_keys
from ratt.config.sections import NORMS
from ratt.errors import UserError
from ratt.eval import EvalOptions, evaluate_run, format_flags, format_result, format_weight_noise
from ratt.eval.protocol import PROTOCOLS

EVAL_SECTIONS = ("data", "model", "attack")  # what --model/--data weights' settings can change


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy of a checkpoint under attacks, with gradient-masking checks",
        epilog="keys of the key=value settings (with --model; a ratt run has its own config):\n\n"
        + describe_keys(EVAL_SECTIONS),
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``ratt eval`` (also parsed from ``ratt sweep --eval '...'``)."""
    p.add_argument(
        "checkpoint", metavar="RUN_DIR|FILE", help="run directory (see --checkpoint) or a .safetensors file"
    )
    p.add_argument(
        "--checkpoint", dest="checkpoint_name", metavar="NAME",
        help="which weights of RUN_DIR: best, last or epoch-NNNN (default best; last when the run has "
        "no best, which the output says); a missing or unreadable one is an error",
    )  # fmt: skip
    p.add_argument(
        "--attacks",
        default="clean,pgd20",
        help="comma list of clean, fgsm, pgdN, cwN (N steps), aa, aa-plus, aa-rand",
    )
    p.add_argument(
        "--model", metavar="SPEC",
        help="for weights from outside ratt (.safetensors, or .pt/.pth saved with torch.save): the model, "
        "e.g. preact_resnet18, my_nets.py:build, timm:resnet18 (needs --data)",
    )  # fmt: skip
    p.add_argument("--data", metavar="NAME", help="with --model: the dataset whose test split is attacked")
    p.add_argument(
        "settings", nargs="*", metavar="key=value",
        help="with --model: config settings, e.g. model.kwargs.width=2 attack.eps=8/255 data.root=...",
    )  # fmt: skip
    p.add_argument(
        "--weights", choices=["ema", "raw"],
        help="averaged (ema) or raw weights of a run trained with optim.ema_decay (default: ema if any)",
    )  # fmt: skip
    p.add_argument(
        "--protocol", choices=list(PROTOCOLS),
        help="a published protocol: " + "; ".join(f"{n}: {proto.help}" for n, proto in PROTOCOLS.items()),
    )  # fmt: skip
    p.add_argument(
        "--subset", metavar="FILE",
        help="robustbench-imagenet: its list of WNID/FILE images (default: the installed robustbench's)",
    )  # fmt: skip
    p.add_argument("--eps", help="radius, 8/255 or 0.031 (default: the training radius)")
    p.add_argument("--step", help="attack step size (default: the trained step/eps ratio times --eps)")
    p.add_argument("--norm", choices=NORMS, help="threat norm (default: the training norm)")
    p.add_argument("--n", type=int, help="evaluate the first N test points only")
    p.add_argument(
        "--batch",
        type=int,
        help="points per pass (default: the run's eval batch size); never changes the numbers",
    )
    p.add_argument("--seed", type=int, help="seed of the random starts (default: the run's)")
    p.add_argument(
        "--eps-sweep", nargs="?", const="auto", metavar="E1,E2,...",
        help="also run the first pgdN at several radii (default eps x 0.25,0.5,1,2,4)",
    )  # fmt: skip
    p.add_argument("--weight-noise", metavar="S1,S2,...", help="relative weight-noise sigmas, e.g. 0.01,0.05")
    p.add_argument("--draws", type=int, default=5, help="noise draws per sigma (default 5)")
    p.add_argument("--fresh", action="store_true", help="ignore finished chunks in RUN_DIR/eval_partial")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--data-root", help="where to look for the dataset")
    add_trust_code(p)
    add_quiet_json(p)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    """The parsed command line as :class:`ratt.eval.EvalOptions`."""
    sweep = args.eps_sweep
    return EvalOptions(
        attacks=comma_list(args.attacks),
        eps=args.eps,
        step=args.step,
        norm=args.norm,
        n=args.n,
        batch=args.batch,
        seed=args.seed,
        eps_sweep=None
        if sweep is None
        else ("auto" if sweep == "auto" else magnitudes(sweep, "--eps-sweep")),
        weight_noise=[] if args.weight_noise is None else _sigmas(args.weight_noise),
        draws=args.draws,
        fresh=args.fresh,
        device=args.device,
        data_root=args.data_root,
        progress=not args.quiet,
        checkpoint=args.checkpoint_name,
        model=args.model,
        data=args.data,
        config=list(args.settings),
        weights=args.weights,
        protocol=args.protocol,
        subset=args.subset,
        trust_code=args.trust_code,
    )


def _sigmas(text: str) -> list[float]:
    """``--weight-noise S1,S2,...``: a non-empty comma list of numbers (checked further by
    :meth:`EvalOptions.check`)."""
    sigmas = floats(text, "--weight-noise")
    if not sigmas:
        raise UserError(f"--weight-noise {text!r} is empty: give sigmas, e.g. 0.01,0.05")
    return sigmas


def parse_options(text: str) -> EvalOptions:
    """``ratt eval`` options written as one string (``--attacks clean,aa --n 1000``)."""
    parser = argparse.ArgumentParser(prog="ratt eval", add_help=False)
    add_arguments(parser)
    try:
        args = parser.parse_args(["RUN_DIR", *shlex.split(text)])
    except SystemExit:
        raise UserError(f"--eval {text!r}: not valid options of `ratt eval` (see above)") from None
    return options_from_args(args)  # checked where it is used, before any work (ratt.sweep.run_sweep)


def run(args: argparse.Namespace) -> int:
    report = evaluate_run(args.checkpoint, options_from_args(args))
    print(report.header())
    print(format_result(report.result))
    print(format_flags(report.flags))
    if report.weight_noise is not None:
        print(format_weight_noise(report.weight_noise, report.draws))
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0
