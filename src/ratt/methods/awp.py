"""Adversarial weight perturbation (Wu et al., NeurIPS 2020) as a wrapper around any method.

Each step: craft x_adv at the current weights; copy the weights into a proxy model, take
one ascent step on the proxy with the method's objective; per layer (every weight with
>= 2 dims) the difference is rescaled to ``||w|| / ||delta|| * delta``; the model is moved
by ``+gamma * delta``; the method's loss and gradient are computed there; after the
optimizer step the perturbation is removed. Biases and BatchNorm parameters are left
alone, and the proxy has its own BatchNorm statistics, so the model's are untouched by it.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from ratt.core.distributed import average_gradients
from ratt.core.weights import perturbable_weights
from ratt.errors import UserError
from ratt.methods.base import METHODS, Method, MethodWrapper


def scaled_difference(weight: Tensor, proxy_weight: Tensor, tiny: float = 1e-20) -> Tensor:
    """AWP's layer-wise direction ``(w' - w) * ||w|| / ||w' - w||`` (same shape as ``weight``)."""
    diff = proxy_weight - weight
    return diff * (weight.norm() / (diff.norm() + tiny))


class AWP(MethodWrapper):
    """Wrap ``inner`` so each step runs at adversarially perturbed weights.

    Args:
        inner: the method whose objective is evaluated at the perturbed weights.
        gamma: relative perturbation size (0 disables).
        warmup: epochs before the perturbation starts.
        lr: learning rate of the proxy's ascent step.
    """

    def __init__(self, inner: Method, gamma: float, warmup: int, lr: float) -> None:
        super().__init__(inner)
        self.gamma, self.warmup = float(gamma), int(warmup)
        self.proxy = copy.deepcopy(inner.model)
        self.proxy_optimizer = torch.optim.SGD(self.proxy.parameters(), lr=lr)
        self.epoch = 0
        self._saved: dict[str, tuple[Tensor, Tensor]] = {}  # name -> (w before, w perturbed)
        self._perturbed = False

    @property
    def active(self) -> bool:
        return self.gamma > 0 and self.epoch >= self.warmup

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.start_epoch(epoch)

    def weight_direction(self, x: Tensor, x_adv: Tensor | None, y: Tensor) -> dict[str, Tensor]:
        """One ascent step of the proxy from the current weights; the rescaled direction.

        With several processes the proxy's gradients (each the mean over this rank's shard)
        are averaged over ranks before the step, so the direction is the global batch's.
        """
        self.proxy.load_state_dict(self.model.state_dict())
        self.proxy.train()
        loss, _ = self.inner.proxy_objective(self.proxy, x, x_adv, y)
        self.proxy_optimizer.zero_grad(set_to_none=True)
        (-loss).backward()
        average_gradients(list(self.proxy.parameters()), self.shard[1])
        self.proxy_optimizer.step()
        proxy_weights = perturbable_weights(self.proxy)
        with torch.no_grad():
            return {
                name: scaled_difference(w, proxy_weights[name])
                for name, w in perturbable_weights(self.model).items()
            }

    def perturb(self, direction: dict[str, Tensor]) -> None:
        """Move the model by ``gamma * direction``, remembering how to undo it exactly."""
        with torch.no_grad():
            for name, weight in perturbable_weights(self.model).items():
                before, after = self._saved.get(name, (None, None))
                if before is None:
                    before, after = torch.empty_like(weight), torch.empty_like(weight)
                before.copy_(weight)
                weight.add_(direction[name], alpha=self.gamma)
                after.copy_(weight)
                self._saved[name] = (before, after)
        self._perturbed = True

    def restore(self) -> None:
        """Remove the perturbation, keeping the optimizer's update: ``w = w_before + (w - w_perturbed)``.

        Bit-exact when the optimizer did not move the weights.
        """
        if not self._perturbed:
            return
        with torch.no_grad():
            for name, weight in perturbable_weights(self.model).items():
                before, after = self._saved[name]
                weight.sub_(after).add_(before)
        self._perturbed = False

    def loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x_adv = self.inner.craft(x, y)  # at the unperturbed weights
        if self.active:
            self.perturb(self.weight_direction(x, x_adv, y))
        return self.inner.objective(self.train_model, x, x_adv, y)

    def after_step(self) -> None:
        self.restore()
        self.inner.after_step()

    def state_dict(self) -> dict[str, Any]:
        return {"proxy_optimizer": self.proxy_optimizer.state_dict(), "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.proxy_optimizer.load_state_dict(state["proxy_optimizer"])
        self.inner.load_state_dict(state["inner"])


@METHODS.register_pattern(r"awp\+(.+)", "awp+METHOD")
def awp_family(inner_name: str):
    """``awp+NAME``: AWP around the registered method NAME (not itself an ``awp+`` method)."""
    if inner_name.startswith("awp+"):
        raise UserError(f"method awp+{inner_name}: AWP wraps a base method once (write awp+{inner_name[4:]})")
    build_inner = METHODS.get(inner_name)

    def build(model: nn.Module, threat, config, num_classes: int) -> AWP:
        # docs/methods.md: under AWP, x_adv is crafted on the model itself (no RAT weight noise).
        inner = build_inner(model, threat, replace(config, sigma_w=0.0), num_classes)
        inner.under_awp = True  # numerics=code: the passes of the method's released AWP variant
        gamma = config.awp_gamma if config.awp_gamma is not None else inner.awp_default_gamma
        return AWP(inner, gamma, config.awp_warmup, config.awp_lr)

    return build
