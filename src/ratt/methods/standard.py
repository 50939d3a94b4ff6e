"""The base methods: natural training, PGD-AT (Madry et al. 2018), TRADES (Zhang et al. 2019)
and MART (Wang et al. 2020).

Each adversarial base splits its loss into ``loss_terms(z_nat, z_adv, y) -> (ce, rest, logs)``:
the cross-entropy term RAT scales by ``1 - alpha``, and everything else.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ratt.attacks import gaussian_start, pgd, trades_attack
from ratt.methods.base import METHODS, Method
from ratt.methods.losses import cross_entropy, kl_batchmean, mart_terms
from ratt.methods.passes import ordered_forwards

Logs = dict[str, Tensor]


@METHODS.register("natural")
class Natural(Method):
    """Empirical risk minimization: cross-entropy on clean inputs, no attack; its best
    checkpoint is the one with the best clean validation accuracy."""

    select_by = "clean"

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        loss = cross_entropy(model(x), y, self.config.label_smoothing)
        return loss, {"ce": loss.detach()}


class AdversarialBase(Method):
    """A method whose loss is a function of clean and adversarial logits, forwarded in
    :attr:`forward_order`."""

    def loss_terms(self, z_nat: Tensor | None, z_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Logs]:
        """(cross-entropy term, the other terms, logs) from (B, C) logits and (B,) labels."""
        raise NotImplementedError

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor | None, y: Tensor):
        z_nat, z_adv = ordered_forwards(model, x, x_adv, self.forward_order)
        ce, rest, logs = self.loss_terms(z_nat, z_adv, y)
        return ce + rest, logs


@METHODS.register("pgd_at")
class PGDAT(AdversarialBase):
    """Madry et al. 2018: cross-entropy on PGD examples (random start, crafted in eval mode)."""

    awp_default_gamma = 0.01
    code_forwards = paper_forwards = "a"

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        return pgd(self.attack_model, x, y, self.threat, shard=self.shard)  # global-batch random start

    def loss_terms(self, z_nat, z_adv, y):
        ce = cross_entropy(z_adv, y, self.config.label_smoothing)
        return ce, torch.zeros((), device=ce.device), {"ce_adv": ce.detach()}


@METHODS.register("trades")
class TRADES(AdversarialBase):
    """Zhang et al. 2019: ``CE(f(x), y) + beta * KL(p(x) || p(x_adv))``.

    x_adv maximizes the KL term (eval mode, start x + 0.001 N(0, 1)); the loss forwards x and
    x_adv separately in the trainer's mode. ``numerics=code``: the start is not clamped, and
    the train-mode forwards are the released code's (clean, adversarial, clean; AWP-TRADES:
    adversarial, clean, clean); ``paper``: clamped start, clean then adversarial.
    """

    code_forwards = "nan"
    awp_code_forwards = "ann"

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        clamp = not self.code_numerics
        return trades_attack(self.attack_model, x, self.threat, shard=self.shard, clamp_start=clamp)

    def loss_terms(self, z_nat, z_adv, y):
        ce = cross_entropy(z_nat, y, self.config.label_smoothing)
        kl = kl_batchmean(z_nat, z_adv)
        return ce, self.config.beta * kl, {"ce": ce.detach(), "kl": kl.detach()}


@METHODS.register("mart")
class MART(AdversarialBase):
    """Wang et al. 2020: boosted CE on PGD examples + ``beta`` KL weighted by ``1 - p_y(x)``.

    x_adv from PGD on the cross-entropy (eval mode). ``numerics=code``: PGD starts at
    x + 0.001 N(0, 1) and the loss has the released code's constants
    (:func:`ratt.methods.losses.mart_terms`); ``paper``: uniform start in the ball, log(1 - p).
    """

    def craft(self, x: Tensor, y: Tensor) -> Tensor:
        start = gaussian_start(x, self.threat, clamp=False, shard=self.shard) if self.code_numerics else None
        return pgd(self.attack_model, x, y, self.threat, shard=self.shard, start=start)

    def loss_terms(self, z_nat, z_adv, y):
        boosted_ce, weighted_kl = mart_terms(
            z_nat, z_adv, y, smoothing=self.config.label_smoothing, released=self.code_numerics
        )
        return (
            boosted_ce,
            self.config.beta * weighted_kl,
            {"bce": boosted_ce.detach(), "kl": weighted_kl.detach()},
        )
