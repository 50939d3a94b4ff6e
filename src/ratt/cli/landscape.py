"""``ratt landscape``: flatness of runs, written into each run directory, compared in a table."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from ratt.cli.common import add_quiet_json, add_trust_code, comma_list, floats
from ratt.core.table import text_table
from ratt.errors import UserError
from ratt.flatness import ADV_MODES, LandscapeOptions, describe, measure_runs, table_rows
from ratt.flatness.measure import MEASURES, output_dir
from ratt.runs import RunFiles

DEFAULTS = LandscapeOptions()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "landscape", help="flatness of runs: loss landscapes, Hessian spectrum, weight noise, AWP sharpness"
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN_DIR",
        help="run directories (their best checkpoint); with --model, weights files and key=value settings",
    )  # fmt: skip
    add_arguments(p)
    p.set_defaults(func=run, settings=[])  # key=value after options land here (see ratt.cli.main)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``ratt landscape`` but the runs (also parsed from ``ratt sweep --landscape``)."""
    d = DEFAULTS
    p.add_argument("--what", default=",".join(d.what), help=f"comma list of {','.join(MEASURES)}")
    p.add_argument(
        "--adv", default=d.adv, choices=ADV_MODES,
        help="adversarial loss: PGD re-run at each weight point, x_adv fixed, or clean only",
    )  # fmt: skip
    p.add_argument("--split", default=d.split, choices=["test", "val", "train"])
    p.add_argument(
        "--n", type=int, default=d.n, help="data points (a seeded subset; the whole split if smaller)"
    )
    p.add_argument("--points", type=int, default=d.points, help="1D: grid points in [-range, range]")
    p.add_argument("--directions", type=int, default=d.directions, help="1D: random directions")
    p.add_argument("--grid", type=int, default=d.grid, help="2D: grid points per axis")
    p.add_argument("--range", type=float, default=d.range, help="1D/2D: largest |alpha|")
    p.add_argument("--topk", type=int, default=d.topk, help="Hessian: top eigenvalues")
    p.add_argument("--lanczos-iters", type=int, default=d.lanczos_iters, help="Hessian: Lanczos iterations")
    p.add_argument("--samples", type=int, default=d.samples, help="Hessian: Hutchinson samples for the trace")
    p.add_argument(
        "--sigmas", default=",".join(f"{s:g}" for s in d.sigmas),
        help="noise: relative std values (fractions of each weight tensor's RMS)",
    )  # fmt: skip
    p.add_argument("--draws", type=int, default=d.draws, help="noise: draws per sigma")
    p.add_argument("--rho", default=",".join(f"{r:g}" for r in d.rho), help="AWP: relative radii per layer")
    p.add_argument("--awp-steps", type=int, default=d.awp_steps, help="AWP: projected ascent steps")
    p.add_argument("--attack-steps", type=int, help="PGD steps of the adversarial loss (default: the run's)")
    p.add_argument("--batch", type=int, default=d.batch, help="points per forward pass")
    p.add_argument(
        "--seed", type=int, default=d.seed, help="seeds directions, noise, PGD starts and the subset"
    )
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--data-root", help="where to look for the dataset (default: the run's)")
    p.add_argument(
        "--model", metavar="SPEC", help="for weights files from outside ratt: the model (needs --data)"
    )
    p.add_argument("--data", metavar="NAME", help="with --model: the dataset")
    add_trust_code(p)
    add_quiet_json(p, "print all results as one JSON object last")


def _is_setting(item: str) -> bool:
    """A ``key=value`` setting among the runs (not a path that happens to hold ``=``)."""
    return "=" in item and not Path(item).exists()


def options_from_args(args: argparse.Namespace) -> LandscapeOptions:
    """The parsed command line as :class:`ratt.flatness.LandscapeOptions`."""
    return LandscapeOptions(
        what=comma_list(args.what), adv=args.adv, split=args.split, n=args.n, points=args.points,
        directions=args.directions, grid=args.grid, range=args.range, topk=args.topk,
        lanczos_iters=args.lanczos_iters, samples=args.samples, sigmas=floats(args.sigmas, "--sigmas"),
        draws=args.draws, rho=floats(args.rho, "--rho"), awp_steps=args.awp_steps,
        attack_steps=args.attack_steps, batch=args.batch, seed=args.seed, device=args.device,
        data_root=args.data_root, progress=not args.quiet, model=getattr(args, "model", None),
        data=getattr(args, "data", None), trust_code=args.trust_code,
        config=[r for r in getattr(args, "runs", []) if _is_setting(r)] + list(getattr(args, "settings", [])),
    )  # fmt: skip


def parse_options(text: str) -> LandscapeOptions:
    """``ratt landscape`` options written as one string (``--what hessian,noise``)."""
    parser = argparse.ArgumentParser(prog="ratt landscape", add_help=False)
    add_arguments(parser)
    try:
        args = parser.parse_args(shlex.split(text))
    except SystemExit:
        raise UserError(f"--landscape {text!r}: not valid options of `ratt landscape` (see above)") from None
    options = options_from_args(args)
    options.check(1)
    return options


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    runs = [r for r in args.runs if not _is_setting(r)]
    results = measure_runs(runs, options)
    rows = table_rows(results, options)
    print(describe(results, options))
    print(text_table(["metric", *[r["label"] for r in results]], [[m, *cells] for m, cells in rows]))
    print("written: " + ", ".join(str(RunFiles(output_dir(Path(r), options)).landscape) for r in runs))
    if args.json:
        print(json.dumps({"runs": results}))
    return 0
