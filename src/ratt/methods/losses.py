"""Loss functions of tensors shared by the methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy(logits: Tensor, y: Tensor, smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of (B, C) logits and (B,) labels, with label smoothing ``smoothing``
    (the target puts ``1 - smoothing + smoothing / C`` on the label, ``smoothing / C`` elsewhere)."""
    if smoothing:
        return F.cross_entropy(logits, y, label_smoothing=smoothing)
    return F.cross_entropy(logits, y)


def kl_batchmean(logits_target: Tensor, logits: Tensor) -> Tensor:
    """``mean_i KL(softmax(logits_target_i) || softmax(logits_i))``; (B, C), (B, C) -> scalar.

    Gradient flows through both arguments (the TRADES robustness term).
    """
    return F.kl_div(
        F.log_softmax(logits, dim=1),
        F.log_softmax(logits_target, dim=1),
        reduction="batchmean",
        log_target=True,
    )


def mart_terms(
    logits_nat: Tensor,
    logits_adv: Tensor,
    y: Tensor,
    tiny: float = 1e-12,
    smoothing: float = 0.0,
    *,
    released: bool = False,
) -> tuple[Tensor, Tensor]:
    """MART's two terms (Wang et al. 2020), batch means.

    - boosted CE: ``CE(z_adv, y) - log(1 - max_{k != y} p_adv,k)``;
    - weighted KL: ``KL(p_nat || p_adv) * (1 - p_nat,y)``.

    As printed (``released=False``) probabilities are clamped to ``[tiny, 1 - tiny]`` so no
    term takes log(0). ``released=True`` uses the released code's constants instead:
    ``log(1.0001 - p + 1e-12)`` in the margin, ``log(p_adv + 1e-12)`` in the KL and the
    weight ``1.0000001 - p_nat,y``. ``smoothing`` is label smoothing of the CE part of the
    boosted CE. Shapes: (B, C), (B, C), (B,) -> two scalars.
    """
    p_adv = F.softmax(logits_adv, dim=1)
    p_nat = F.softmax(logits_nat, dim=1)
    true_mask = F.one_hot(y, logits_adv.shape[1]).bool()
    top_wrong = p_adv.masked_fill(true_mask, -1.0).max(dim=1).values
    true_p = p_nat.gather(1, y[:, None]).squeeze(1)
    ce = cross_entropy(logits_adv, y, smoothing)
    if released:
        margin = torch.log(1.0001 - top_wrong + 1e-12)
        kl = (torch.xlogy(p_nat, p_nat) - p_nat * torch.log(p_adv + 1e-12)).sum(dim=1)
        return ce - margin.mean(), (kl * (1.0000001 - true_p)).mean()
    boosted = ce - torch.log((1 - top_wrong).clamp_min(tiny)).mean()
    log_p_adv = torch.log(p_adv.clamp(tiny, 1.0))
    log_p_nat = torch.log(p_nat.clamp(tiny, 1.0))
    kl = (p_nat * (log_p_nat - log_p_adv)).sum(dim=1)
    return boosted, (kl * (1 - true_p)).mean()
