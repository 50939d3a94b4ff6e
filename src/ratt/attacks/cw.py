"""CW-inf: PGD on the Carlini-Wagner margin loss (as TRADES, MART and AWP report it)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ratt.attacks.pgd import pgd
from ratt.attacks.threat import ThreatModel


def cw(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: ThreatModel,
    *,
    kappa: float = 50.0,
    generator: torch.Generator | None = None,
    start: Tensor | None = None,
) -> Tensor:
    """CW-inf: PGD maximizing the margin ``min(max_{j != y} z_j - z_y, kappa)`` on logits z.

    This is the "CW" of the adversarial-training literature (TRADES, MART, AWP, RAT tables):
    the CW loss optimized by PGD inside the ball, not the original L2 optimization attack.
    Threat model, start, steps and restarts exactly as in :func:`ratt.attacks.pgd`;
    ``kappa`` (default 50, the TRADES code's value) caps the margin so that points already
    misclassified by a wide margin stop pulling the step. Eval mode, caller's mode restored.

    Args:
        x: (B, C, H, W) clean inputs in [0, 1].
        y: (B,) labels.
        generator: seeds the random start.
        start: given starting points instead of random ones (see :func:`ratt.attacks.pgd`).
    Returns:
        (B, C, H, W) adversarial inputs, within ``threat.eps`` of ``x`` and in [0, 1].

    Example:
        >>> x_adv = cw(model, x, y, ThreatModel(eps=8/255, step=2/255, steps=20))
    """
    return pgd(model, x, y, threat, loss="cw", generator=generator, kappa=kappa, start=start)
