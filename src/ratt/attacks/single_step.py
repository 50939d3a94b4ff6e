"""The single-step training attacks of fast adversarial training: FGSM from a start point.

FGSM (Goodfellow et al. 2015; zero start, step eps), FGSM-RS (Wong et al. 2020; uniform
start in the eps-ball, step 1.25 eps, projected back) and N-FGSM (de Jorge et al. 2022;
uniform noise U(-k eps, k eps), step eps, *not* projected back to the eps-ball) are one
function with three settings, :func:`single_step`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ratt.attacks.base import cross_entropy_sum, eval_mode, frozen_parameters


def uniform_noise(
    x: Tensor, radius: float, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
) -> Tensor:
    """U(-radius, radius) noise shaped like ``x`` (no clamping). ``shard = (rank, world)``:
    drawn for the global batch and sliced, as :func:`ratt.attacks.base.random_start`."""
    rank, world = shard
    shape = (x.shape[0] * world, *x.shape[1:])
    unit = torch.rand(shape, device=x.device, generator=generator, dtype=x.dtype)[rank::world]
    return (2 * unit - 1) * radius


def single_step(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step: float,
    start_radius: float = 0.0,
    project: bool = True,
    generator: torch.Generator | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Tensor:
    """One signed-gradient step on the summed cross-entropy from a random start (L-inf).

    ``x0 = clip01(x + eta)``, ``eta ~ U(-start_radius, start_radius)`` (0: ``x0 = x``);
    ``x1 = x0 + step * sign(grad_x CE(f(x0), y))``; then, with ``project``, ``x1`` is clipped
    to the eps-ball around ``x`` (FGSM, FGSM-RS); always to [0, 1]. Eval mode, parameter
    gradients off, both restored.

    Args:
        x: (B, C, H, W) clean inputs in [0, 1]; y: (B,) labels.
        eps: the ball's radius (used only when ``project``).
        step: the step size, in pixel units.
        start_radius: the half-width of the uniform start noise.
    Returns:
        (B, C, H, W) adversarial inputs in [0, 1] (within ``eps`` of ``x`` when ``project``).
    """
    start = x.clone()
    if start_radius > 0:
        start = (x + uniform_noise(x, start_radius, generator, shard)).clamp_(0.0, 1.0)
    with eval_mode(model), frozen_parameters(model):
        start.requires_grad_(True)
        (grad,) = torch.autograd.grad(cross_entropy_sum(model(start), y), start)
    with torch.no_grad():
        x_adv = start.detach().add_(grad.sign(), alpha=step)
        if project:
            x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
        return x_adv.clamp_(0.0, 1.0)
