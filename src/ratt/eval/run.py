"""``evaluate_run``: one call from a run directory (or weights file) to everything ``ratt eval``
reports, and the ``eval.json`` file that holds it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ratt import config as cfg
from ratt import data
from ratt.attacks import ThreatModel, check_eps_matches
from ratt.core.env import resolve_device
from ratt.core.files import write_json
from ratt.core.lock import DirectoryLock
from ratt.core.units import magnitude_note, parse_magnitude
from ratt.data import TensorDataset
from ratt.data.stream import LazyDataset, for_evaluation
from ratt.errors import UserError
from ratt.eval import protocol as protocols
from ratt.eval.chunks import CHUNK
from ratt.eval.flags import Flag, default_sweep, eps_sweep, gradient_flags, result_flags, sweep_flag
from ratt.eval.options import EvalOptions, request_of
from ratt.eval.partial import PartialStore
from ratt.eval.suite import EvalPlan, EvalResult
from ratt.eval.weight_noise import weight_noise_table
from ratt.runs import (
    EMA_SUFFIX,
    WEIGHTS_SUFFIX,
    RunFiles,
    load_checkpoint,
    load_described,
    resolve_checkpoint,
    threat_model,
)
from ratt.runs.tensorboard import TensorBoardLog

log = logging.getLogger(__name__)


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
        weights: the checkpoint of the run evaluated (``best``, ``last``, ...; None for a
            weights file given directly).
        weights_file: the weights file evaluated.
        fallback: True when ``last`` was evaluated because the run has no ``best``.
        seed: the seed of the attacks' random choices.
        request: the options as asked (see :meth:`EvalOptions`), to tell later whether an
            identical evaluation was already done.
    """

    checkpoint: str
    dataset: str
    threat: ThreatModel
    result: EvalResult
    flags: list[Flag]
    eps_sweep: dict[str, Any] | None = None
    weight_noise: dict[float, dict[str, tuple[float, float]]] | None = None
    draws: int = 0
    weights: str | None = None
    weights_file: str = ""
    fallback: bool = False
    seed: int = 0
    request: dict[str, Any] = field(default_factory=dict)
    averaged: bool = False
    selected_on: str = "val"
    protocol: str | None = None

    def header(self) -> str:
        """One line: what was evaluated (weights file, which checkpoint), on what, how."""
        which = "" if self.weights is None else f" ({self.weights} checkpoint)"
        if self.fallback:
            which = " (last checkpoint: the run has no best checkpoint)"
        on_test = "checkpoint selected on the TEST split (the papers' convention)"
        notes = [n for n in (
            "averaged weights (EMA)" if self.averaged else "",
            on_test if self.selected_on == "test" else "",
            self.protocol or "",
        ) if n]  # fmt: skip
        threat = self.protocol and "" or f"{self.threat.describe()}, "
        line = f"{self.weights_file}{which}: {self.dataset} test, n={self.result.n}, {threat}seed {self.seed}"
        return line + "".join(f"\n  {note}" for note in notes)

    def to_dict(self) -> dict[str, Any]:
        """The ``eval.json`` object (see docs/evaluation.md, "Output")."""
        out: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "weights": self.weights,
            "weights_file": self.weights_file,
            "weights_fallback": self.fallback,
            "averaged_weights": self.averaged,
            "selected_on": self.selected_on,
            "protocol": self.protocol,
            "dataset": self.dataset,
            "seed": self.seed,
            "chunk": CHUNK,
            "threat": self.threat.__dict__,
            "request": self.request,
        }
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


def weights_to_evaluate(checkpoint: str | Path, name: str | None = None) -> tuple[Path, str | None, bool]:
    """The weights file that ``evaluate_run(checkpoint, EvalOptions(checkpoint=name))`` reads.

    For a run directory: ``checkpoints/NAME.safetensors``; with ``name=None``, ``best``, or
    ``last`` only when the run has no ``best`` at all (a ``best`` that is present but broken
    is an error, never a reason to evaluate other weights). For a weights file: itself.

    Returns:
        (file, checkpoint name or None for a file given directly, True when ``last`` stands in
        for a missing ``best``).
    Raises:
        UserError: the checkpoint is missing or not a regular file.
    """
    path = Path(checkpoint)
    if not path.is_dir():
        if name is not None:
            raise UserError(f"--checkpoint {name} needs a run directory, and {path} is not one")
        return resolve_checkpoint(path), None, False
    files = RunFiles(path)
    fallback = False
    if name is None:
        name = "best"
        if not files.weights("best").is_symlink() and not files.weights("best").exists():
            name, fallback = "last", True
    file = files.weights(name)
    if fallback and not file.is_symlink() and not file.exists():
        raise UserError(f"{path} holds no checkpoints/best{WEIGHTS_SUFFIX} or last{WEIGHTS_SUFFIX}")
    if not file.is_symlink() and not file.exists():
        saved = files.checkpoints.glob(f"*{WEIGHTS_SUFFIX}")
        found = sorted(f.name.removesuffix(WEIGHTS_SUFFIX) for f in saved)
        raise UserError(
            f"{path} has no {name} checkpoint ({file} does not exist); it has: {', '.join(found) or 'none'}"
        )
    if not file.is_file():
        raise UserError(f"checkpoint {file} is not a readable file")
    return file, name, fallback


