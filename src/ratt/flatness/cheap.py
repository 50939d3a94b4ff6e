"""A few flatness numbers cheap enough to log during training."""

from __future__ import annotations

from torch import Tensor, nn

from ratt.attacks import ThreatModel
from ratt.flatness.hessian import hessian_eigenvalues
from ratt.flatness.noise import noise_curve
from ratt.flatness.objective import Objective


def cheap_measures(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    sigma: float = 0.01,
    draws: int = 4,
    hessian_iters: int = 10,
    threat: ThreatModel | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Top Hessian eigenvalue (Lanczos) and loss under weight noise of relative size ``sigma``
    on one small batch, clean (and adversarial with ``threat``: PGD x_adv held fixed).

    Leaves the model's weights, mode, ``.grad`` fields and the global RNG untouched.

    Args:
        x: (B, C, H, W) inputs in [0, 1] (a few hundred points is plenty).
        y: (B,) labels.
    Returns:
        ``{"loss", "hessian_top", "noise_loss", "noise_rise"}`` and, with ``threat``, the same
        keys prefixed ``adv_``.
    """
    out: dict[str, float] = {}
    objectives = {"": Objective(model, x, y, batch_size=len(y), seed=seed)}
    if threat is not None:
        objectives["adv_"] = Objective(model, x, y, "fixed", threat, batch_size=len(y), seed=seed)
    for prefix, objective in objectives.items():
        loss, _ = objective.evaluate()
        top = hessian_eigenvalues(objective, k=1, iters=hessian_iters, seed=seed)["eigenvalues"][0]
        curve = noise_curve(objective, [sigma], draws, seed)
        out[prefix + "loss"] = loss
        out[prefix + "hessian_top"] = float(top)
        out[prefix + "noise_loss"] = curve["loss_mean"][0]
        out[prefix + "noise_rise"] = curve["loss_mean"][0] - loss
    return out


__all__ = ["cheap_measures"]
