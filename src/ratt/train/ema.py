"""An exponential moving average of the weights (the weight averaging of Gowal et al. 2020 and
Rebuffi et al. 2021), ``optim.ema_decay``.

After every optimizer step (and after the method's ``after_step``: AWP's perturbation is
removed by then), every floating-point entry of the model's state dict — parameters and
BatchNorm running statistics alike — moves toward the model's value:

    avg <- r_t avg + (1 - r_t) w,   r_t = min(d, (1 + t) / (10 + t)),

with t the number of updates made before this one. The warm-up ``(1 + t) / (10 + t)`` (0.1,
0.18, 0.25, ... -> 1) keeps the first averages from being dominated by the random initial
weights; after about ``10 d / (1 - d)`` steps the rate is the decay ``d`` itself. Integer
entries (BatchNorm's ``num_batches_tracked``) are copied. The average starts equal to the
model. Its state (the averaged tensors and t) is saved with every full checkpoint, so a
resumed run continues it exactly; every rank keeps its own copy (DDP keeps the weights equal
across ranks, so the averages are too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn


def ema_rate(decay: float, updates: int) -> float:
    """The averaging rate of update number ``updates`` (0-based): ``min(d, (1 + t) / (10 + t))``."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """The running average of ``model``'s state dict (see the module docstring).

    Args:
        model: the model whose weights are averaged (its current state starts the average).
        decay: ``d`` in (0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step toward ``model``'s current state."""
        rate = ema_rate(self.decay, self.updates)
        for key, value in model.state_dict().items():
            average = self.shadow[key]
            if average.is_floating_point():
                average.mul_(rate).add_(value.detach(), alpha=1.0 - rate)
            else:
                average.copy_(value)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """``model`` with the averaged weights for the duration; its own weights back bit for
        bit afterwards."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        """The averaged tensors (on the CPU) and the update count."""
        return {"updates": self.updates, "shadow": {k: v.detach().cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)
