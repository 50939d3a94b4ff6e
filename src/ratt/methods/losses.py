"""Loss functions of tensors shared by the methods."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


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
