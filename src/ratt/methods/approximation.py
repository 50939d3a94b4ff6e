"""How good is RAT's approximation? Every ``method.approx_every`` steps of ``rat_trades``, the
Taylor terms of the current batch beside a Monte-Carlo estimate of what they stand for,
``E_u[L(w + u)] - L(w)`` for the TRADES loss L and the crafting noise u (same distribution,
scope and sigma), measured on the same batch.

The estimate uses ``method.approx_samples`` antithetic pairs (u, -u): their mean
``(L(w+u) + L(w-u)) / 2 - L(w)`` is unbiased for ``E_u[L(w+u)] - L(w)`` (the odd terms of the
expansion vanish in expectation) and cancels the first-order term draw by draw. It is computed
in float64 on a copy of the model in eval mode (at the authors' sigma_w = 1e-4 the rise is far
below float32's resolution of a loss near 1). The pairs ``[first, second, mc]`` of an epoch go
into its ``metrics.jsonl`` row as ``approx``; their correlation over training is what
``experiments/approximation.py`` reports.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ratt.methods.losses import kl_batchmean
from ratt.methods.noise import WeightNoise, draw_noise, noisy_weights_of


def trades_loss(model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    """``CE(f(x), y) + beta KL(p(x) || p(x_adv))`` (scalar)."""
    z_nat, z_adv = model(x), model(x_adv)
    return torch.nn.functional.cross_entropy(z_nat, y) + beta * kl_batchmean(z_nat, z_adv)


@torch.no_grad()
def monte_carlo_rise(
    model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, beta: float, noise: WeightNoise, *, pairs: int,
    generator: torch.Generator | None = None,
) -> float:  # fmt: skip
    """``E_u[L(w+u)] - L(w)`` by ``pairs`` antithetic pairs, in float64 on a copy of ``model``."""
    twin = copy.deepcopy(model).double().eval()
    x64, adv64 = x.double(), x_adv.double()
    clean = trades_loss(twin, x64, adv64, y, beta)
    weights = noisy_weights_of(twin, noise.scope)
    origin = {name: w.detach().clone() for name, w in weights.items()}
    total = 0.0
    for _ in range(pairs):
        draw = {name: draw_noise(w, noise.std_for(w), noise.kind, generator) for name, w in origin.items()}
        for sign in (1.0, -1.0):
            for name, w in weights.items():
                w.copy_(origin[name] + sign * draw[name])
            total += float(trades_loss(twin, x64, adv64, y, beta))
    return total / (2 * pairs) - float(clean)
