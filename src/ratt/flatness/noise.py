"""Expected loss and accuracy under Gaussian weight noise as its size grows: flat minima keep
their loss under larger noise than sharp ones."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ratt.core.stats import mean_std
from ratt.core.weights import perturbable_weights, restored, set_noisy_weights
from ratt.flatness.objective import Objective


def noise_curve(
    objective: Objective,
    sigmas: Sequence[float],
    draws: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Loss and accuracy at ``w + u``, ``u_l ~ N(0, sigma^2 rms(w_l)^2)`` per weight tensor l
    (so ``E||u_l||^2 = sigma^2 ||w_l||^2``); biases and BatchNorm are not perturbed.

    Each sigma > 0 gets ``draws`` independent draws (mean and sample std reported), all drawn
    in turn from one generator seeded with ``seed``; sigma = 0 is the unperturbed model,
    evaluated once.

    Returns:
        ``{"sigmas": [S], "draws", "loss_mean": [S], "loss_std": [S], "acc_mean": [S],
        "acc_std": [S]}``.
    """
    model = objective.model
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    out: dict = {"sigmas": [float(s) for s in sigmas], "draws": draws}
    for key in ("loss_mean", "loss_std", "acc_mean", "acc_std"):
        out[key] = []
    bar = tqdm(total=len(sigmas), desc="weight noise", leave=False, disable=not progress or None)
    with restored(model):
        origin = {n: p.detach().clone() for n, p in perturbable_weights(model).items()}
        params = perturbable_weights(model)
        for sigma in sigmas:
            losses, accs = [], []
            for _ in range(draws if sigma > 0 else 1):
                set_noisy_weights(params, origin, float(sigma), generator)
                loss, acc = objective.evaluate()
                losses.append(loss)
                accs.append(acc)
            for name, values in (("loss", losses), ("acc", accs)):
                mean, std = mean_std(values, single_std=0.0)
                out[f"{name}_mean"].append(mean)
                out[f"{name}_std"].append(std)
            bar.update()
    bar.close()
    return out


def noise_loss(objective: Objective, sigma: float, draws: int, seed: int = 0) -> tuple[float, float]:
    """(mean, standard error) of the loss under weight noise of relative size ``sigma``."""
    curve = noise_curve(objective, [sigma], draws, seed)
    return curve["loss_mean"][0], curve["loss_std"][0] / math.sqrt(max(draws, 1))
