"""What every attack shares: eval mode with the caller's mode restored, projection, losses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (BN statistics frozen, dropout off) and restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def project(x_adv: Tensor, x: Tensor, norm: str, eps: float) -> Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x`` and onto [0, 1].

    Shapes: (B, ...) -> (B, ...).
    """
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        flat = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / flat).clamp(max=1.0).view(-1, *([1] * (x.ndim - 1)))
    return (x + delta).clamp(0.0, 1.0)


def ascent_step(x_adv: Tensor, grad: Tensor, norm: str, step: float) -> Tensor:
    """One steepest-ascent step: ``step * sign(grad)`` for L-inf, the normalized gradient for L2."""
    if norm == "linf":
        return x_adv + step * grad.sign()
    length = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (grad.ndim - 1)))
    return x_adv + step * grad / length


def random_start(x: Tensor, norm: str, eps: float, generator: torch.Generator | None) -> Tensor:
    """A uniform point of the L-inf ball (or a random point of the L2 ball) around ``x``, in [0, 1]."""
    if norm == "linf":
        noise = torch.rand(x.shape, device=x.device, generator=generator, dtype=x.dtype)
        return (x + (2 * noise - 1) * eps).clamp(0.0, 1.0)
    noise = torch.randn(x.shape, device=x.device, generator=generator, dtype=x.dtype)
    radius = torch.rand(x.shape[0], device=x.device, generator=generator, dtype=x.dtype)
    length = noise.flatten(1).norm(dim=1).clamp_min(1e-12)
    noise = noise * (eps * radius / length).view(-1, *([1] * (x.ndim - 1)))
    return (x + noise).clamp(0.0, 1.0)


def cross_entropy_sum(logits: Tensor, y: Tensor) -> Tensor:
    """Summed cross-entropy: (B, C), (B,) -> scalar; summing keeps each point's gradient unscaled."""
    return F.cross_entropy(logits, y, reduction="sum")


def cw_margin_sum(logits: Tensor, y: Tensor, kappa: float = 50.0) -> Tensor:
    """Summed CW margin ``max_{j != y} z_j - z_y``, clamped at ``kappa`` (the CW-inf loss).

    (B, C), (B,) -> scalar. Maximizing it pushes the best wrong logit above the true one.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return (others.max(dim=1).values - true).clamp(max=kappa).sum()
