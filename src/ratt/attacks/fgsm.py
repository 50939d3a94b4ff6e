"""Fast gradient sign method (Goodfellow et al. 2015)."""

from __future__ import annotations

from torch import Tensor, nn

from ratt.attacks.pgd import pgd
from ratt.attacks.threat import ThreatModel


def fgsm(model: nn.Module, x: Tensor, y: Tensor, threat: ThreatModel) -> Tensor:
    """FGSM: one ascent step of size ``threat.eps`` on the cross-entropy, from ``x``.

    Threat model: ``threat.norm`` ball of radius ``threat.eps`` and [0, 1]; for L-inf the
    step is ``eps * sign(grad)``, for L2 it is ``eps * grad / ||grad||`` (FGM). ``step``,
    ``steps`` and ``random_start`` of ``threat`` are ignored. Eval mode, caller's mode restored.

    Args:
        x: (B, C, H, W) clean inputs in [0, 1].
        y: (B,) labels.
    Returns:
        (B, C, H, W) adversarial inputs.

    Example:
        >>> x_adv = fgsm(model, x, y, ThreatModel(eps=8/255))
    """
    one_step = ThreatModel(threat.norm, threat.eps, threat.eps, 1, random_start=False)
    return pgd(model, x, y, one_step)
