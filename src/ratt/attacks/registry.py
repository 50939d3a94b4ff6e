"""The evaluation attacks by name: ``clean``, ``fgsm``, ``pgdN``, ``cwN`` (N steps) and ``aa``.

``ATTACKS.get(name)`` returns an :class:`Attack`; ``ratt list``, ``ratt eval``, config
validation and ``ratt report`` all read this one registry, so a new attack registered here
is runnable, listed, validated and reported everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ratt.attacks.autoattack import STAGES, VERSIONS, StageCallback, run_autoattack
from ratt.attacks.cw import cw
from ratt.attacks.fgsm import fgsm
from ratt.attacks.pgd import pgd
from ratt.attacks.threat import ThreatModel
from ratt.errors import UserError
from ratt.registry import Registry

Runner = Callable[..., "tuple[Tensor, list[int] | None]"]
"""``(model, x, y, threat, *, generator, seed, start, on_stage) -> (x_adv, AutoAttack's per-stage
counts or None)``; ``start`` (R, B, C, H, W) or None: given random starts (``random_start``
attacks only); ``on_stage``: AutoAttack's per-stage progress callback (others ignore it)."""

KIND_ORDER = ("clean", "fgsm", "pgd", "cw", "aa")


@dataclass(frozen=True)
class Attack:
    """One evaluation attack.

    Attributes:
        name: what the user types (``pgd20``).
        kind: ``clean``, ``fgsm``, ``pgd``, ``cw`` or ``aa``.
        steps: iterations (the step count of ``pgdN``/``cwN``; 1 for fgsm, 0 otherwise).
        label: the column title in tables and reports (``PGD-20``).
        runner: computes the adversarial batch (see :data:`Runner`).
        random_start: starts from random points of the ball (``pgdN``, ``cwN``), which
            :meth:`run` accepts precomputed as ``start``.
        stages: AutoAttack's stages, in order (empty for other attacks).
        order: place among the attacks of one kind and step count (AutoAttack's versions).
    """

    name: str
    kind: str
    steps: int
    label: str
    runner: Runner
    random_start: bool = False
    stages: tuple[str, ...] = ()
    order: int = 0

    def run(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        threat: ThreatModel,
        *,
        generator: torch.Generator | None = None,
        seed: int = 0,
        start: Tensor | None = None,
        on_stage: StageCallback | None = None,
    ) -> tuple[Tensor, list[int] | None]:
        """Adversarial (or clean) inputs (B, C, H, W) for one batch, and AutoAttack's stage
        counts (None for other attacks). ``start``: the random starts, (R, B, C, H, W) for
        ``R = threat.restarts``, instead of draws from ``generator`` (``random_start`` attacks);
        ``on_stage``: called after each AutoAttack stage with its name and the points left."""
        return self.runner(
            model, x, y, threat, generator=generator, seed=seed, start=start, on_stage=on_stage
        )

    @property
    def sort_key(self) -> tuple[int, int, int, str]:
        """Column order: clean, fgsm, pgd by steps, cw by steps, aa (standard, plus, rand)."""
        return (KIND_ORDER.index(self.kind), self.steps, self.order, self.name)


def _clean(model, x, y, threat, *, generator, seed, start=None, on_stage=None):
    return x, None


def _fgsm(model, x, y, threat, *, generator, seed, start=None, on_stage=None):
    return fgsm(model, x, y, threat), None


def _autoattack(version: str) -> Runner:
    def runner(model, x, y, threat, *, generator, seed, start=None, on_stage=None):
        result = run_autoattack(model, x, y, threat, seed, version, on_stage=on_stage)
        return result.x_adv, result.remaining

    return runner


def _iterative(attack: Callable[..., Tensor], steps: int) -> Runner:
    def runner(model, x, y, threat, *, generator, seed, start=None, on_stage=None):
        return attack(model, x, y, threat.with_steps(steps), generator=generator, start=start), None

    return runner


ATTACKS: Registry[Attack] = Registry("attack")
ATTACKS.register("clean")(Attack("clean", "clean", 0, "clean", _clean))
ATTACKS.register("fgsm")(Attack("fgsm", "fgsm", 1, "FGSM", _fgsm))
for _order, (_name, _label) in enumerate(
    (("aa", "AutoAttack"), ("aa-plus", "AutoAttack+"), ("aa-rand", "AutoAttack-rand"))
):
    _version = VERSIONS[_name]
    ATTACKS.register(_name)(
        Attack(_name, "aa", 0, _label, _autoattack(_version), stages=STAGES[_version], order=_order)
    )


def _steps(name: str, digits: str) -> int:
    steps = int(digits)
    if steps < 1:
        raise UserError(f"attack {name!r} needs at least one step")
    return steps


@ATTACKS.register_pattern(r"pgd(\d+)", "pgdN")
def _pgd_family(digits: str) -> Attack:
    steps = _steps(f"pgd{digits}", digits)
    return Attack(f"pgd{digits}", "pgd", steps, f"PGD-{steps}", _iterative(pgd, steps), True)


@ATTACKS.register_pattern(r"cw(\d+)", "cwN")
def _cw_family(digits: str) -> Attack:
    steps = _steps(f"cw{digits}", digits)
    return Attack(f"cw{digits}", "cw", steps, f"CW-{steps}", _iterative(cw, steps), True)


def parse_attack(name: str) -> Attack:
    """The attack called ``name`` (case and surrounding spaces ignored); ``UserError`` if none."""
    return ATTACKS.get(name.strip().lower())
