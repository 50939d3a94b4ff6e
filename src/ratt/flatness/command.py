"""``ratt landscape RUN_DIR [RUN_DIR ...]``: flatness of trained runs, written into each run dir
(``landscape.json`` + PNG plots), with a comparison table on stdout."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ratt.errors import UserError
from ratt.flatness.hessian import hessian_eigenvalues, hessian_trace
from ratt.flatness.landscape import interpolate, landscape_1d, landscape_2d
from ratt.flatness.noise import noise_curve
from ratt.flatness.objective import ADV_MODES, Objective
from ratt.flatness.sharpness import awp_sharpness

log = logging.getLogger(__name__)

MEASURES = ("1d", "2d", "hessian", "noise", "awp", "interp")
DEFAULT_WHAT = "1d,2d,hessian,noise,awp"


def add_parser(subparsers: Any) -> None:
    """Register ``ratt landscape``."""
    p = subparsers.add_parser(
        "landscape",
        help="flatness of runs: loss landscapes, Hessian spectrum, weight noise, AWP sharpness",
        description=__doc__,
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (their best checkpoint)")
    p.add_argument("--what", default=DEFAULT_WHAT, help=f"comma list of {','.join(MEASURES)}")
    p.add_argument(
        "--adv",
        default="rerun",
        choices=ADV_MODES,
        help="adversarial loss: PGD re-run at each weight point, x_adv fixed, or clean only",
    )
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument(
        "--n", type=int, default=2048, help="data points (a seeded subset; the whole split if smaller)"
    )
    p.add_argument("--points", type=int, default=41, help="1D: grid points in [-range, range]")
    p.add_argument("--directions", type=int, default=3, help="1D: random directions")
    p.add_argument("--grid", type=int, default=21, help="2D: grid points per axis")
    p.add_argument("--range", type=float, default=1.0, help="1D/2D: largest |alpha|")
    p.add_argument("--topk", type=int, default=3, help="Hessian: top eigenvalues")
    p.add_argument("--lanczos-iters", type=int, default=20, help="Hessian: Lanczos iterations")
    p.add_argument("--samples", type=int, default=50, help="Hessian: Hutchinson samples for the trace")
    p.add_argument(
        "--sigmas",
        default="0,0.01,0.02,0.05,0.1,0.15,0.2",
        help="noise: relative std values (fractions of each weight tensor's RMS)",
    )
    p.add_argument("--draws", type=int, default=5, help="noise: draws per sigma")
    p.add_argument("--rho", default="0.005,0.01,0.02", help="AWP: relative radii per layer")
    p.add_argument("--awp-steps", type=int, default=5, help="AWP: projected ascent steps")
    p.add_argument("--attack-steps", type=int, help="PGD steps of the adversarial loss (default: the run's)")
    p.add_argument("--batch", type=int, default=512, help="points per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seeds directions, noise, PGD starts and the subset")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", help="where to look for the dataset (default: the run's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print all results as one JSON object last")
    p.set_defaults(func=run)


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{name}={text!r} must be a comma list of numbers, e.g. 0,0.01,0.05") from None
    if not values or any(v < 0 for v in values):
        raise UserError(f"{name}={text!r} must list at least one number >= 0")
    return values


def _parse_what(text: str, n_runs: int) -> list[str]:
    what = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in what if w not in MEASURES]
    if bad or not what:
        raise UserError(f"--what {text!r}: choose from {','.join(MEASURES)}")
    if "interp" in what and n_runs < 2:
        raise UserError("--what interp needs two or more RUN_DIRs (the line from the first to each other)")
    return what


def check_args(args: argparse.Namespace, n_runs: int) -> list[str]:
    """Validate parsed ``ratt landscape`` options (``UserError`` if wrong); returns the measures."""
    what = _parse_what(args.what, n_runs)
    _check(args)
    return what


def _check(args: argparse.Namespace) -> None:
    for name in ("points", "grid", "directions", "topk", "lanczos_iters", "draws", "awp_steps", "batch", "n"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    if args.samples < 2:
        raise UserError("--samples must be >= 2 (the trace's standard error needs two)")
    if args.range <= 0:
        raise UserError("--range must be > 0")
    _floats(args.sigmas, "--sigmas")
    _floats(args.rho, "--rho")


def _label(run: Path, method: str) -> str:
    return run.name if run.name == method else f"{run.name} ({method})"


def measure_run(run_dir: Path, args: argparse.Namespace, what: list[str]) -> tuple[dict, dict]:
    """Every requested measure for one run; returns (JSON-ready results, live objects)."""
    from ratt import data
    from ratt.train import load_checkpoint, resolve_device, threat_model

    device = resolve_device(args.device)
    model, config = load_checkpoint(run_dir, device)
    info = data.info(config.data.name)
    threat = threat_model(config, info)
    if args.attack_steps is not None:
        threat = replace(threat, steps=args.attack_steps)
    split = data.load(
        config.data.name,
        args.split,
        args.data_root or config.data.root,
        config.data.val_size,
        config.data.download,
    )
    if len(split) > args.n:
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(args.seed))
        split = split.subset(order[: args.n].sort().values)
    x = data.to_float(split.images).to(device)
    y = split.labels.to(device)
    objectives = {"clean": Objective(model, x, y, batch_size=args.batch, seed=args.seed)}
    if args.adv != "none":
        objectives["adv"] = Objective(model, x, y, args.adv, threat, args.batch, args.seed)
    progress = not args.quiet
    result: dict[str, Any] = {
        "run": str(run_dir),
        "label": _label(run_dir, config.method.name),
        "method": config.method.name,
        "dataset": config.data.name,
        "split": args.split,
        "n": len(y),
        "threat": threat.__dict__,
        "adv": args.adv,
        "seed": args.seed,
        "seconds": {},
    }
    for name, obj in objectives.items():
        loss, acc = obj.evaluate()
        result[name] = {"loss": loss, "acc": acc}
    span = np.linspace(-args.range, args.range, args.points).tolist()
    grid = np.linspace(-args.range, args.range, args.grid).tolist()
    sigmas = _floats(args.sigmas, "--sigmas")
    for measure in what:
        start = time.perf_counter()
        log.info("%s: %s", run_dir, measure)
        if measure == "1d":
            result["1d"] = landscape_1d(objectives, span, args.directions, args.seed, progress)
        elif measure == "2d":
            result["2d"] = landscape_2d(objectives, grid, grid, args.seed, progress)
        elif measure == "hessian":
            result["hessian"] = {
                name: {
                    **hessian_eigenvalues(obj, k=args.topk, iters=args.lanczos_iters, seed=args.seed),
                    **hessian_trace(obj, samples=args.samples, seed=args.seed),
                }
                for name, obj in objectives.items()
            }
        elif measure == "noise":
            result["noise"] = {
                name: noise_curve(obj, sigmas, args.draws, args.seed, progress)
                for name, obj in objectives.items()
            }
        elif measure == "awp":
            result["awp"] = {
                name: [awp_sharpness(obj, rho, args.awp_steps) for rho in _floats(args.rho, "--rho")]
                for name, obj in objectives.items()
            }
        if measure != "interp":
            result["seconds"][measure] = time.perf_counter() - start
    return result, {"model": model, "objectives": objectives}


def _rise(res: dict, name: str, at: float) -> float:
    """Mean over directions of (L(-a) + L(a)) / 2 - L(0) at the grid point nearest ``at``."""
    alphas = np.array(res["alphas"])
    curves = np.array(res["loss"][name])
    zero, plus, minus = (int(np.abs(alphas - v).argmin()) for v in (0.0, at, -at))
    return float(((curves[:, plus] + curves[:, minus]) / 2 - curves[:, zero]).mean())


def summary_scalars(res: dict, at: float) -> dict[str, float]:
    """The headline numbers of one run as flat ``name -> float`` (``landscape.json["summary"]``)."""
    out: dict[str, float] = {}
    for name in ("clean", "adv"):
        if name not in res:
            continue
        out[f"{name}_loss"] = res[name]["loss"]
        out[f"{name}_acc"] = res[name]["acc"]
        if "1d" in res:
            out[f"{name}_1d_rise"] = _rise(res["1d"], name, at)
        if "2d" in res:
            out[f"{name}_2d_mean_loss"] = float(np.mean(res["2d"]["loss"][name]))
        if "hessian" in res:
            out[f"{name}_hessian_top"] = res["hessian"][name]["eigenvalues"][0]
            out[f"{name}_hessian_trace"] = res["hessian"][name]["trace"]
        if "noise" in res:
            curve = res["noise"][name]
            for sigma, loss, acc in zip(curve["sigmas"], curve["loss_mean"], curve["acc_mean"], strict=True):
                if sigma > 0:
                    out[f"{name}_noise_loss@{sigma:g}"] = loss
                    out[f"{name}_noise_acc@{sigma:g}"] = acc
        if "awp" in res:
            for entry in res["awp"][name]:
                out[f"{name}_awp_rise@{entry['rho']:g}"] = entry["increase"]
    return out


def _interp_max(res: dict, name: str) -> str:
    if "interp" not in res:
        return "-"
    line = res["interp"]
    return f"{max(v for t, v in zip(line['t'], line['loss'][name], strict=True) if 0 <= t <= 1):.4f}"


def table_rows(results: list[dict], args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """Rows (metric, one cell per run) of the comparison table."""
    rows: list[tuple[str, list[str]]] = []
    names = [n for n in ("clean", "adv") if n in results[0]]

    def add(metric: str, cell) -> None:
        rows.append((metric, [cell(r) for r in results]))

    add("method", lambda r: r["method"])
    add("points", lambda r: f"{r['n']} ({r['split']})")
    for name in names:
        add(f"{name} loss / acc", lambda r, n=name: f"{r[n]['loss']:.4f} / {100 * r[n]['acc']:.1f}%")
    if "1d" in results[0]:
        at = args.range / 2
        for name in names:
            add(f"1d rise at |a|={at:g} [{name}]", lambda r, n=name: f"{_rise(r['1d'], n, at):.4f}")
    if "2d" in results[0]:
        for name in names:
            add(f"2d mean loss [{name}]", lambda r, n=name: f"{float(np.mean(r['2d']['loss'][n])):.4f}")
    if "hessian" in results[0]:
        for name in names:
            add(f"hessian top eig [{name}]", lambda r, n=name: f"{r['hessian'][n]['eigenvalues'][0]:.3f}")
            add(
                f"hessian trace [{name}]",
                lambda r, n=name: f"{r['hessian'][n]['trace']:.2f} ± {r['hessian'][n]['stderr']:.2f}",
            )
    if "noise" in results[0]:
        for name in names:
            for i, sigma in enumerate(results[0]["noise"][name]["sigmas"]):
                if sigma == 0:
                    continue
                add(
                    f"noise σ={sigma:g} loss/acc [{name}]",
                    lambda r, n=name, i=i: (
                        f"{r['noise'][n]['loss_mean'][i]:.4f}±{r['noise'][n]['loss_std'][i]:.4f}"
                        f" / {100 * r['noise'][n]['acc_mean'][i]:.1f}%"
                    ),
                )
    if "awp" in results[0]:
        for name in names:
            for i, entry in enumerate(results[0]["awp"][name]):
                add(
                    f"awp ρ={entry['rho']:g} loss rise [{name}]",
                    lambda r, n=name, i=i: f"{r['awp'][n][i]['increase']:.4f}",
                )
    if any("interp" in r for r in results):
        for name in names:
            add(f"interp max loss, t in [0,1] [{name}]", lambda r, n=name: _interp_max(r, n))
    return rows


def format_table(rows: list[tuple[str, list[str]]], labels: list[str]) -> str:
    """Plain-text table: one row per metric, one column per run."""
    header = ["metric", *labels]
    body = [[metric, *cells] for metric, cells in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in body)])


def run(args: argparse.Namespace) -> int:
    """Measure every run, write JSON and plots into each run dir, print the table."""
    from ratt.flatness import plots

    what = check_args(args, len(args.runs))
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not r.exists():
            raise UserError(f"{r} does not exist (give a run directory made by `ratt train --out`)")
    torch.manual_seed(args.seed)
    results, live = [], []
    for r in runs:
        res, objects = measure_run(r, args, what)
        results.append(res)
        live.append(objects)
    if "interp" in what:
        first = live[0]
        state_a = {k: v.clone() for k, v in first["model"].state_dict().items()}
        ts = np.linspace(-0.25, 1.25, args.points).tolist()
        for res, objects in zip(results[1:], live[1:], strict=True):
            start = time.perf_counter()
            state_b = objects["model"].state_dict()
            if set(state_b) != set(state_a) or any(state_b[k].shape != v.shape for k, v in state_a.items()):
                raise UserError(f"cannot interpolate {runs[0]} and {res['run']}: different architectures")
            line = interpolate(first["objectives"], state_a, state_b, ts, not args.quiet)
            line.update({"from": results[0]["run"], "to": res["run"]})
            res["interp"] = line
            res["seconds"]["interp"] = time.perf_counter() - start
    for res in results:
        res["summary"] = summary_scalars(res, args.range / 2)
    subtitle_of = lambda r: f"{r['dataset']} {r['split']} split, {r['n']} points"  # noqa: E731
    subtitle = subtitle_of(results[0])
    labels = [r["label"] for r in results]
    overlays = []  # drawn once into the first run dir, copied into the others
    if "1d" in what:
        plots.plot_1d(
            {res["label"]: res["1d"] for res in results}, runs[0] / "landscape_1d.png", args.adv, subtitle
        )
        overlays.append("landscape_1d.png")
    if "noise" in what:
        plots.plot_noise(
            {res["label"]: res["noise"] for res in results},
            runs[0] / "landscape_noise.png",
            args.adv,
            subtitle,
        )
        overlays.append("landscape_noise.png")
    if "interp" in what:
        plots.plot_interpolation(
            {f"{results[0]['label']} → {res['label']}": res["interp"] for res in results[1:]},
            runs[0] / "landscape_interp.png",
            args.adv,
            subtitle,
        )
        overlays.append("landscape_interp.png")
    for r in runs[1:]:
        for name in overlays:
            if (r / name).resolve() != (runs[0] / name).resolve():
                shutil.copyfile(runs[0] / name, r / name)
    for r, res in zip(runs, results, strict=True):
        if "2d" in what:
            plots.plot_2d(res["2d"], res["label"], r / "landscape_2d.png", args.adv, subtitle_of(res))
        (r / "landscape.json").write_text(json.dumps(res, indent=1))
    adv_note = {"rerun": "PGD re-run at each point", "fixed": "PGD x_adv held fixed"}.get(args.adv, "")
    print(f"flatness, {subtitle}; adversarial loss: {adv_note or 'off'}; seed {args.seed}")
    print(format_table(table_rows(results, args), labels))
    print("written: " + ", ".join(str(r / "landscape.json") for r in runs))
    if args.json:
        print(json.dumps({"runs": results}))
    return 0