def averaged_or_raw(file: Path, weights: str | None) -> Path:
    """``NAME.ema.safetensors`` beside ``file`` for ``weights="ema"`` (or None, when it
    exists), else ``file``; ``UserError`` when ``ema`` is asked of weights that have none."""
    if file.name.endswith(f"{EMA_SUFFIX}{WEIGHTS_SUFFIX}"):
        if weights == "raw":
            raise UserError(f"{file} holds averaged weights: give the run directory for --weights raw")
        return file
    averaged = file.with_name(file.name.removesuffix(WEIGHTS_SUFFIX) + EMA_SUFFIX + WEIGHTS_SUFFIX)
    if weights == "ema" and not averaged.is_file():
        raise UserError(f"{file} has no averaged weights ({averaged.name}): the run had optim.ema_decay=0")
    return averaged if weights != "raw" and averaged.is_file() else file


def evaluate_run(checkpoint: str | Path, options: EvalOptions | None = None) -> EvalReport:
    """Attack a run's checkpoint (``options.checkpoint``; by default ``best``, else ``last``
    when the run has no best), a weights file (with ``options.model``/``data`` for weights from
    outside ratt) or a RobustBench zoo model (``robustbench:NAME`` with ``options.data``) on
    the dataset's test split.

    Runs ``options.attacks`` (per-point worst case over them), the gradient-masking checks, and
    optionally an eps sweep and accuracy under weight noise. For a run directory, finished
    chunks are kept in ``eval_partial/`` (an interrupted evaluation continues where it
    stopped) and the report is written to ``eval.json``. Every option is checked first
    (:meth:`EvalOptions.check`).
    """
    options = options or EvalOptions()
    if str(checkpoint).startswith("robustbench:") and options.model is None:  # a published model
        options = replace(options, model=str(checkpoint))
    options.check()
    is_run = Path(checkpoint).is_dir()  # one writer per run directory (train, resume, eval)
    with DirectoryLock(RunFiles(checkpoint).lock, "ratt eval", enabled=is_run):
        return _evaluate_run(checkpoint, options)


def _evaluate_run(checkpoint: str | Path, options: EvalOptions) -> EvalReport:
    """:func:`evaluate_run` with the run directory's lock held."""
    request = request_of(options)
    device = resolve_device(options.device, option="--device")
    model, config, file, weights, fallback = _model_to_evaluate(checkpoint, options, device)
    protocol = protocols.get(options.protocol) if options.protocol else None
    if protocol is not None:
        config = _protocol_data(config, protocol)
        threat, aa_threat = protocol.threats(config.data.name)
        log.info("%s", protocol.describe(config.data.name))
    else:
        threat = _threat(threat_model(config, data.info_for(config.data)), options)
    run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else None
    files = RunFiles(run_dir) if run_dir else None
    store = PartialStore(files.eval_partial, model) if files and not options.fresh else None
    plan = EvalPlan(
        model=model, dataset=_test_points(config, options), threat=threat,
        batch_size=options.batch or config.run.eval_batch_size,
        seed=config.run.seed if options.seed is None else options.seed, device=device,
        progress=options.progress, store=store,
    )  # fmt: skip
    attacks = list(protocol.white_box) if protocol else request["attacks"]
    result = plan.run(attacks)
    if protocol:  # AutoAttack at its own radius; the worst case over both
        result = result.merged(replace(plan, threat=aa_threat).run(list(protocols.AUTOATTACK)))
    report = EvalReport(str(checkpoint), config.data.name, threat, result, [])
    report.averaged = file is not None and file.name.endswith(f"{EMA_SUFFIX}{WEIGHTS_SUFFIX}")
    report.selected_on = config.run.select
    report.protocol = protocol.describe(config.data.name) if protocol else None
    report.weights, report.weights_file, report.fallback = weights, str(file or checkpoint), fallback
    report.seed, report.request = plan.seed, request
    report.flags = gradient_flags(model, plan.dataset, device=device) + result_flags(result)
    _sweep_and_weight_noise(report, plan, options, attacks)
    if files:
        _write(files, report, config)
    return report


