"""Projected gradient descent (Madry et al. 2018) on the CE or CW margin loss, L-inf or L2."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ratt.attacks.base import (
    ascent_step,
    cross_entropy_sum,
    cw_margin_loss,
    eval_mode,
    frozen_parameters,
    project,
    random_start,
)
from ratt.attacks.threat import ThreatModel
from ratt.errors import UserError

LOSS_NAMES = ("ce", "cw")


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: ThreatModel,
    loss: str = "ce",
    *,
    generator: torch.Generator | None = None,
    kappa: float = 50.0,
    shard: tuple[int, int] = (0, 1),
    start: Tensor | None = None,
) -> Tensor:
    """PGD: maximizes the summed cross-entropy (``loss="ce"``) or the CW margin
    ``min(max_{j!=y} z_j - z_y, kappa)`` (``loss="cw"``) over ``threat``'s ball.

    Threat model: ``threat.norm`` ball of radius ``threat.eps`` intersected with [0, 1];
    ``threat.steps`` steps of size ``threat.step`` (signed gradient for L-inf, normalized
    gradient for L2), from a uniform random point of the ball if ``threat.random_start``.
    The last iterate is returned. With ``threat.restarts > 1`` the per-point worst case is
    kept: later restarts attack only the points no earlier restart misclassified.

    Runs in eval mode with parameter gradients off and restores both. ``eps = 0`` returns
    ``x`` unchanged.

    Args:
        model: maps (B, C, H, W) inputs in [0, 1] to (B, K) logits.
        x: (B, C, H, W) clean inputs in [0, 1].
        y: (B,) int64 labels.
        generator: seeds the random starts (reproducible evaluation).
        kappa: CW margin cap (``loss="cw"`` only).
        shard: (rank, world) when ``x`` is ``global_batch[rank::world]`` (data-parallel
            training): the first restart's start is the global batch's, sliced.
        start: (R, B, C, H, W) starting points of the ``R = threat.restarts`` runs (or
            (B, C, H, W) when R = 1), used instead of drawing them from ``generator`` when
            ``threat.random_start`` (see :func:`ratt.attacks.base.ball_noise`); each should lie
            in the ball and in [0, 1] (MART's released start, x + 0.001 N(0, 1), may not:
            the first step projects it). A point's result then depends on its own start only,
            whatever else is in the batch (how ``ratt.eval`` makes results independent of
            the batch size).
    Returns:
        (B, C, H, W) adversarial inputs, within ``threat.eps`` of ``x`` and in [0, 1].

    Example:
        >>> x_adv = pgd(model, x, y, ThreatModel(eps=8/255, step=2/255, steps=20))
    """
    if loss not in LOSS_NAMES:
        raise UserError(f"unknown PGD loss {loss!r}; use one of {', '.join(LOSS_NAMES)}")
    starts = _check_start(start, x, threat.restarts) if threat.random_start else None
    with eval_mode(model), frozen_parameters(model):
        first = None if starts is None else starts[0]
        x_adv = _pgd_run(
            model, x, y, threat, loss=loss, kappa=kappa, generator=generator, shard=shard, start=first
        )
        if threat.restarts == 1:
            return x_adv
        return _restarts(
            model, x, y, threat, x_adv, loss=loss, kappa=kappa, generator=generator, starts=starts
        )


def _restarts(
    model: nn.Module, x: Tensor, y: Tensor, threat: ThreatModel, x_adv: Tensor, *, loss: str, kappa: float,
    generator: torch.Generator | None, starts: Tensor | None,
) -> Tensor:  # fmt: skip
    """Restarts 2..R of :func:`pgd` on the points the earlier runs did not fool; ``x_adv`` (the
    first run's result, (B, C, H, W)) is updated in place with each newly fooling point."""
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y
    for restart in range(1, threat.restarts):
        todo = (~fooled).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        given = None if starts is None else starts[restart][todo]
        candidate = _pgd_run(
            model, x[todo], y[todo], threat, loss=loss, kappa=kappa, generator=generator, start=given
        )
        with torch.no_grad():
            wrong = model(candidate).argmax(1) != y[todo]
        x_adv[todo[wrong]] = candidate[wrong]
        fooled[todo[wrong]] = True
    return x_adv


def _check_start(start: Tensor | None, x: Tensor, restarts: int) -> Tensor | None:
    """``start`` as (R, B, C, H, W) on ``x``'s device and dtype; ``ValueError`` on a wrong shape."""
    if start is None:
        return None
    if start.shape == x.shape and restarts == 1:
        start = start.unsqueeze(0)
    if start.shape != (restarts, *x.shape):
        raise ValueError(f"start has shape {tuple(start.shape)}, expected {(restarts, *x.shape)}")
    return start.to(device=x.device, dtype=x.dtype)


def _pgd_run(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: ThreatModel,
    *,
    loss: str,
    kappa: float,
    generator: torch.Generator | None,
    shard: tuple[int, int] = (0, 1),
    start: Tensor | None = None,
) -> Tensor:
    """One PGD run over the whole batch (from ``start`` when given). The loop does one
    forward, one input-gradient and one fused step+projection; what does not change (the
    L-inf box, the CW label mask) is built once."""
    if threat.eps == 0:
        return x.clone()
    linf = threat.norm == "linf"
    if linf:  # the ball intersected with [0, 1] is a box: one clamp per step
        low, high = (x - threat.eps).clamp_(min=0.0), (x + threat.eps).clamp_(max=1.0)
    if start is not None:
        x_adv = start.clone()
    elif threat.random_start:
        x_adv = random_start(x, threat.norm, threat.eps, generator, shard)
    else:
        x_adv = x.clone()
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    for _ in range(threat.steps):
        x_adv.requires_grad_(True)
        logits = model(x_adv)
        if loss_fn is None:
            loss_fn = cross_entropy_sum if loss == "ce" else cw_margin_loss(y, logits.shape[1], kappa)
        (grad,) = torch.autograd.grad(loss_fn(logits, y), x_adv)
        with torch.no_grad():
            if linf:
                x_adv = x_adv.detach().add_(grad.sign_(), alpha=threat.step).clamp_(low, high)
            else:
                x_adv = project(ascent_step(x_adv.detach(), grad, "l2", threat.step), x, "l2", threat.eps)
    return x_adv.detach()
