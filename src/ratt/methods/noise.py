"""RAT's weight noise: which weights, which distribution, how large, and the controller that
sets its size from a target loss rise (docs/methods.md, "RAT's switches").

Every distribution is drawn with the same standard deviation, so switching the distribution
changes its shape only:

- ``gaussian``: N(0, s^2);
- ``uniform``: U(-a, a) with a = s sqrt(3);
- ``laplace``: Laplace(0, b) with b = s / sqrt(2), drawn by inverting its CDF.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ratt.config.sections import NOISE_KINDS, NOISE_SCOPES
from ratt.core.weights import perturbable_weights


def draw_noise(
    like: Tensor, std: float | Tensor, kind: str = "gaussian", generator: torch.Generator | None = None
) -> Tensor:
    """Zero-mean noise shaped like ``like`` with standard deviation ``std`` (a float or a
    0-dim tensor) from the distribution ``kind``; same dtype and device as ``like``."""
    if kind == "gaussian":
        unit = torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator)
    elif kind == "uniform":
        u = torch.rand(like.shape, dtype=like.dtype, device=like.device, generator=generator)
        unit = (2 * u - 1) * math.sqrt(3.0)
    elif kind == "laplace":
        # u in (-1/2, 1/2); the Laplace(0, 1/sqrt(2)) quantile is -b sign(u) log(1 - 2|u|)
        u = torch.rand(like.shape, dtype=like.dtype, device=like.device, generator=generator) - 0.5
        tiny = torch.finfo(like.dtype).tiny
        unit = -torch.sign(u) * torch.log((1 - 2 * u.abs()).clamp_min(tiny)) / math.sqrt(2.0)
    else:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    return unit * std


def noisy_weights_of(model: nn.Module, scope: str) -> dict[str, Tensor]:
    """Parameter name -> weight for the weights RAT perturbs while crafting: every convolution
    weight (``conv``, the authors') or every weight with >= 2 dims (``all``: convolutions and
    linear layers)."""
    if scope == "conv":
        return {
            f"{name}.weight": module.weight
            for name, module in model.named_modules()
            if isinstance(module, nn.modules.conv._ConvNd)
        }
    if scope == "all":
        return dict(perturbable_weights(model))
    raise ValueError(f"noise scope must be one of {NOISE_SCOPES}, got {scope!r}")


@dataclass(frozen=True)
class WeightNoise:
    """How RAT perturbs the weights while crafting x_adv.

    Attributes:
        sigma: standard deviation (absolute, or relative to each tensor's RMS).
        kind: ``gaussian``, ``uniform`` or ``laplace`` (same std).
        scope: ``conv`` or ``all`` (see :func:`noisy_weights_of`).
        relative: scale ``sigma`` by each tensor's root-mean-square value.
    """

    sigma: float
    kind: str = "gaussian"
    scope: str = "conv"
    relative: bool = False

    def std_for(self, weight: Tensor) -> float | Tensor:
        """The noise std for one weight tensor."""
        return self.sigma * weight.detach().square().mean().sqrt() if self.relative else self.sigma


@contextlib.contextmanager
def perturbed(model: nn.Module, noise: WeightNoise, backup: dict[str, Tensor]) -> Iterator[None]:
    """Add ``noise`` to the chosen weights of ``model`` in place; restore them bit for bit on exit.

    ``backup`` is a reusable dict of buffers (filled on first use), so no model copy is made
    per step. The default (Gaussian, absolute, convolutions) draws exactly
    ``weight + sigma * randn_like(weight)``, the authors' noise.
    """
    weights = noisy_weights_of(model, noise.scope)
    if noise.sigma <= 0 or not weights:
        yield
        return
    with torch.no_grad():
        for name, weight in weights.items():
            if name not in backup or backup[name].shape != weight.shape:
                backup[name] = torch.empty_like(weight)
            backup[name].copy_(weight)
            if noise.kind == "gaussian" and not noise.relative:
                weight.add_(torch.randn_like(weight), alpha=noise.sigma)
            else:
                weight.add_(draw_noise(weight, noise.std_for(weight), noise.kind))
    try:
        yield
    finally:
        with torch.no_grad():
            for name, weight in weights.items():
                weight.copy_(backup[name])


@contextlib.contextmanager
def _shifted(weights: dict[str, Tensor], noise: dict[str, Tensor], sign: float) -> Iterator[None]:
    """``w + sign * u`` in place for the duration, then ``w`` back bit for bit."""
    saved = {name: w.detach().clone() for name, w in weights.items()}
    with torch.no_grad():
        for name, w in weights.items():
            w.add_(noise[name], alpha=sign)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, w in weights.items():
                w.copy_(saved[name])


def loss_rise(model: nn.Module, x: Tensor, y: Tensor, noise: WeightNoise) -> float:
    """Relative rise of the clean cross-entropy under ``noise``, measured with an antithetic pair:
    ``((L(w + u) + L(w - u)) / 2 - L(w)) / L(w)`` for one draw u (three forwards in eval mode,
    the mode and the weights restored).

    The pair cancels the first-order term ``g . u`` exactly, whose spread (``sigma |g|``) would
    otherwise swamp the second-order rise the controller is after.
    """
    weights = noisy_weights_of(model, noise.scope)
    draw = {name: draw_noise(w, noise.std_for(w), noise.kind) for name, w in weights.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean = F.cross_entropy(model(x), y)
            with _shifted(weights, draw, 1.0):
                plus = F.cross_entropy(model(x), y)
            with _shifted(weights, draw, -1.0):
                minus = F.cross_entropy(model(x), y)
    finally:
        model.train(was_training)
    return float(((plus + minus) / 2 - clean) / clean.clamp_min(torch.finfo(clean.dtype).tiny))


def next_sigma(sigma: float, rise: float, target: float, max_factor: float = 2.0) -> float:
    """One multiplicative step of the noise controller toward a relative loss rise ``target``.

    Near a minimum the expected rise is quadratic in sigma (``E[L(w+u)] - L(w) ~ sigma^2
    tr(H) / 2``), so ``sigma * sqrt(target / rise)`` lands on the target in one step in
    expectation; the factor is clipped to ``[1 / max_factor, max_factor]`` so one noisy
    measurement (or a rise <= 0) cannot move sigma far.
    """
    factor = math.sqrt(target / rise) if rise > 0 else max_factor
    return sigma * min(max(factor, 1.0 / max_factor), max_factor)
