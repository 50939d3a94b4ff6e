"""AutoAttack (Croce & Hein 2020), standard version, through torchattacks.

torchattacks' ``AutoAttack(version="standard")`` chains APGD-CE, APGD-T, FAB-T and Square
(each later attack only sees the points the earlier ones did not break), but builds its
sub-attacks with torchattacks' defaults of 10 iterations and ``n_classes - 1`` target
classes. The standard protocol of the reference implementation (fra31/auto-attack,
``version='standard'``) is: 100 iterations and 1 restart for APGD-CE, APGD-T and FAB-T;
9 target classes for APGD-T and FAB-T whatever the number of classes; Square with 5000
queries, ``p_init = 0.8`` and the un-rescaled schedule. :func:`standard_autoattack` sets
exactly those values on torchattacks' object (and checks them), so "aa" in ratt means the
standard AutoAttack. With fewer than 10 classes there are fewer than 9 target classes and
the standard protocol cannot be run: that is a ``UserError``, not a silently weaker attack.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchattacks
from torch import Tensor, nn

from ratt.attacks.base import eval_mode
from ratt.attacks.threat import ThreatModel
from ratt.errors import UserError

STANDARD_ITERATIONS = 100
STANDARD_TARGET_CLASSES = 9
STANDARD_SQUARE_QUERIES = 5000
STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")
_NORMS = {"linf": "Linf", "l2": "L2"}


def standard_autoattack(
    model: nn.Module, threat: ThreatModel, num_classes: int, seed: int = 0
) -> torchattacks.AutoAttack:
    """torchattacks' standard AutoAttack, configured to the reference protocol (see module doc).

    Raises:
        UserError: fewer than 10 classes (APGD-T/FAB-T need 9 target classes).
    """
    if num_classes < STANDARD_TARGET_CLASSES + 1:
        raise UserError(
            f"standard AutoAttack needs >= {STANDARD_TARGET_CLASSES + 1} classes (9 target classes for "
            f"APGD-T and FAB-T); this model has {num_classes}: use pgdN/cwN instead of aa"
        )
    # n_classes is only used by torchattacks to set n_target_classes = n_classes - 1; the
    # targets are the top-2..top-10 logits, which exist for any num_classes >= 10.
    attack = torchattacks.AutoAttack(
        model,
        norm=_NORMS[threat.norm],
        eps=threat.eps,
        version="standard",
        n_classes=STANDARD_TARGET_CLASSES + 1,
        seed=seed,
    )
    apgd, apgd_t, fab_t, square = attack._autoattack.attacks
    for sub in (apgd, apgd_t, fab_t):
        sub.steps = STANDARD_ITERATIONS
        sub.n_restarts = 1
    square.n_queries = STANDARD_SQUARE_QUERIES
    square.p_init = 0.8
    square.rescale_schedule = False
    square.n_restarts = 1
    checks = [
        type(apgd).__name__ == "APGD" and apgd.loss == "ce",
        type(apgd_t).__name__ == "APGDT" and apgd_t.n_target_classes == STANDARD_TARGET_CLASSES,
        type(fab_t).__name__ == "FAB" and fab_t.multi_targeted,
        fab_t.n_target_classes == STANDARD_TARGET_CLASSES,
        type(square).__name__ == "Square" and square.loss == "margin",
    ]
    if not all(checks):  # a torchattacks release changed AutoAttack's composition
        raise RuntimeError(f"torchattacks {torchattacks.__version__}: unexpected AutoAttack composition")
    return attack


@dataclass
class AutoAttackResult:
    """Adversarial inputs and how many points were still correct after each stage.

    Attributes:
        x_adv: (B, C, H, W) adversarial inputs (clean input where no stage succeeded).
        remaining: points of the batch still correctly classified before the first stage and
            after each of ``STAGES`` (length 5; fewer stages ran when none were left).
    """

    x_adv: Tensor
    remaining: list[int]


def run_autoattack(
    model: nn.Module, x: Tensor, y: Tensor, threat: ThreatModel, seed: int = 0
) -> AutoAttackResult:
    """Standard AutoAttack on one batch, with per-stage counts (for the Square check).

    torchattacks re-seeds torch's global generator with ``seed``; the caller's generator
    state is saved and restored around the call.
    """
    with eval_mode(model):
        if threat.eps == 0:
            with torch.no_grad():
                correct = int((model(x).argmax(1) == y).sum())
            return AutoAttackResult(x.clone(), [correct] * (len(STAGES) + 1))
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        attack = standard_autoattack(model, threat, num_classes, seed)
        chain = attack._autoattack
        chain._accumulate_multi_atk_records = True
        chain._multi_atk_records = [0.0] * (len(STAGES) + 1)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            x_adv = attack(x, y)
        with torch.no_grad():
            clean_correct = int((model(x).argmax(1) == y).sum())
        # torchattacks' first record is the batch size; the standard count starts from the
        # points the clean model gets right (APGD leaves misclassified points unchanged).
        remaining = [clean_correct] + [int(v) for v in chain._multi_atk_records[1:]]
    return AutoAttackResult(x_adv.detach(), remaining)


def autoattack(model: nn.Module, x: Tensor, y: Tensor, threat: ThreatModel, seed: int = 0) -> Tensor:
    """Standard AutoAttack: the per-point worst case of APGD-CE, APGD-T, FAB-T and Square.

    Maximizes: CE (APGD-CE), the targeted DLR loss towards each of the 9 most likely wrong
    classes (APGD-T), minimal-norm targeted boundary points (FAB-T) and the margin loss by
    random search (Square); a point counts as robust only if every stage fails on it.
    Threat model: ``threat.norm`` ball of radius ``threat.eps`` and [0, 1]; the step sizes and
    iteration counts are AutoAttack's own (``threat.step``/``steps`` are ignored). Needs a
    model with >= 10 classes (``UserError`` otherwise). Eval mode, caller's mode restored.

    Args:
        x: (B, C, H, W) clean inputs in [0, 1].
        y: (B,) labels.
        seed: seed of every stage's random choices.
    Returns:
        (B, C, H, W) adversarial inputs, within ``threat.eps`` of ``x`` and in [0, 1].

    Example:
        >>> x_adv = autoattack(model, x, y, ThreatModel(eps=8/255))
    """
    return run_autoattack(model, x, y, threat, seed).x_adv
