"""Adversarial weight perturbation sharpness: the worst-case loss increase within a relative
radius per layer, ``max_{||delta_l|| <= rho ||w_l||} L(w + delta) - L(w)``, as AWP measures it."""

from __future__ import annotations

import torch

from ratt.core.weights import perturbable_weights, restored
from ratt.flatness.objective import Objective, gradient


def awp_sharpness(objective: Objective, rho: float, steps: int = 5, step_size: float | None = None) -> dict:
    """Projected gradient ascent on the weights with a per-layer relative radius.

    Every weight with >= 2 dims gets a perturbation delta_l, started at 0; each step moves it
    by ``step_size * ||w_l||`` along the normalized gradient of layer l and projects it back
    onto ``||delta_l|| <= rho ||w_l||``. Biases and BatchNorm are not perturbed. The loss is
    the objective's (so with ``adv=fixed`` x_adv stays the one crafted at w, as in AWP; with
    ``rerun`` it is re-crafted at every iterate). The largest loss over the iterates is kept.

    Args:
        rho: relative radius per layer (AWP's gamma; e.g. 0.005).
        steps: ascent steps.
        step_size: relative step per layer; ``2 * rho / steps`` when None.
    Returns:
        ``{"rho", "steps", "loss", "acc", "loss_perturbed", "acc_perturbed", "increase"}``.
    """
    step_size = 2 * rho / max(steps, 1) if step_size is None else step_size
    model = objective.model
    base_loss, base_acc = objective.evaluate()
    with restored(model):
        params = perturbable_weights(model)
        names = list(params)
        origin = [params[n].detach().clone() for n in names]
        norms = [w.norm() for w in origin]
        delta = [torch.zeros_like(w) for w in origin]
        best_loss, best_acc = base_loss, base_acc
        for step in range(steps + 1):
            with torch.no_grad():
                for n, w, d in zip(names, origin, delta, strict=True):
                    params[n].copy_(w + d)
            if step:
                loss, acc = objective.evaluate()
                if loss > best_loss:
                    best_loss, best_acc = loss, acc
            if step == steps:
                break
            grads = gradient(objective, [params[n] for n in names])
            with torch.no_grad():
                for i, g in enumerate(grads):
                    g_norm = g.norm()
                    if g_norm > 0:
                        delta[i] += step_size * norms[i] * g / g_norm
                    d_norm = delta[i].norm()
                    limit = rho * norms[i]
                    if d_norm > limit:
                        delta[i] *= limit / d_norm
    return {
        "rho": rho,
        "steps": steps,
        "loss": base_loss,
        "acc": base_acc,
        "loss_perturbed": best_loss,
        "acc_perturbed": best_acc,
        "increase": best_loss - base_loss,
    }
