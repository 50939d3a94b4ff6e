"""``measure_runs``: the flatness of trained runs (what ``ratt landscape`` does), written into
each run directory as ``landscape.json`` and PNG plots, and the comparison table's rows."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ratt import data
from ratt.core.env import resolve_device
from ratt.core.files import write_bytes, write_json
from ratt.core.lock import DirectoryLock
from ratt.errors import UserError
from ratt.flatness.hessian import hessian_eigenvalues, hessian_trace
from ratt.flatness.landscape import interpolate, landscape_1d, landscape_2d
from ratt.flatness.noise import noise_curve
from ratt.flatness.objective import ADV_MODES, Objective
from ratt.flatness.sharpness import awp_sharpness
from ratt.runs import RunFiles, load_checkpoint, load_described, threat_model

log = logging.getLogger(__name__)

MEASURES = ("1d", "2d", "hessian", "noise", "awp", "interp")
SPLITS = ("test", "val", "train")


@dataclass
class LandscapeOptions:
    """What ``ratt landscape`` measures, and how (every field has the command's default).

    Attributes:
        what: measures, from ``1d``, ``2d``, ``hessian``, ``noise``, ``awp``, ``interp``
            (``interp`` needs two or more runs: the line from the first to each other).
        adv: adversarial loss: ``rerun`` (PGD re-run at each weight point), ``fixed``
            (x_adv crafted once) or ``none`` (clean only).
        split: ``test``, ``val`` or ``train``; ``n``: a seeded subset of that many points.
        points, directions, range: 1D grid points in [-range, range] and random directions.
        grid: 2D grid points per axis.
        topk, lanczos_iters, samples: Hessian top eigenvalues, Lanczos iterations and
            Hutchinson samples for the trace.
        sigmas, draws: relative weight-noise sizes and draws per size.
        rho, awp_steps: AWP sharpness radii (relative, per layer) and ascent steps.
        attack_steps: PGD steps of the adversarial loss (None: the run's).
        batch: points per forward pass; seed: seeds directions, noise, PGD starts, subset.
        device, data_root, progress: where to run, where the data is, progress bars.
        model, data, config: measure weights from outside ratt (each "run" is then a
            ``.safetensors`` or ``torch.save`` file; results go to ``FILE.landscape/``): the
            model spec, the dataset and ``key=value`` settings, as for ``ratt eval``.
        trust_code: follow a checkpoint's model spec that runs code (``file.py:fn``); False
            refuses it, importing nothing (a checkpoint is data).
    """

    what: list[str] = field(default_factory=lambda: ["1d", "2d", "hessian", "noise", "awp"])
    adv: str = "rerun"
    split: str = "test"
    n: int = 2048
    points: int = 41
    directions: int = 3
    grid: int = 21
    range: float = 1.0
    topk: int = 3
    lanczos_iters: int = 20
    samples: int = 50
    sigmas: list[float] = field(default_factory=lambda: [0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2])
    draws: int = 5
    rho: list[float] = field(default_factory=lambda: [0.005, 0.01, 0.02])
    awp_steps: int = 5
    attack_steps: int | None = None
    batch: int = 512
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    progress: bool = True
    model: str | None = None
    data: str | None = None
    config: list[str] = field(default_factory=list)
    trust_code: bool = False

    def check(self, n_runs: int = 1) -> None:
        """Validate every option before any work (``UserError`` naming the first bad one)."""
        bad = [w for w in self.what if w not in MEASURES]
        if bad or not self.what:
            raise UserError(f"--what {','.join(self.what)!r}: choose from {','.join(MEASURES)}")
        if (self.model is None) != (self.data is None):
            raise UserError("--model and --data go together (weights from outside ratt need both)")
        if "interp" in self.what and n_runs < 2:
            raise UserError(
                "--what interp needs two or more RUN_DIRs (the line from the first to each other)"
            )
        if self.adv not in ADV_MODES:
            raise UserError(f"--adv {self.adv!r}: choose from {', '.join(ADV_MODES)}")
        if self.split not in SPLITS:
            raise UserError(f"--split {self.split!r}: choose from {', '.join(SPLITS)}")
        counts = ("points", "grid", "directions", "topk", "lanczos_iters", "draws", "awp_steps", "batch")
        for name in (*counts, "n"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1")
        if self.samples < 2:
            raise UserError("--samples must be >= 2 (the trace's standard error needs two)")
        if not 0 < self.range < float("inf"):  # NaN fails both
            raise UserError(f"--range {self.range}: give a finite number > 0")
        for name in ("sigmas", "rho"):
            values = getattr(self, name)
            if not values or any(not v >= 0 for v in values):
                raise UserError(f"--{name} must list at least one number >= 0")


def _label(run: Path, method: str) -> str:
    return run.name if run.name == method else f"{run.name} ({method})"


def measure_run(run_dir: Path, options: LandscapeOptions) -> tuple[dict, dict]:
    """Every requested measure but ``interp`` for one run; returns (JSON-ready results, live
    objects: ``{"model", "objectives"}``)."""
    device = resolve_device(options.device)
    if options.model is not None:
        model, config = load_described(run_dir, options.model, options.data, options.config, device)
    else:
        model, config = load_checkpoint(run_dir, device, trust_code=options.trust_code)
    info = data.info_for(config.data)
    threat = threat_model(config, info)
    if options.attack_steps is not None:
        threat = replace(threat, steps=options.attack_steps)
    split = data.load_for(config.data, options.split, options.data_root)
    if len(split) > options.n:
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(options.seed))
        split = split.subset(order[: options.n].sort().values)
    x = data.to_float(split.images).to(device)
    y = split.labels.to(device)
    objectives = {"clean": Objective(model, x, y, batch_size=options.batch, seed=options.seed)}
    if options.adv != "none":
        objectives["adv"] = Objective(model, x, y, options.adv, threat, options.batch, options.seed)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "label": _label(run_dir, config.method.name),
        "method": config.method.name,
        "dataset": config.data.name,
        "split": options.split,
        "n": len(y),
        "threat": threat.__dict__,
        "adv": options.adv,
        "seed": options.seed,
        "seconds": {},
    }
    for name, obj in objectives.items():
        loss, acc = obj.evaluate()
        result[name] = {"loss": loss, "acc": acc}
    for measure in options.what:
        start = time.perf_counter()
        log.info("%s: %s", run_dir, measure)
        if measure != "interp":
            result[measure] = _measure(measure, objectives, options)
            result["seconds"][measure] = time.perf_counter() - start
    return result, {"model": model, "objectives": objectives}


def _measure(measure: str, objectives: dict[str, Objective], options: LandscapeOptions) -> Any:
    """One measure (``1d``, ``2d``, ``hessian``, ``noise`` or ``awp``) on every objective."""
    seed, progress = options.seed, options.progress
    if measure == "1d":
        span = np.linspace(-options.range, options.range, options.points).tolist()
        return landscape_1d(objectives, span, options.directions, seed, progress)
    if measure == "2d":
        grid = np.linspace(-options.range, options.range, options.grid).tolist()
        return landscape_2d(objectives, grid, grid, seed, progress)
    per_objective = {
        "hessian": lambda obj: {
            **hessian_eigenvalues(obj, k=options.topk, iters=options.lanczos_iters, seed=seed),
            **hessian_trace(obj, samples=options.samples, seed=seed),
        },
        "noise": lambda obj: noise_curve(
            obj, [float(s) for s in options.sigmas], options.draws, seed, progress
        ),
        "awp": lambda obj: [awp_sharpness(obj, float(rho), options.awp_steps) for rho in options.rho],
    }
    if measure in per_objective:
        return {name: per_objective[measure](obj) for name, obj in objectives.items()}
    raise ValueError(f"unknown measure {measure!r}")


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


def table_rows(results: list[dict], options: LandscapeOptions) -> list[tuple[str, list[str]]]:
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
        at = options.range / 2
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


def output_dir(run: Path, options: LandscapeOptions) -> Path:
    """Where a run's ``landscape.json`` and plots go: the run directory, or ``FILE.landscape/``
    beside weights from outside ratt."""
    if options.model is None:
        return run
    folder = run.with_name(run.name + ".landscape")
    folder.mkdir(exist_ok=True)
    return folder


def measure_runs(run_dirs: list[str | Path], options: LandscapeOptions | None = None) -> list[dict]:
    """Measure every run, write ``landscape.json`` (with a ``summary`` of headline scalars)
    and the PNG plots into each run directory; returns each run's results.

    Overlay plots (1D, noise, interpolation) compare all runs and are drawn into every one.
    Each run directory's lock is held throughout (a run in training is refused).
    """
    options = options or LandscapeOptions()
    options.check(len(run_dirs))
    runs = [Path(r) for r in run_dirs]
    for r in runs:
        if not r.exists():
            raise UserError(f"{r} does not exist (give a run directory made by `ratt train --out`)")
    with contextlib.ExitStack() as locks:
        for r in {r.resolve() for r in runs if r.is_dir() and options.model is None}:
            locks.enter_context(DirectoryLock(RunFiles(r).lock, "ratt landscape"))
        return _measure_runs(runs, options)


def _interpolations(
    runs: list[Path], results: list[dict], live: list[dict], options: LandscapeOptions
) -> None:
    """``interp`` into each result but the first: the loss along the line from the first
    run's weights to that run's (same architecture only)."""
    first = live[0]
    state_a = {k: v.clone() for k, v in first["model"].state_dict().items()}
    ts = np.linspace(-0.25, 1.25, options.points).tolist()
    for res, objects in zip(results[1:], live[1:], strict=True):
        start = time.perf_counter()
        state_b = objects["model"].state_dict()
        if set(state_b) != set(state_a) or any(state_b[k].shape != v.shape for k, v in state_a.items()):
            raise UserError(f"cannot interpolate {runs[0]} and {res['run']}: different architectures")
        line = interpolate(first["objectives"], state_a, state_b, ts, options.progress)
        line.update({"from": results[0]["run"], "to": res["run"]})
        res["interp"] = line
        res["seconds"]["interp"] = time.perf_counter() - start


def _measure_runs(runs: list[Path], options: LandscapeOptions) -> list[dict]:
    from ratt.flatness import plots  # matplotlib: loaded only when plotting

    what = options.what
    torch.manual_seed(options.seed)
    results, live = [], []
    for r in runs:
        res, objects = measure_run(r, options)
        results.append(res)
        live.append(objects)
    if "interp" in what:
        _interpolations(runs, results, live, options)
    for res in results:
        res["summary"] = summary_scalars(res, options.range / 2)
    subtitle = _subtitle(results[0])
    files = [RunFiles(output_dir(r, options)) for r in runs]
    overlays = []  # drawn once into the first run dir, copied into the others
    if "1d" in what:
        plots.plot_1d(
            {res["label"]: res["1d"] for res in results}, files[0].landscape_plot("1d"), options.adv, subtitle
        )
        overlays.append("1d")
    if "noise" in what:
        plots.plot_noise(
            {res["label"]: res["noise"] for res in results},
            files[0].landscape_plot("noise"),
            options.adv,
            subtitle,
        )
        overlays.append("noise")
    if "interp" in what:
        plots.plot_interpolation(
            {f"{results[0]['label']} → {res['label']}": res["interp"] for res in results[1:]},
            files[0].landscape_plot("interp"),
            options.adv,
            subtitle,
        )
        overlays.append("interp")
    for run_files in files[1:]:
        for kind in overlays:
            source, target = files[0].landscape_plot(kind), run_files.landscape_plot(kind)
            if target.resolve() != source.resolve():
                write_bytes(target, source.read_bytes())
    for run_files, res in zip(files, results, strict=True):
        if "2d" in what:
            plots.plot_2d(
                res["2d"], res["label"], run_files.landscape_plot("2d"), options.adv, _subtitle(res)
            )
        write_json(run_files.landscape, res)
    return results


def landscape_done(run_dir: str | Path, options: LandscapeOptions) -> bool:
    """The run's ``landscape.json`` already holds every requested measure."""
    path = RunFiles(run_dir).landscape
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    return all(measure in done for measure in options.what)


def _subtitle(result: dict) -> str:
    return f"{result['dataset']} {result['split']} split, {result['n']} points"


def describe(results: list[dict], options: LandscapeOptions) -> str:
    """One line naming the data, the adversarial loss and the seed of a comparison."""
    adv_note = {"rerun": "PGD re-run at each point", "fixed": "PGD x_adv held fixed"}.get(options.adv, "")
    return f"flatness, {_subtitle(results[0])}; adversarial loss: {adv_note or 'off'}; seed {options.seed}"
