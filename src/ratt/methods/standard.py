"""The base methods: natural training, PGD-AT (Madry et al. 2018) and TRADES."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ratt.attacks import pgd, trades_attack
from ratt.methods.base import METHODS, Method
from ratt.methods.losses import kl_batchmean


@METHODS.register("natural")
class Natural(Method):
    """Empirical risk minimization: cross-entropy on clean inputs, no attack."""

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        loss = F.cross_entropy(model(x), y)
        return loss, {"ce": loss.item()}


@METHODS.register("pgd_at")
class PGDAT(Method):
    """Madry et al. 2018: cross-entropy on PGD examples (random start, crafted in eval mode)."""

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        return pgd(self.model, x, y, self.threat)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        loss = F.cross_entropy(model(x_adv), y)
        return loss, {"ce_adv": loss.item()}


@METHODS.register("trades")
class TRADES(Method):
    """Zhang et al. 2019: ``CE(f(x), y) + beta * KL(p(x) || p(x_adv))``.

    x_adv maximizes the KL term (eval mode, start x + 0.001 N(0, 1)); the loss forwards x and
    x_adv separately in the trainer's mode, as the reference implementation does.
    """

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        return trades_attack(self.model, x, self.threat)

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        logits_nat, logits_adv = model(x), model(x_adv)
        ce = F.cross_entropy(logits_nat, y)
        kl = kl_batchmean(logits_nat, logits_adv)
        return ce + self.config.beta * kl, {"ce": ce.item(), "kl": kl.item()}
