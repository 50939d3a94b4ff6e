"""Random directions in weight space with filter normalization (Li et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ratt.core.weights import perturbable_weights

Direction = dict[str, Tensor]
"""Parameter name -> tensor shaped like that parameter."""


def filter_normalize(direction: Tensor, weight: Tensor, eps: float = 1e-10) -> Tensor:
    """Rescale each filter of ``direction`` to the norm of the same filter of ``weight``.

    A filter is one slice along dim 0 (an output channel of a conv, a row of a linear layer).
    Tensors with fewer than 2 dims (biases, BatchNorm) get a zero direction.

    Shapes: (F, ...), (F, ...) -> (F, ...).
    """
    if weight.ndim < 2:
        return torch.zeros_like(weight)
    d_norm = direction.flatten(1).norm(dim=1)
    w_norm = weight.detach().flatten(1).norm(dim=1)
    scale = w_norm / d_norm.clamp_min(eps)
    return direction * scale.view(-1, *([1] * (direction.ndim - 1)))


def random_direction(model: nn.Module, generator: torch.Generator | None = None) -> Direction:
    """A Gaussian direction, filter-normalized, for every weight with >= 2 dims.

    Drawn on the CPU (so a seed gives the same direction on any device), then moved to each
    parameter's device. Parameters with < 2 dims are absent: a landscape leaves them alone.
    """
    out = {}
    for name, p in perturbable_weights(model).items():
        raw = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device, p.dtype)
        out[name] = filter_normalize(raw, p)
    return out


def set_weights(
    model: nn.Module, origin: Direction, directions: list[Direction], coefficients: list[float]
) -> None:
    """Set every parameter named in ``origin`` to ``origin + sum_i c_i d_i`` (in place, no grad)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, w0 in origin.items():
            value = w0.clone()
            for c, d in zip(coefficients, directions, strict=True):
                if c:
                    value.add_(d[name], alpha=c)
            params[name].copy_(value)
