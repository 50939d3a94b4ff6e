"""The TRADES training attack: maximize KL(p(x) || p(x')) inside the ball."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ratt.attacks.base import ascent_step, eval_mode, project
from ratt.attacks.threat import ThreatModel


def sharded_randn(x: Tensor, shard: tuple[int, int] = (0, 1)) -> Tensor:
    """N(0, 1) noise like ``x``; for a shard ``x = global[rank::world]`` it is drawn for the
    global batch and sliced, so all ranks keep the one-process random stream."""
    rank, world = shard
    if world == 1:
        return torch.randn_like(x)
    return torch.randn((x.shape[0] * world, *x.shape[1:]), dtype=x.dtype, device=x.device)[rank::world]


def gaussian_start(x: Tensor, threat: ThreatModel, *, clamp: bool, shard: tuple[int, int] = (0, 1)) -> Tensor:
    """The TRADES/MART start ``x + 0.001 * N(0, 1)``, (B, ...) -> (B, ...).

    ``clamp=False`` is the released codes' start (pixels at 0 or 1 may leave [0, 1] until the
    first step's projection); ``clamp=True`` projects it onto the ``threat`` ball and [0, 1].
    """
    start = x + 0.001 * sharded_randn(x, shard)
    return project(start, x, threat.norm, threat.eps) if clamp else start


def trades_attack(
    model: nn.Module,
    x: Tensor,
    threat: ThreatModel,
    p_clean: Tensor | None = None,
    shard: tuple[int, int] = (0, 1),
    *,
    clamp_start: bool = True,
) -> Tensor:
    """Adversarial inputs for the TRADES KL term (Zhang et al. 2019), crafted in eval mode.

    Starts at ``x + 0.001 * N(0, 1)``, projected onto the ball and [0, 1] first
    (``clamp_start=False``: not projected, as the released code) and takes ``threat.steps`` ascent steps on
    ``sum_i KL(p(x_i) || p(x'_i))``, each projected onto the ball and [0, 1]. The clean
    distribution does not change during the attack, so it is computed once (or passed in as
    ``p_clean``).

    Args:
        x: (B, C, H, W) clean inputs in [0, 1].
        p_clean: (B, K) softmax of the model on ``x`` in eval mode, if already known.
        shard: (rank, world) when ``x`` is ``global_batch[rank::world]`` (data-parallel
            training): the start noise is the global batch's, sliced.
        clamp_start: project the start before the first gradient (``method.numerics=paper``,
            the default; False is ``code``).
    Returns:
        (B, C, H, W) inputs within ``threat.eps`` of ``x`` and in [0, 1].
    """
    with eval_mode(model):
        if p_clean is None:
            with torch.no_grad():
                p_clean = F.softmax(model(x), dim=1)
        x_adv = gaussian_start(x, threat, clamp=clamp_start or threat.steps == 0, shard=shard).detach()
        for _ in range(threat.steps):
            x_adv.requires_grad_(True)
            log_p_adv = F.log_softmax(model(x_adv), dim=1)
            kl = F.kl_div(log_p_adv, p_clean, reduction="sum")
            grad = torch.autograd.grad(kl, x_adv)[0]
            with torch.no_grad():
                x_adv = project(
                    ascent_step(x_adv, grad, threat.norm, threat.step), x, threat.norm, threat.eps
                )
    return x_adv.detach()
