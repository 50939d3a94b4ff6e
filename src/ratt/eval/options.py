"""What ``ratt eval`` is asked: :class:`EvalOptions`, checked before any work, and the part of
them that decides the numbers (``eval.json["request"]``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ratt.config.sections import NORMS
from ratt.core.units import parse_magnitude
from ratt.errors import UserError
from ratt.eval import checks
from ratt.eval import protocol as protocols

WEIGHTS = ("ema", "raw")


@dataclass
class EvalOptions:
    """What ``ratt eval`` runs (the command's options; every field has its default).

    Attributes:
        attacks: attack names (:data:`ratt.attacks.ATTACKS`), e.g. ``["clean", "pgd20", "aa"]``.
        eps, step: radius and step, ``8/255`` or ``0.031`` (None: the training values; a new
            eps alone keeps the trained step/eps ratio).
        norm: ``linf`` or ``l2`` (None: the training norm).
        n: evaluate the first ``n`` test points only (None: all).
        batch: points per forward/backward pass (None: the run's ``run.eval_batch_size``);
            it changes speed and memory, never the numbers (randomness is per chunk of
            :data:`~ratt.eval.chunks.CHUNK` points; AutoAttack always runs one chunk at a time).
        seed: seed of the random starts (None: the run's seed).
        eps_sweep: also run the first ``pgdN`` at these radii; ``"auto"`` for eps x
            (0.25, 0.5, 1, 2, 4); None: no sweep.
        weight_noise: relative weight-noise sigmas (empty: none); ``draws`` draws each.
        fresh: ignore finished chunks saved in the run's ``eval_partial/``.
        checkpoint: which weights of a run directory: ``best``, ``last`` or another name in
            its ``checkpoints/`` (None: ``best``, else ``last`` when the run has no best, which
            the report says). A named checkpoint that is missing or unreadable is an error.
        weights: ``ema`` (the averaged weights of a run trained with ``optim.ema_decay``) or
            ``raw`` (None: ``ema`` when the checkpoint has them, else ``raw``).
        protocol: a published protocol's attacks, radii and points instead of
            ``attacks``/``eps``/``step`` (:data:`ratt.eval.protocol.PROTOCOLS`: ``paper``, the
            TRADES/AWP/RAT tables; ``robustbench-imagenet``, RobustBench's ImageNet board; see
            docs/evaluation.md); None: as asked.
        subset: ``robustbench-imagenet``: the file of ``WNID/FILE`` lines to evaluate, in order
            (None: the list shipped with the installed ``robustbench`` package).
        model, data, config: evaluate weights from outside ratt (a ``.safetensors`` or a
            ``torch.save`` state dict): the model spec (a registry name, ``file.py:fn``,
            ``package.module:fn``, ``timm:NAME``), the dataset, and ``key=value`` settings
            (e.g. ``model.kwargs.width=2``, ``attack.eps=8/255``). None: a ratt checkpoint.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        data_root: where to look for the dataset (None: the run's).
        progress: progress bars.
        trust_code: follow a checkpoint's model spec that runs code (``file.py:fn``,
            ``package.module:fn``); False refuses it, importing nothing (a checkpoint is data).
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
    checkpoint: str | None = None
    weights: str | None = None
    protocol: str | None = None
    subset: str | None = None
    model: str | None = None
    data: str | None = None
    config: list[str] = field(default_factory=list)
    trust_code: bool = False

    def check(self) -> None:
        """Validate every option before any work: a one-line ``UserError`` (a ``ValueError``)
        naming the first bad one, as the command line spells it."""
        checks.attack_names(self.attacks)
        if self.eps is not None:
            parse_magnitude(self.eps, "--eps")
        if self.step is not None:
            checks.step_size(self.step)
        if self.norm is not None and self.norm not in NORMS:
            raise UserError(f"--norm={self.norm!r}: use {' or '.join(NORMS)}")
        for option, value, what in (("--n", self.n, "the number of test points"),
                                    ("--batch", self.batch, "the batch size")):  # fmt: skip
            if value is not None:
                checks.whole_number(value, option, 1, what)
        if self.seed is not None:
            checks.whole_number(self.seed, "--seed", 0, "the seed")
            if self.seed > checks.MAX_SEED:
                raise UserError(f"--seed={self.seed}: the seed must be < 2**32")
        if self.eps_sweep is not None:
            checks.sweep_radii(self.eps_sweep)
        checks.noise_sigmas(self.weight_noise)
        checks.whole_number(self.draws, "--draws", 1, "the number of noise draws")
        checks.checkpoint_name(self.checkpoint)
        if self.weights not in (None, *WEIGHTS):
            raise UserError(f"--weights={self.weights!r}: use ema or raw")
        if self.protocol is not None:
            protocols.get(self.protocol)
        if self.subset is not None and self.protocol != "robustbench-imagenet":
            raise UserError("--subset applies to --protocol robustbench-imagenet (its list of images)")
        if (self.model is None) != (self.data is None):
            raise UserError("--model and --data go together (weights from outside ratt need both)")
        if self.config and self.model is None:
            raise UserError(
                "key=value settings apply to --model/--data weights; a ratt run has its own config"
            )
        if self.protocol and (self.eps is not None or self.step is not None or self.norm is not None):
            raise UserError(
                f"--protocol {self.protocol} sets the radii and steps itself: drop --eps, --step and --norm"
            )


def request_of(options: EvalOptions) -> dict[str, Any]:
    """What decides an evaluation's numbers, normalized (``eval.json["request"]``); the batch
    size, device and progress bars are left out (they change speed, not the numbers)."""
    return {
        "attacks": (
            list(protocols.get(options.protocol).attacks())
            if options.protocol
            else checks.attack_names(options.attacks)
        ),
        "n": options.n,
        "seed": options.seed,
        "eps": None if options.eps is None else parse_magnitude(options.eps, "--eps"),
        "step": None if options.step is None else checks.step_size(options.step),
        "norm": options.norm,
        "checkpoint": options.checkpoint,
        "eps_sweep": None if options.eps_sweep is None else checks.sweep_radii(options.eps_sweep),
        "weight_noise": checks.noise_sigmas(options.weight_noise),
        "draws": options.draws,
        "weights": options.weights,
        "protocol": options.protocol,
        "subset": _subset_digest(options),
        "model": options.model,
        "data": options.data,
        "config": list(options.config),
    }


def _subset_digest(options: EvalOptions) -> str | None:
    """sha256 of the image list a ``robustbench-imagenet`` evaluation reads (None: other protocols)."""
    if options.protocol != "robustbench-imagenet":
        return None
    listing = protocols.subset_listing(options.subset)
    return hashlib.sha256(listing.read_bytes()).hexdigest()
