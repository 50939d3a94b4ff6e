"""Accuracy of a model whose weights carry random Gaussian noise (flat minima keep it)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ratt.attacks import ThreatModel
from ratt.data.base import TensorDataset
from ratt.eval.suite import evaluate


def weight_noise_accuracy(
    model: nn.Module,
    dataset: TensorDataset,
    sigmas: list[float],
    threat: ThreatModel,
    attacks: tuple[str, ...] = ("clean", "pgd20"),
    draws: int = 5,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[float, dict[str, tuple[float, float]]]:
    """Mean and std over ``draws`` of the accuracy of ``model`` with noisy weights.

    Each weight tensor with >= 2 dims gets ``u ~ N(0, (sigma * rms(w))^2)`` per element, so
    ``E||u||^2 = sigma^2 ||w||^2`` per tensor (the convention of
    :func:`ratt.methods.rat_mc.weight_noise`, reused here). Biases and BatchNorm are
    untouched; the attacks run against the noisy model. The weights are restored afterwards.

    Returns:
        sigma -> attack name -> (mean, std) of the accuracy over draws (std 0 for one draw).
    """
    from ratt.methods.rat_mc import weight_noise  # methods import attacks; import late

    weights = [p for p in model.parameters() if p.ndim >= 2]
    saved = [p.detach().clone() for p in weights]
    out: dict[float, dict[str, tuple[float, float]]] = {}
    try:
        for s_index, sigma in enumerate(sigmas):
            runs: dict[str, list[float]] = {a: [] for a in attacks}
            for draw in range(draws):
                generator = torch.Generator(device=saved[0].device).manual_seed(
                    seed * 1_000_003 + 1000 * s_index + draw
                )
                with torch.no_grad():
                    for p, w in zip(weights, saved, strict=True):
                        p.copy_(w + weight_noise(w, sigma, relative=True, generator=generator))
                result = evaluate(model, dataset, list(attacks), threat, batch_size, seed, device, progress)
                for a in attacks:
                    runs[a].append(result.accuracy[a])
            out[sigma] = {a: _mean_std(v) for a, v in runs.items()}
    finally:
        with torch.no_grad():
            for p, w in zip(weights, saved, strict=True):
                p.copy_(w)
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_weight_noise(table: dict[float, dict[str, tuple[float, float]]], draws: int) -> str:
    """A plain-text table: sigma, then mean ± std (%) per attack."""
    if not table:
        return ""
    attacks = list(next(iter(table.values())))
    head = f"{'sigma':<8}" + "".join(f" {a:>16}" for a in attacks)
    lines = [f"weight noise N(0, (sigma*rms(w))^2), {draws} draws:", head]
    for sigma, row in table.items():
        cells = "".join(f" {100 * m:>8.2f} ± {100 * s:<5.2f}" for m, s in (row[a] for a in attacks))
        lines.append(f"{sigma:<8g}{cells}")
    return "\n".join(lines)
