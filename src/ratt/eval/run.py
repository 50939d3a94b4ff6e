"""``evaluate_run``: one call from a run directory (or weights file) to everything ``ratt eval``
reports, and the ``eval.json`` file that holds it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ratt import data
from ratt.attacks import ThreatModel, check_eps_matches, magnitude_note, parse_attack, parse_magnitude
from ratt.core.env import resolve_device
from ratt.core.files import write_json
from ratt.eval.flags import Flag, default_sweep, eps_sweep, gradient_flags, result_flags, sweep_flag
from ratt.eval.partial import PartialStore
from ratt.eval.suite import EvalResult, evaluate
from ratt.eval.weight_noise import weight_noise_accuracy
from ratt.runs import RunFiles, load_checkpoint, threat_model

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    """What ``ratt eval`` runs (the command's options; every field has its default).

    Attributes:
        attacks: attack names (:data:`ratt.attacks.ATTACKS`), e.g. ``["clean", "pgd20", "aa"]``.
        eps, step: radius and step, ``8/255`` or ``0.031`` (None: the training values; a new
            eps alone keeps the trained step/eps ratio).
        norm: ``linf`` or ``l2`` (None: the training norm).
        n: evaluate the first ``n`` test points only (None: all).
        batch: batch size (None: the run's ``run.eval_batch_size``).
        seed: seed of the random starts (None: the run's seed).
        eps_sweep: also run the first ``pgdN`` at these radii; ``"auto"`` for eps x
            (0.25, 0.5, 1, 2, 4); None: no sweep.
        weight_noise: relative weight-noise sigmas (empty: none); ``draws`` draws each.
        fresh: ignore finished batches saved in the run's ``eval_partial/``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        data_root: where to look for the dataset (None: the run's).
        progress: progress bars.
    """

    attacks: list[str] = field(default_factory=lambda: ["clean", "pgd20"])
    eps: str | float | None = None
    step: str | float | None = None
    norm: str | None = None
    n: int | None = None
    batch: int | None = None
    seed: int | None = None
    eps_sweep: str | list[float] | None = None
    weight_noise: list[float] = field(default_factory=list)
    draws: int = 5
    fresh: bool = False
    device: str = "auto"
    data_root: str | None = None
    progress: bool = True

    def check(self) -> None:
        """Validate every option before any work (``UserError`` naming the first bad one)."""
        for name in self.attacks:
            parse_attack(name)


@dataclass
class EvalReport:
    """Everything one evaluation found; :meth:`to_dict` is the ``eval.json`` schema.

    Attributes:
        checkpoint: what was evaluated (run directory or weights file), as given.
        dataset: the dataset's name (its test split was used).
        threat: the threat model of the attacks.
        result: per-attack accuracies and the per-point worst case.
        flags: gradient-masking checks.
        eps_sweep: ``{"attack": NAME, "accuracy": {eps: acc}}`` when a sweep ran.
        weight_noise: sigma -> attack -> (mean, std) over ``draws`` draws, when run.
    """

    checkpoint: str
    dataset: str
    threat: ThreatModel
    result: EvalResult
    flags: list[Flag]
    eps_sweep: dict[str, Any] | None = None
    weight_noise: dict[float, dict[str, tuple[float, float]]] | None = None
    draws: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checkpoint": self.checkpoint, "threat": self.threat.__dict__}
        out.update(self.result.to_dict())
        if self.eps_sweep is not None:
            sweep = self.eps_sweep
            out["eps_sweep"] = {
                "attack": sweep["attack"],
                "accuracy": {str(e): a for e, a in sweep["accuracy"].items()},
            }
        out["flags"] = [f.to_dict() for f in self.flags]
        if self.weight_noise is not None:
            out["weight_noise"] = {
                "draws": self.draws,
                "accuracy": {
                    str(s): {a: {"mean": m, "std": d} for a, (m, d) in row.items()}
                    for s, row in self.weight_noise.items()
                },
            }
        return out


def _threat(trained: ThreatModel, options: EvalOptions) -> ThreatModel:
    threat = replace(trained, norm=options.norm or trained.norm)
    if options.eps is not None:
        log.info("%s", magnitude_note(options.eps, "--eps"))
        threat = threat.with_eps(parse_magnitude(options.eps, "--eps"))
    if options.step:
        threat = replace(threat, step=parse_magnitude(options.step, "--step"))
    check_eps_matches(trained, threat)
    return threat


def evaluate_run(checkpoint: str | Path, options: EvalOptions | None = None) -> EvalReport:
    """Attack a run's best checkpoint (or a ``.safetensors`` file) on its dataset's test split.

    Runs ``options.attacks`` (per-point worst case over them), the gradient-masking checks, and
    optionally an eps sweep and accuracy under weight noise. For a run directory, finished
    batches are kept in ``eval_partial/`` (an interrupted evaluation continues where it
    stopped) and the report is written to ``eval.json``.
    """
    options = options or EvalOptions()
    options.check()
    device = resolve_device(options.device, option="--device")
    model, config = load_checkpoint(checkpoint, device)
    info = data.info(config.data.name)
    threat = _threat(threat_model(config, info), options)
    test = data.load(config.data.name, "test", options.data_root or config.data.root)
    if options.n is not None:
        test = test.subset(torch.arange(min(options.n, len(test))))
    seed = config.run.seed if options.seed is None else options.seed
    batch = options.batch or config.run.eval_batch_size
    run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else None
    files = RunFiles(run_dir) if run_dir else None
    store = PartialStore(files.eval_partial, model) if files and not options.fresh else None
    progress = options.progress
    attacks = [parse_attack(a).name for a in options.attacks]
    result = evaluate(model, test, attacks, threat, batch, seed, device, progress=progress, store=store)
    report = EvalReport(str(checkpoint), config.data.name, threat, result, [])
    report.flags = gradient_flags(model, test, device=device) + result_flags(result)
    if options.eps_sweep is not None:
        values = default_sweep(threat.eps, threat.norm) if options.eps_sweep == "auto" else options.eps_sweep
        attack = next((a for a in attacks if a.startswith("pgd")), "pgd20")
        sweep = eps_sweep(model, test, threat, list(values), attack, batch, seed, device, progress)
        report.flags.append(sweep_flag(sweep, len(test)))
        report.eps_sweep = {"attack": attack, "accuracy": sweep}
    if options.weight_noise:
        first_pgd = [a for a in attacks if a.startswith("pgd")][:1]
        report.weight_noise = weight_noise_accuracy(
            model, test, list(options.weight_noise), threat, ("clean", *first_pgd), options.draws,
            batch, seed, device, progress,
        )  # fmt: skip
        report.draws = options.draws
    if files:
        write_json(files.eval, report.to_dict())
    return report


def eval_done(run_dir: str | Path, options: EvalOptions) -> bool:
    """The run's ``eval.json`` already holds every requested attack on the requested points."""
    path = RunFiles(run_dir).eval
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    attacks = {parse_attack(a).name for a in options.attacks}
    return attacks <= set(done.get("accuracy", {})) and (options.n is None or done.get("n", 0) <= options.n)
