"""AutoAttack (Croce & Hein 2020) through ``pyautoattack``, the authors' own package (the one
RobustBench uses).

Three versions, as the reference defines them:

- ``aa`` (standard): APGD-CE, APGD-T (9 target classes), FAB-T (9 targets), Square (5000
  queries), 100 iterations and one restart each;
- ``aa-plus``: APGD-CE and APGD-DLR (5 restarts), FAB (5 restarts), Square, APGD-T, FAB-T;
- ``aa-rand`` (for randomized defences): APGD-CE and APGD-DLR with expectation over 20
  transformations.

Each later stage only sees the points the earlier ones did not break. ratt runs the
reference's ``run_standard_evaluation`` one stage at a time on the points still correct —
the same batches, in the same order, with the same seed as one call over the whole set, so
the per-point outcome is the reference's (a test checks it) — and records how many points
each stage left correct, for the "Square beat the white-box attacks" check. The reference
only warns when a model has fewer classes than its target classes need; ratt refuses
instead (``aa`` and ``aa-plus`` need 10 classes, ``aa-rand`` 3): a silently weaker attack
would print a too-high robust accuracy. Norms: L-inf and L2 (ratt's threat models).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from pyautoattack import AutoAttack
from torch import Tensor, nn

from ratt.attacks.base import eval_mode
from ratt.attacks.threat import ThreatModel, reference_norm
from ratt.errors import UserError

VERSIONS = {"aa": "standard", "aa-plus": "plus", "aa-rand": "rand"}
STAGES = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
    "rand": ("apgd-ce", "apgd-dlr"),
}
MAX_STAGES = max(len(s) for s in STAGES.values())
MIN_CLASSES = {"standard": 10, "plus": 10, "rand": 3}
STANDARD_ITERATIONS = 100  # the reference's; tests lower them to stay fast
STANDARD_SQUARE_QUERIES = 5000


def reference_autoattack(
    model: nn.Module, threat: ThreatModel, version: str = "standard", seed: int = 0, num_classes: int = 10
) -> AutoAttack:
    """The reference's ``AutoAttack`` for ``threat``'s norm and radius, in ``version``.

    Raises:
        UserError: too few classes for the version's targeted stages.
    """
    if num_classes < MIN_CLASSES[version]:
        raise UserError(
            f"AutoAttack ({version}) needs >= {MIN_CLASSES[version]} classes (APGD-T and FAB-T use 9 "
            f"target classes); this model has {num_classes}: use pgdN/cwN instead"
        )
    device = next(iter(model.parameters()), torch.empty(0)).device
    attack = AutoAttack(
        model, norm=reference_norm(threat.norm), eps=threat.eps, version=version, seed=seed, device=device
    )
    attack.verbose = False
    for sub in (attack.apgd, attack.apgd_targeted, attack.fab):
        sub.n_iter = STANDARD_ITERATIONS
    attack.square.n_queries = STANDARD_SQUARE_QUERIES
    return attack


@contextlib.contextmanager
def _quiet_and_own_rng(device: torch.device) -> Iterator[None]:
    """The reference re-seeds torch's generators and logs its own checks: keep the caller's
    generator state and ratt's log clean (ratt runs its own gradient-masking checks)."""
    logger = logging.getLogger("auto-attack")
    level = logger.level
    logger.setLevel(logging.ERROR)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        logger.setLevel(level)


@dataclass
class AutoAttackResult:
    """Adversarial inputs and how many points were still correct after each stage.

    Attributes:
        x_adv: (B, C, H, W) adversarial inputs (the clean input where no stage succeeded).
        remaining: points of the batch correctly classified before the first stage and after
            each stage of the version (``STAGES[version]``).
        stages: the version's stage names.
    """

    x_adv: Tensor
    remaining: list[int]
    stages: tuple[str, ...] = STAGES["standard"]


StageCallback = Callable[[str, int], None]
"""(stage name, points of the batch still correct after it): called after each stage."""


def run_autoattack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: ThreatModel,
    seed: int = 0,
    version: str = "standard",
    *,
    on_stage: StageCallback | None = None,
) -> AutoAttackResult:
    """AutoAttack of ``version`` on one batch, with per-stage counts (see the module doc).

    Args:
        x: (B, C, H, W) clean inputs in [0, 1]; y: (B,) labels.
        seed: the seed of every stage's random choices.
        on_stage: told each stage's name and the points still correct after it (progress
            output: a stage of a 100-point chunk can take minutes on a CPU).
    """
    stages = STAGES[version]
    with eval_mode(model):
        with torch.no_grad():
            logits = model(x)
        robust = logits.argmax(1) == y
        remaining = [int(robust.sum())]
        x_adv = x.clone()
        if threat.eps == 0:
            for stage in stages if on_stage else ():
                on_stage(stage, remaining[0])
            return AutoAttackResult(x_adv, remaining * (len(stages) + 1), stages)
        attack = reference_autoattack(model, threat, version, seed, logits.shape[1])
        with _quiet_and_own_rng(x.device):
            for stage in stages:
                index = robust.nonzero().squeeze(1)
                if len(index):
                    attack.attacks_to_run = [stage]
                    adv, _ = attack.run_standard_evaluation(x[index], y[index], batch_size=len(index))
                    with torch.no_grad():
                        broken = model(adv).argmax(1) != y[index]
                    x_adv[index[broken]] = adv[broken].to(x_adv.dtype)
                    robust[index[broken]] = False
                remaining.append(int(robust.sum()))
                if on_stage:
                    on_stage(stage, remaining[-1])
    return AutoAttackResult(x_adv.detach(), remaining, stages)


def autoattack(
    model: nn.Module, x: Tensor, y: Tensor, threat: ThreatModel, seed: int = 0, version: str = "standard"
) -> Tensor:
    """AutoAttack: the per-point worst case of its stages (standard: APGD-CE, APGD-T, FAB-T,
    Square).

    Maximizes: CE (APGD-CE), the DLR loss (APGD-DLR), the targeted DLR loss towards each of the
    9 most likely wrong classes (APGD-T), minimal-norm (targeted) boundary points (FAB, FAB-T)
    and the margin loss by random search (Square); a point counts as robust only if every
    stage fails on it. Threat model: ``threat.norm`` ball of radius ``threat.eps`` and [0, 1];
    step sizes and iterations are AutoAttack's own (``threat.step``/``steps`` are ignored).
    Eval mode, the caller's mode and random generators restored.

    Args:
        x: (B, C, H, W) clean inputs in [0, 1].
        y: (B,) labels.
        seed: seed of every stage's random choices.
        version: ``standard``, ``plus`` or ``rand``.
    Returns:
        (B, C, H, W) adversarial inputs, within ``threat.eps`` of ``x`` and in [0, 1].

    Example:
        >>> x_adv = autoattack(model, x, y, ThreatModel(eps=8/255))
    """
    return run_autoattack(model, x, y, threat, seed, version).x_adv
