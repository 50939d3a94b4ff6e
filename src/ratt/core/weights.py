"""Which weights are perturbed, and random noise on them.

One rule shared by AWP, the Monte-Carlo RAT objective, the flatness measures and the
weight-noise evaluation: every parameter with at least two dimensions (convolution and linear
weights) is perturbable; biases and BatchNorm parameters (1-dim) are left alone, as Li et al.
(2018) and Wu et al. (2020) specify.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


def perturbable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter for every parameter of ``model`` with >= 2 dims, in registration order."""
    return {name: p for name, p in model.named_parameters() if p.ndim >= 2}


def weight_noise(
    weight: Tensor, sigma: float, relative: bool, generator: torch.Generator | None = None
) -> Tensor:
    """Gaussian noise for one weight tensor: std ``sigma`` (absolute) or ``sigma * rms(weight)``.

    With ``relative``, ``E||u||^2 = sigma^2 ||w||^2``. Same shape, dtype and device as ``weight``.
    """
    scale = sigma * weight.detach().square().mean().sqrt() if relative else sigma
    noise = torch.randn(weight.shape, device=weight.device, dtype=weight.dtype, generator=generator)
    return noise * scale


def set_noisy_weights(
    params: dict[str, nn.Parameter],
    origin: dict[str, Tensor],
    sigma: float,
    generator: torch.Generator | None = None,
) -> None:
    """Set every ``params[name]`` to ``origin[name] + u`` with relative noise of size ``sigma``
    (see :func:`weight_noise`), drawn from ``generator`` in the order of ``origin``."""
    with torch.no_grad():
        for name, weight in origin.items():
            params[name].copy_(weight + weight_noise(weight, sigma, True, generator))


@contextlib.contextmanager
def restored(model: nn.Module) -> Iterator[nn.Module]:
    """Snapshot the model's parameters, buffers and mode; put them back bit for bit on exit."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        yield model
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
