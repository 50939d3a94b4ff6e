"""What every flatness measure evaluates: a model's mean loss on fixed data, clean or adversarial."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ratt.attacks import ThreatModel, pgd
from ratt.attacks.base import eval_mode
from ratt.errors import UserError

ADV_MODES = ("none", "fixed", "rerun")

Criterion = Callable[[Tensor, Tensor], Tensor]
"""(outputs (B, C), labels (B,)) -> mean loss over the batch (a scalar)."""


@dataclass
class Objective:
    """Mean loss of ``model`` over ``(x, y)``, on clean or adversarial inputs, in eval mode.

    Attributes:
        model: the classifier; its current weights are the point being measured.
        x: (N, C, H, W) inputs in [0, 1].
        y: (N,) labels.
        adv: ``none`` (clean loss), ``fixed`` (x_adv crafted once at the weights the objective
            was built with and held fixed) or ``rerun`` (PGD re-run at the current weights on
            every evaluation, the same random start each time).
        threat: the attack's threat model (PGD on the cross-entropy); needed unless ``none``.
        batch_size: points per forward pass.
        seed: seeds PGD's random start.
        criterion: mean loss of a batch; cross-entropy by default.
    """

    model: nn.Module
    x: Tensor
    y: Tensor
    adv: str = "none"
    threat: ThreatModel | None = None
    batch_size: int = 512
    seed: int = 0
    criterion: Criterion = F.cross_entropy
    x_fixed: Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.adv not in ADV_MODES:
            raise UserError(f"adv={self.adv!r}: use one of {', '.join(ADV_MODES)}")
        if self.adv != "none" and self.threat is None:
            raise UserError(f"adv={self.adv} needs a threat model")
        if len(self.y) == 0:
            raise UserError("the flatness objective got no data points")
        if self.adv == "fixed" and self.x_fixed is None:
            self.x_fixed = self.attack()

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def attack(self) -> Tensor:
        """PGD inputs at the model's current weights: (N, C, H, W), seeded by ``seed``."""
        assert self.threat is not None
        generator = torch.Generator(device=self.x.device).manual_seed(self.seed)
        parts = [
            pgd(
                self.model,
                self.x[i : i + self.batch_size],
                self.y[i : i + self.batch_size],
                self.threat,
                generator=generator,
            )
            for i in range(0, self.n, self.batch_size)
        ]
        return torch.cat(parts)

    def inputs(self) -> Tensor:
        """The inputs the loss is taken on at the current weights: (N, C, H, W)."""
        if self.adv == "none":
            return self.x
        if self.adv == "fixed":
            assert self.x_fixed is not None
            return self.x_fixed
        return self.attack()

    def frozen(self) -> Objective:
        """This objective with x_adv crafted now and held fixed (``rerun`` -> ``fixed``)."""
        if self.adv != "rerun":
            return self
        return replace(self, adv="fixed", x_fixed=self.attack())

    def evaluate(self) -> tuple[float, float]:
        """(mean loss, accuracy) at the current weights, in eval mode (the mode is restored)."""
        inputs = self.inputs()
        total, correct = 0.0, 0
        with eval_mode(self.model), torch.no_grad():
            for i in range(0, self.n, self.batch_size):
                out = self.model(inputs[i : i + self.batch_size])
                y = self.y[i : i + self.batch_size]
                total += float(self.criterion(out, y)) * len(y)
                if out.ndim == 2 and out.shape[1] > 1:
                    correct += int((out.argmax(1) == y).sum())
        return total / self.n, correct / self.n

    def loss_terms(self) -> Iterator[tuple[float, Tensor]]:
        """(weight, mean loss of one chunk, with graph) pairs whose weighted sum is the mean loss.

        Runs the model in its current mode: callers wanting BN statistics frozen wrap this in
        :func:`ratt.attacks.eval_mode`.
        """
        inputs = self.inputs()
        for i in range(0, self.n, self.batch_size):
            y = self.y[i : i + self.batch_size]
            yield len(y) / self.n, self.criterion(self.model(inputs[i : i + self.batch_size]), y)


def gradient(objective: Objective, params: list[Tensor], create_graph: bool = False) -> list[Tensor]:
    """Gradient of the objective's mean loss w.r.t. ``params`` (zeros for unused ones), eval mode.

    Uses ``torch.autograd.grad``: the parameters' ``.grad`` fields are left untouched.
    """
    total = [torch.zeros_like(p) for p in params]
    with eval_mode(objective.model):
        for weight, loss in objective.loss_terms():
            grads = torch.autograd.grad(loss, params, allow_unused=True, create_graph=create_graph)
            total = [t + weight * g if g is not None else t for t, g in zip(total, grads, strict=True)]
    return total
