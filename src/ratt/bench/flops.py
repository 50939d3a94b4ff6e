"""The FLOP cost model of docs/scaling.md: forward FLOPs of a model and passes per training step.

Forward FLOPs count every ``Conv2d`` and ``Linear`` (2 FLOPs per multiply-add; BatchNorm,
ReLU, pooling and the loss are ignored), read from forward hooks on one input of the given
shape. The model is built and run on PyTorch's ``meta`` device, so WRN-34-10 costs no
arithmetic to count.

The passes per step of each method are :mod:`ratt.methods.cost` (re-exported here).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ratt.methods.cost import StepPasses, has_flop_model, step_passes
from ratt.models import create_model

__all__ = [
    "StepPasses", "forward_flops", "has_flop_model", "model_forward_flops", "step_flops", "step_passes",
]  # fmt: skip


def forward_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-add) of the convolutions and linear layers for one input of ``shape``.

    Runs one forward of ``torch.zeros(1, *shape)`` on the model's device in eval mode (a
    ``meta`` model computes nothing); the model's mode is restored.
    """
    total = 0

    def conv(module: nn.Conv2d, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += 2 * out.numel() * (module.in_channels // module.groups) * kh * kw

    def linear(module: nn.Linear, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * out.numel() * module.in_features

    handles = [
        module.register_forward_hook(conv if isinstance(module, nn.Conv2d) else linear)
        for module in model.modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    device = next(model.parameters()).device
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


@functools.lru_cache(maxsize=32)
def model_forward_flops(name: str, num_classes: int, shape: tuple[int, int, int]) -> int:
    """:func:`forward_flops` of the registered architecture ``name`` (built on ``meta``)."""
    with torch.device("meta"):
        model = create_model(name, num_classes, shape)
    return forward_flops(model, shape)


def step_flops(
    model: str, method: str, batch: int, attack_steps: int, *, shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10, mc_samples: int = 2, numerics: str = "paper",
) -> int:  # fmt: skip
    """FLOPs of one training step of ``method`` on ``batch`` inputs of the registered ``model``."""
    units = step_passes(method, attack_steps, mc_samples, numerics=numerics).units
    return units * model_forward_flops(model, num_classes, tuple(shape)) * int(batch)
