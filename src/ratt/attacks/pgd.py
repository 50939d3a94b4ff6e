"""Projected gradient descent (Madry et al. 2018) on the CE or CW margin loss, L-inf or L2."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ratt.attacks.base import (
    ascent_step,
    cross_entropy_sum,
    cw_margin_sum,
    eval_mode,
    project,
    random_start,
)
from ratt.attacks.threat import ThreatModel

LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "ce": cross_entropy_sum,
    "cw": cw_margin_sum,
}


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: ThreatModel,
    loss: str = "ce",
    generator: torch.Generator | None = None,
) -> Tensor:
    """PGD maximizing ``loss`` (``"ce"`` or ``"cw"``) inside ``threat``'s ball.

    Runs in eval mode and restores the model's mode. With ``threat.restarts > 1`` the
    per-point worst case is kept: a point stays attacked once any restart misclassifies it.

    Args:
        x: (B, C, H, W) clean inputs in [0, 1].
        y: (B,) labels.
        generator: seeds the random start (for reproducible evaluation).
    Returns:
        (B, C, H, W) adversarial inputs, within ``threat.eps`` of ``x`` and in [0, 1].

    Example:
        >>> x_adv = pgd(model, x, y, ThreatModel(eps=8/255, step=2/255, steps=20))
    """
    loss_fn = LOSSES[loss]
    with eval_mode(model):
        best = x.clone()
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for restart in range(threat.restarts):
            x_adv = _pgd_run(model, x, y, threat, loss_fn, generator)
            if threat.restarts == 1:
                return x_adv
            with torch.no_grad():
                wrong = model(x_adv).argmax(1) != y
            take = wrong & ~fooled if restart else torch.ones_like(fooled)
            best[take] = x_adv[take]
            fooled |= wrong
        return best


def _pgd_run(model, x, y, threat, loss_fn, generator) -> Tensor:
    if threat.random_start and threat.eps > 0:
        x_adv = random_start(x, threat.norm, threat.eps, generator)
    else:
        x_adv = x.clone()
    for _ in range(threat.steps):
        x_adv.requires_grad_(True)
        grad = torch.autograd.grad(loss_fn(model(x_adv), y), x_adv)[0]
        with torch.no_grad():
            x_adv = project(ascent_step(x_adv, grad, threat.norm, threat.step), x, threat.norm, threat.eps)
    return x_adv.detach()


def fgsm(model: nn.Module, x: Tensor, y: Tensor, threat: ThreatModel) -> Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ``eps`` from x.

    Shapes as in :func:`pgd`.
    """
    one_step = ThreatModel(threat.norm, threat.eps, threat.eps, 1, random_start=False)
    return pgd(model, x, y, one_step)