def _model_to_evaluate(
    checkpoint: str | Path, options: EvalOptions, device: torch.device
) -> tuple[nn.Module, cfg.TrainConfig, Path | None, str | None, bool]:
    """(model, config, weights file, which weights, fell back to last) for ``checkpoint``."""
    zoo = str(checkpoint).startswith("robustbench:")  # a published model with its own weights
    file, weights, fallback = (
        (None, None, False) if zoo else weights_to_evaluate(checkpoint, options.checkpoint)
    )
    if fallback:
        log.warning("%s has no best checkpoint: evaluating %s", checkpoint, file)
    if options.model is not None:  # weights from outside ratt, described on the command line
        model, config = load_described(file, options.model, options.data, options.config, device)
    else:
        file = averaged_or_raw(file, options.weights)
        model, config = load_checkpoint(file, device, trust_code=options.trust_code)
    return model, config, file, weights, fallback


def _protocol_data(config: cfg.TrainConfig, protocol: protocols.Protocol) -> cfg.TrainConfig:
    """``config`` with the data section the protocol reads: RobustBench's ImageNet images are
    resized to 256 and center-cropped to 224 whatever the run trained at."""
    if protocol.name != "robustbench-imagenet":
        return config
    size, resize = protocols.ROBUSTBENCH_SIZES
    return replace(config, data=replace(config.data, image_size=size, resize=resize))


def _test_points(config: cfg.TrainConfig, options: EvalOptions) -> TensorDataset | LazyDataset:
    """The test split (``robustbench-imagenet``: the images its list names, in order), or its
    first ``options.n`` points. Packed shards and streamed folders stay lazy, read batch by
    batch by each attack (unless bad images may be skipped: then read once, whole)."""
    if options.protocol == "robustbench-imagenet":
        root = options.data_root or config.data.root
        listing = protocols.subset_listing(options.subset)
        test = data.listed_test_images(replace(config.data, root=root), listing, lazy=True)
    else:
        test = data.load_for(config.data, "test", options.data_root, lazy=True)
    if options.n is not None:
        if options.n > len(test):
            log.warning("--n %d: the test split has %d points; evaluating all", options.n, len(test))
        test = test.subset(torch.arange(min(options.n, len(test))))
    return for_evaluation(test)


def _sweep_and_weight_noise(
    report: EvalReport, plan: EvalPlan, options: EvalOptions, attacks: list[str]
) -> None:
    """The optional eps sweep (and its flag) and weight-noise table, into ``report``."""
    request = report.request
    if options.eps_sweep is not None:
        sweep_radii = request["eps_sweep"]
        threat = plan.threat
        values = default_sweep(threat.eps, threat.norm) if sweep_radii == "auto" else sweep_radii
        attack = next((a for a in attacks if a.startswith("pgd")), "pgd20")
        sweep = eps_sweep(plan, list(values), attack)
        report.flags.append(sweep_flag(sweep, len(plan.dataset)))
        report.eps_sweep = {"attack": attack, "accuracy": sweep}
    if options.weight_noise:
        first_pgd = [a for a in attacks if a.startswith("pgd")][:1]
        report.weight_noise = weight_noise_table(
            plan, request["weight_noise"], ("clean", *first_pgd), options.draws
        )
        report.draws = options.draws


def _write(files: RunFiles, report: EvalReport, config: cfg.TrainConfig) -> None:
    """``eval.json``, and the accuracies as TensorBoard events when the run writes them."""
    write_json(files.eval, report.to_dict())
    if config.run.tensorboard:  # beside the training curves, at the run's last epoch
        scalars = {f"eval_{k}": v for k, v in report.result.accuracy.items()}
        board = TensorBoardLog(files.root, config.optim.epochs, "eval")  # replaces an earlier eval
        board.log({**scalars, "eval_robust": report.result.robust}, config.optim.epochs)
        board.close()


def eval_done(run_dir: str | Path, options: EvalOptions) -> bool:
    """The run's ``eval.json`` already holds this evaluation: asked with the same points, seed,
    threat model and checkpoint, with every requested attack (and the sweep and weight-noise
    table when requested). An ``eval.json`` without its ``request`` (older ratt) is not."""
    path = RunFiles(run_dir).eval
    if not path.exists():
        return False
    try:
        done = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    asked, had = request_of(options), done.get("request") if isinstance(done, dict) else None
    if not isinstance(had, dict) or not set(asked["attacks"]) <= set(had.get("attacks") or []):
        return False
    same = ["n", "seed", "eps", "step", "norm", "checkpoint"]
    same += ["eps_sweep"] if asked["eps_sweep"] is not None else []
    same += ["weight_noise", "draws"] if asked["weight_noise"] else []
    return all(had.get(k) == asked[k] for k in same)
