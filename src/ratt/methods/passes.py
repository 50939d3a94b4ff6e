"""The training forwards a loss makes, in the order a released implementation makes them.

The released TRADES code forwards the clean batch twice in train mode (once for the
cross-entropy, once for the KL target), the authors' RAT-TRADES code eight times in all. In
train mode BatchNorm normalizes with the batch's own statistics, so a repeated forward of
the same batch returns the same logits (for a model without dropout); what the repeats do
change is BatchNorm's running statistics, hence every evaluation-mode prediction later.
:func:`ordered_forwards` makes the first forward of each input with gradient and the
repeats without, in the code's order, so the running statistics follow the code's exactly
while the loss and its gradient are those of one forward per input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CLEAN, ADVERSARIAL = "n", "a"


def ordered_forwards(
    model: nn.Module, x: Tensor, x_adv: Tensor | None, order: str
) -> tuple[Tensor | None, Tensor | None]:
    """Forward ``x`` (``n``) and ``x_adv`` (``a``) in ``order``, e.g. ``"nan"``.

    The first forward of each input carries gradient and its (B, K) logits are returned
    (None for an input ``order`` does not name); every repeat runs under ``torch.no_grad``
    and only moves BatchNorm's running statistics (in the model's current mode).
    """
    logits: dict[str, Tensor] = {}
    for kind in order:
        inputs = x if kind == CLEAN else x_adv
        if kind in logits:
            with torch.no_grad():
                model(inputs)
        else:
            logits[kind] = model(inputs)
    return logits.get(CLEAN), logits.get(ADVERSARIAL)
