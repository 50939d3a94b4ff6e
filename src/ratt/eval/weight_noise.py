"""Accuracy of a model whose weights carry random Gaussian noise (flat minima keep it)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ratt.attacks import ThreatModel
from ratt.core.stats import mean_std
from ratt.core.weights import perturbable_weights, restored, set_noisy_weights
from ratt.data.base import TensorDataset
from ratt.eval.checks import noise_sigmas, whole_number
from ratt.eval.suite import EvalPlan


def weight_noise_accuracy(
    model: nn.Module,
    dataset: TensorDataset,
    sigmas: list[float],
    threat: ThreatModel,
    attacks: tuple[str, ...] = ("clean", "pgd20"),
    *,
    draws: int = 5,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[float, dict[str, tuple[float, float]]]:
    """Mean and std over ``draws`` of the accuracy of ``model`` with noisy weights.

    Each perturbable weight (>= 2 dims, :mod:`ratt.core.weights`) gets relative noise
    ``u ~ N(0, (sigma * rms(w))^2)`` per element, so ``E||u||^2 = sigma^2 ||w||^2`` per tensor;
    draw ``d`` of the ``i``-th sigma comes from a generator seeded ``(seed, i, d)``. The
    attacks run against the noisy model; the weights are restored afterwards, bit for bit.

    Returns:
        sigma -> attack name -> (mean, std) of the accuracy over draws (std 0 for one draw).
    Raises:
        UserError: a sigma that is not a finite number >= 0, or ``draws < 1``.
    """
    plan = EvalPlan(
        model=model, dataset=dataset, threat=threat, batch_size=batch_size, seed=seed,
        device=torch.device(device), progress=progress,
    )  # fmt: skip
    return weight_noise_table(plan, sigmas, attacks, draws)


def weight_noise_table(
    plan: EvalPlan, sigmas: list[float], attacks: tuple[str, ...], draws: int
) -> dict[float, dict[str, tuple[float, float]]]:
    """:func:`weight_noise_accuracy` for an :class:`~ratt.eval.suite.EvalPlan` (its store unused)."""
    model, seed = plan.model, plan.seed
    plan = replace(plan, store=None)
    sigmas = noise_sigmas(sigmas)
    whole_number(draws, "draws", 1, "the number of noise draws")
    params = perturbable_weights(model)
    origin = {name: p.detach().clone() for name, p in params.items()}
    weights_device = next(iter(origin.values())).device
    out: dict[float, dict[str, tuple[float, float]]] = {}
    with restored(model):
        for s_index, sigma in enumerate(sigmas):
            runs: dict[str, list[float]] = {a: [] for a in attacks}
            for draw in range(draws):
                generator = torch.Generator(device=weights_device)
                generator.manual_seed(seed * 1_000_003 + 1000 * s_index + draw)
                set_noisy_weights(params, origin, sigma, generator)
                result = plan.run(list(attacks))
                for a in attacks:
                    runs[a].append(result.accuracy[a])
            out[sigma] = {a: mean_std(v, single_std=0.0) for a, v in runs.items()}
    return out
