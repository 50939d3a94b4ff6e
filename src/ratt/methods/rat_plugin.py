"""RAT as methods: the Taylor terms (:mod:`ratt.methods.rat`) wired onto TRADES, PGD-AT and
MART, with RAT's switches (docs/methods.md): which Taylor terms, an alpha warm-up, the
crafting noise's distribution, scope and scale, and a controller for its size."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ratt.attacks import trades_attack
from ratt.methods.approximation import monte_carlo_rise
from ratt.methods.base import METHODS, Method, MethodWrapper
from ratt.methods.noise import WeightNoise, loss_rise, next_sigma, perturbed
from ratt.methods.rat import combine, default_soft_c, forward_with_features, taylor_terms
from ratt.methods.standard import MART, PGDAT, TRADES
from ratt.models import find_classifier


def warmed_alpha(alpha: float, epoch: int, warmup: int) -> float:
    """``alpha`` ramped linearly from 0 at epoch 0 to its value at epoch ``warmup`` (0-based
    epochs; ``warmup = 0``: no ramp)."""
    return alpha if warmup <= 0 else alpha * min(1.0, epoch / warmup)


class RATPlugin(MethodWrapper):
    """RAT's Taylor terms on top of a base method's loss.

    The base's cross-entropy term is scaled by ``1 - alpha`` and ``alpha first + alpha/2
    second`` is added (``method.taylor`` picks the terms, see
    :func:`ratt.methods.rat.combine`); the base's other terms are unchanged. With
    ``method.alpha_warmup = E``, alpha ramps from 0 over the first E epochs. Subclasses set
    ``base`` to the base method class; every other hook is the base's.
    """

    base: type[Method]

    def __init__(self, model, threat, config, num_classes) -> None:
        super().__init__(self.base(model, threat, config, num_classes))
        self.classifier: nn.Linear | None = None  # found on the first batch (models.find_classifier)
        self.base_alpha = float(config.alpha)
        self.alpha = warmed_alpha(self.base_alpha, 0, config.alpha_warmup)
        self.taylor = config.taylor
        self.soft_c = default_soft_c(num_classes) if config.soft_c is None else float(config.soft_c)

    def start_epoch(self, epoch: int) -> None:
        self.alpha = warmed_alpha(self.base_alpha, epoch, self.config.alpha_warmup)
        super().start_epoch(epoch)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        if self.classifier is None:
            self.classifier = find_classifier(self.model, x)
        order = self.forward_order
        z_nat, z_adv, h_nat, h_adv = forward_with_features(model, self.classifier, x, x_adv, order)
        ce, rest, parts = self.inner.loss_terms(z_nat, z_adv, y)
        if self.taylor == "none":  # the base objective itself: no Taylor terms to compute
            return ce + rest, parts
        first, second = taylor_terms(
            z_nat, z_adv, h_nat, h_adv, y, self.soft_c,
            second_order=self.config.second_order, distributed=self.distributed,
        )  # fmt: skip
        loss = combine(ce, rest, first, second, self.alpha, self.taylor)
        return loss, {**parts, "taylor1": first.detach(), "taylor2": second.detach()}

    def proxy_objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        """AWP's ascent uses the base objective (no Taylor terms), as the authors do."""
        return self.inner.objective(model, x, x_adv, y)


@METHODS.register("rat_trades")
class RATTrades(RATPlugin):
    """RAT-TRADES: x_adv from the TRADES KL attack on weights carrying noise (``sigma_w``,
    ``noise``, ``noise_on``, ``sigma_relative``; the authors': N(0, 1e-4^2) on every
    convolution), then the RAT loss.

    The noise is added in place and removed after the attack (a reused buffer, no copy of
    the model per step). With ``method.sigma_target = r`` the noise size is set by
    :func:`ratt.methods.noise.next_sigma` every ``sigma_every`` steps so that the clean loss
    rises by ``r`` (relative) under it; its value is logged as ``train_sigma_w``. Under AWP
    the attack runs on the model itself (``awp+`` builds it with ``sigma_w = 0``).

    ``numerics=code``: TRADES' unclamped start, and the train-mode forwards of the authors'
    TRADES-based code (clean, adv, adv, clean, adv, clean, adv, clean; their AWP-based code:
    clean, adv), the repeats without gradient.
    """

    base = TRADES
    code_forwards = "naananan"
    awp_code_forwards = "na"

    def __init__(self, model, threat, config, num_classes) -> None:
        super().__init__(model, threat, config, num_classes)
        self.sigma_w = float(config.sigma_w)
        self.steps_done = 0
        self.approx: list[list[float]] = []  # [first, second, Monte-Carlo rise] per probe this epoch
        self._backup: dict[str, Tensor] = {}

    @property
    def noise(self) -> WeightNoise:
        c = self.config
        return WeightNoise(self.sigma_w, c.noise, c.noise_on, c.sigma_relative)

    def _adapt_sigma(self, x: Tensor, y: Tensor) -> None:
        """Measure the loss rise at the current sigma (three forwards) and move sigma toward
        the target; the rise is averaged over ranks so every process keeps the same sigma."""
        rise = loss_rise(self.model, x, y, self.noise)
        if self.distributed:
            total = torch.tensor([rise], dtype=torch.float64, device=x.device)
            dist.all_reduce(total)
            rise = float(total) / self.shard[1]
        self.sigma_w = next_sigma(self.sigma_w, rise, float(self.config.sigma_target))

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        target, every = self.config.sigma_target, self.config.sigma_every
        if target is not None and self.sigma_w > 0 and self.steps_done % every == 0:
            self._adapt_sigma(x, y)
        self.steps_done += 1
        with perturbed(self.model, self.noise, self._backup):
            clamp = not self.code_numerics
            return trades_attack(self.attack_model, x, self.threat, shard=self.shard, clamp_start=clamp)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        loss, parts = super().objective(model, x, x_adv, y)
        if self.config.sigma_target is not None:
            parts = {**parts, "sigma_w": torch.tensor(self.sigma_w, device=loss.device)}
        every = self.config.approx_every
        if every and "taylor1" in parts and (self.steps_done - 1) % every == 0 and x_adv is not None:
            mc = monte_carlo_rise(
                self.model, x, x_adv, y, float(self.config.beta), self.noise,
                pairs=self.config.approx_samples,
                generator=torch.Generator(device=x.device).manual_seed(self.steps_done),
            )  # fmt: skip
            self.approx.append([float(parts["taylor1"]), float(parts["taylor2"]), mc])
        return loss, parts

    def epoch_logs(self) -> dict[str, Any]:
        logs, self.approx = ({"approx": self.approx} if self.approx else {}), []
        return {**super().epoch_logs(), **logs}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(), "sigma_w": self.sigma_w, "steps_done": self.steps_done,
            "approx": torch.tensor(self.approx, dtype=torch.float64),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.sigma_w = float(state.get("sigma_w", self.sigma_w))
        self.steps_done = int(state.get("steps_done", self.steps_done))
        if "approx" in state:
            self.approx = state["approx"].tolist()


@METHODS.register("rat_pgd_at")
class RATPGDAT(RATPlugin):
    """RAT on PGD-AT: ``(1 - alpha) CE(z_adv, y) + alpha first + alpha/2 second``.

    Needs a clean forward the plain method does not make (for ``p_nat`` and ``g_nat``).
    """

    base = PGDAT


@METHODS.register("rat_mart")
class RATMART(RATPlugin):
    """RAT on MART: the boosted CE is scaled by ``1 - alpha``, the weighted KL is unchanged."""

    base = MART
