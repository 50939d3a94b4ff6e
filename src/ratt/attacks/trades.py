"""The TRADES training attack: maximize KL(p(x) || p(x')) inside the ball."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ratt.attacks.base import ascent_step, eval_mode, project
from ratt.attacks.threat import ThreatModel


def trades_attack(
    model: nn.Module,
    x: Tensor,
    threat: ThreatModel,
    p_clean: Tensor | None = None,
) -> Tensor:
    """Adversarial inputs for the TRADES KL term (Zhang et al. 2019), crafted in eval mode.

    Starts at ``x + 0.001 * N(0, 1)`` and takes ``threat.steps`` ascent steps on
    ``sum_i KL(p(x_i) || p(x'_i))``. The clean distribution does not change during the
    attack, so it is computed once (or passed in as ``p_clean``).

    Args:
        x: (B, C, H, W) clean inputs in [0, 1].
        p_clean: (B, K) softmax of the model on ``x`` in eval mode, if already known.
    Returns:
        (B, C, H, W) inputs within ``threat.eps`` of ``x`` and in [0, 1].
    """
    with eval_mode(model):
        if p_clean is None:
            with torch.no_grad():
                p_clean = F.softmax(model(x), dim=1)
        x_adv = project(x + 0.001 * torch.randn_like(x), x, threat.norm, threat.eps).detach()
        for _ in range(threat.steps):
            x_adv.requires_grad_(True)
            log_p_adv = F.log_softmax(model(x_adv), dim=1)
            kl = F.kl_div(log_p_adv, p_clean, reduction="sum")
            grad = torch.autograd.grad(kl, x_adv)[0]
            with torch.no_grad():
                x_adv = project(
                    ascent_step(x_adv, grad, threat.norm, threat.step), x, threat.norm, threat.eps
                )
    return x_adv.detach()
