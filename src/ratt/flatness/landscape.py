"""Loss landscapes: 1D and 2D slices along filter-normalized random directions, and the line
between two checkpoints. Every function restores the model's weights exactly when it returns."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ratt.core.weights import perturbable_weights, restored
from ratt.flatness.directions import random_direction, set_weights
from ratt.flatness.objective import Objective


def _evaluate_all(objectives: dict[str, Objective]) -> dict[str, tuple[float, float]]:
    return {name: obj.evaluate() for name, obj in objectives.items()}


def _one_model(objectives: dict[str, Objective]) -> nn.Module:
    models = {id(obj.model) for obj in objectives.values()}
    if len(models) != 1:
        raise ValueError("all objectives of one landscape must share the model")
    return next(iter(objectives.values())).model


def landscape_1d(
    objectives: dict[str, Objective],
    alphas: Sequence[float],
    directions: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Loss and accuracy along ``directions`` random filter-normalized directions d:
    ``L(w + alpha d)`` for each alpha.

    Args:
        objectives: name -> objective (e.g. ``{"clean": ..., "adv": ...}``), one shared model.
        alphas: (A,) step lengths in units of the filter-normalized direction.
    Returns:
        ``{"alphas": [A], "loss": {name: [directions][A]}, "acc": {name: [directions][A]}}``.
    """
    model = _one_model(objectives)
    generator = torch.Generator().manual_seed(seed)
    loss = {name: [] for name in objectives}
    acc = {name: [] for name in objectives}
    bar = tqdm(total=directions * len(alphas), desc="1d landscape", leave=False, disable=not progress or None)
    with restored(model):
        origin = {n: p.detach().clone() for n, p in perturbable_weights(model).items()}
        for _ in range(directions):
            d = random_direction(model, generator)
            rows = {name: ([], []) for name in objectives}
            for a in alphas:
                set_weights(model, origin, [d], [float(a)])
                for name, (l, c) in _evaluate_all(objectives).items():
                    rows[name][0].append(l)
                    rows[name][1].append(c)
                bar.update()
            for name, (l, c) in rows.items():
                loss[name].append(l)
                acc[name].append(c)
    bar.close()
    return {"alphas": [float(a) for a in alphas], "directions": directions, "loss": loss, "acc": acc}


def landscape_2d(
    objectives: dict[str, Objective],
    alphas: Sequence[float],
    betas: Sequence[float] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Loss and accuracy on the plane ``w + alpha d1 + beta d2`` of two random
    filter-normalized directions.

    Returns:
        ``{"alphas": [A], "betas": [B], "loss": {name: [B][A]}, "acc": {name: [B][A]}}``
        (row i is beta_i, column j is alpha_j).
    """
    betas = alphas if betas is None else betas
    model = _one_model(objectives)
    generator = torch.Generator().manual_seed(seed)
    loss = {name: [[0.0] * len(alphas) for _ in betas] for name in objectives}
    acc = {name: [[0.0] * len(alphas) for _ in betas] for name in objectives}
    bar = tqdm(total=len(alphas) * len(betas), desc="2d landscape", leave=False, disable=not progress or None)
    with restored(model):
        origin = {n: p.detach().clone() for n, p in perturbable_weights(model).items()}
        d1 = random_direction(model, generator)
        d2 = random_direction(model, generator)
        for i, b in enumerate(betas):
            for j, a in enumerate(alphas):
                set_weights(model, origin, [d1, d2], [float(a), float(b)])
                for name, (l, c) in _evaluate_all(objectives).items():
                    loss[name][i][j] = l
                    acc[name][i][j] = c
                bar.update()
    bar.close()
    return {
        "alphas": [float(a) for a in alphas],
        "betas": [float(b) for b in betas],
        "loss": loss,
        "acc": acc,
    }


def mix_states(a: dict[str, Tensor], b: dict[str, Tensor], t: float) -> dict[str, Tensor]:
    """``(1 - t) a + t b`` for floating-point entries of two state dicts; others from the nearer end."""
    out = {}
    for key, va in a.items():
        vb = b[key]
        if va.is_floating_point():
            out[key] = torch.lerp(va, vb.to(va.device, va.dtype), float(t))
        else:
            out[key] = va if t < 0.5 else vb
    return out


def interpolate(
    objectives: dict[str, Objective],
    state_a: dict[str, Tensor],
    state_b: dict[str, Tensor],
    ts: Sequence[float],
    progress: bool = False,
) -> dict:
    """Loss and accuracy on the line ``(1 - t) w_a + t w_b`` between two checkpoints.

    Every floating-point parameter and buffer (biases, BN statistics) is interpolated. With
    ``adv=fixed`` the inputs were crafted at the weights the objective was built with.

    Returns ``{"t": [T], "loss": {name: [T]}, "acc": {name: [T]}}``.
    """
    model = _one_model(objectives)
    loss = {name: [] for name in objectives}
    acc = {name: [] for name in objectives}
    with restored(model):
        for t in tqdm(ts, desc="interpolation", leave=False, disable=not progress or None):
            model.load_state_dict(mix_states(state_a, state_b, float(t)))
            for name, (l, c) in _evaluate_all(objectives).items():
                loss[name].append(l)
                acc[name].append(c)
    return {"t": [float(t) for t in ts], "loss": loss, "acc": acc}
