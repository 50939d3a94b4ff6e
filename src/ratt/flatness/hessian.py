"""Hessian spectrum of the loss w.r.t. the weights: Lanczos / power iteration on Hessian-vector
products (double backprop), and the trace by Hutchinson's estimator.

The linear algebra (:func:`lanczos`, :func:`power_iteration`, :func:`hutchinson`) is pure: it
sees only a ``matvec`` on flat float64 vectors, so it can be checked against explicit matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ratt.attacks.base import eval_mode
from ratt.flatness.objective import Objective

MatVec = Callable[[Tensor], Tensor]
"""(D,) float64 -> (D,) float64: a symmetric linear operator."""


def flatten(tensors: list[Tensor]) -> Tensor:
    """List of tensors -> one (D,) vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: list[Tensor]) -> list[Tensor]:
    """(D,) vector -> tensors shaped (and typed) like ``like``."""
    out, start = [], 0
    for t in like:
        out.append(vector[start : start + t.numel()].view_as(t).to(t.dtype))
        start += t.numel()
    return out


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter that requires a gradient (the Hessian's default variables)."""
    return [p for p in model.parameters() if p.requires_grad]


def hvp(objective: Objective, params: list[Tensor], vector: list[Tensor]) -> list[Tensor]:
    """Hessian-vector product ``H v`` of the objective's mean loss, by double backprop, eval mode.

    Args:
        params: the variables (tensors of any shapes).
        vector: tensors shaped like ``params``.
    Returns:
        tensors shaped like ``params``; the mean over all data points (accumulated in chunks).
    """
    total = [torch.zeros_like(p) for p in params]
    with eval_mode(objective.model):
        for weight, loss in objective.loss_terms():
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            dot = sum((g * v).sum() for g, v in zip(grads, vector, strict=True) if g is not None)
            if not torch.is_tensor(dot) or not dot.requires_grad:
                continue  # the loss is linear in params on this chunk
            hv = torch.autograd.grad(dot, params, allow_unused=True)
            total = [t + weight * h.detach() if h is not None else t for t, h in zip(total, hv, strict=True)]
    return total


def hessian_operator(objective: Objective, params: list[Tensor]) -> tuple[MatVec, int]:
    """``(matvec, D)``: the Hessian as an operator on flat float64 vectors of length D.

    An objective with ``adv=rerun`` is frozen first (x_adv crafted once at the current
    weights): the Hessian is that of the loss on those inputs.
    """
    frozen = objective.frozen()

    def matvec(v: Tensor) -> Tensor:
        return flatten(hvp(frozen, params, unflatten(v.to(params[0].device), params))).double()

    return matvec, sum(p.numel() for p in params)


def lanczos(
    matvec: MatVec, dim: int, iters: int = 20, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Ritz values of a symmetric operator by Lanczos with full re-orthogonalization.

    With ``iters >= dim`` the values are the exact eigenvalues (up to rounding).

    Args:
        matvec: (D,) -> (D,) float64.
        iters: Krylov dimension m (capped at D).
    Returns:
        (values (m',), residuals (m',)), largest first; residual i = |beta_m * s_{m,i}| bounds
        ``||H q_i - theta_i q_i||`` for the Ritz pair, so small residuals mean converged values.
    """
    m = max(1, min(iters, dim))
    q = torch.randn(dim, dtype=torch.float64, generator=generator)
    basis = [q / q.norm()]
    alphas: list[float] = []
    betas: list[float] = []
    beta_last = 0.0
    for j in range(m):
        w = matvec(basis[j].to(q.device)).cpu()
        alpha = float(w @ basis[j])
        alphas.append(alpha)
        stacked = torch.stack(basis)
        for _ in range(2):  # full re-orthogonalization, twice for stability
            w = w - stacked.T @ (stacked @ w)
        beta = float(w.norm())
        beta_last = beta
        scale = max(abs(a) for a in alphas) or 1.0
        if j == m - 1 or beta <= 1e-10 * scale:
            break
        betas.append(beta)
        basis.append(w / beta)
    k = len(alphas)
    tri = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=torch.float64)
        tri = tri + torch.diag(off, 1) + torch.diag(off, -1)
    values, vectors = torch.linalg.eigh(tri)
    residuals = (beta_last * vectors[-1, :]).abs()
    order = torch.argsort(values, descending=True)
    return values[order], residuals[order]


def power_iteration(
    matvec: MatVec,
    dim: int,
    k: int = 1,
    iters: int = 100,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The k eigenvalues of largest magnitude by power iteration with deflation.

    Each value is the Rayleigh quotient once its relative change falls below ``tol`` (or after
    ``iters`` products); later vectors are kept orthogonal to earlier ones.
    Returns (k,) float64, in the order found (largest magnitude first).
    """
    found: list[Tensor] = []
    values: list[float] = []
    for _ in range(min(k, dim)):
        v = torch.randn(dim, dtype=torch.float64, generator=generator)
        value = 0.0
        for step in range(iters):
            for u in found:
                v = v - (u @ v) * u
            v = v / v.norm().clamp_min(1e-300)
            hv = matvec(v).cpu()
            new = float(v @ hv)
            v = hv
            if step and abs(new - value) <= tol * max(abs(new), 1e-12):
                value = new
                break
            value = new
        for u in found:
            v = v - (u @ v) * u
        found.append(v / v.norm().clamp_min(1e-300))
        values.append(value)
    return torch.tensor(values, dtype=torch.float64)


def hutchinson(
    matvec: MatVec, dim: int, samples: int = 100, generator: torch.Generator | None = None
) -> tuple[float, float, Tensor]:
    """Trace estimate ``mean_i v_i^T H v_i`` with Rademacher ``v_i``.

    Returns:
        (estimate, standard error = sample std / sqrt(samples), per-sample values (samples,)).
    """
    if samples < 2:
        raise ValueError("Hutchinson's estimator needs at least 2 samples for a standard error")
    values = []
    for _ in range(samples):
        v = torch.randint(0, 2, (dim,), generator=generator, dtype=torch.float64) * 2 - 1
        values.append(float(v @ matvec(v).cpu()))
    out = torch.tensor(values, dtype=torch.float64)
    return float(out.mean()), float(out.std()) / math.sqrt(samples), out


def hessian_eigenvalues(
    objective: Objective,
    params: list[Tensor] | None = None,
    k: int = 3,
    iters: int = 20,
    method: str = "lanczos",
    seed: int = 0,
) -> dict:
    """Top-k Hessian eigenvalues of the objective's loss at the current weights (eval mode).

    Args:
        params: the variables; every trainable parameter when None.
        method: ``lanczos`` (largest algebraic, ``iters`` = Krylov dimension) or ``power``
            (largest magnitude, deflated; ``iters`` = max products per value).
    Returns:
        ``{"eigenvalues": [k floats, largest first], "residuals": [...] (lanczos),
        "method", "iters", "n_points", "n_params"}``.
    """
    params = trainable(objective.model) if params is None else params
    matvec, dim = hessian_operator(objective, params)
    generator = torch.Generator().manual_seed(seed)
    out: dict = {"method": method, "iters": iters, "n_points": objective.n, "n_params": dim}
    if method == "lanczos":
        values, residuals = lanczos(matvec, dim, max(iters, k), generator)
        out["eigenvalues"] = values[:k].tolist()
        out["residuals"] = residuals[:k].tolist()
    elif method == "power":
        out["eigenvalues"] = power_iteration(matvec, dim, k, iters, generator=generator).tolist()
    else:
        raise ValueError(f"method={method!r}: use lanczos or power")
    return out


def hessian_trace(
    objective: Objective, params: list[Tensor] | None = None, samples: int = 50, seed: int = 0
) -> dict:
    """Hutchinson estimate of the Hessian trace at the current weights (eval mode).

    Returns ``{"trace", "stderr", "samples", "n_points", "n_params"}``.
    """
    params = trainable(objective.model) if params is None else params
    matvec, dim = hessian_operator(objective, params)
    estimate, stderr, _ = hutchinson(matvec, dim, samples, torch.Generator().manual_seed(seed))
    return {"trace": estimate, "stderr": stderr, "samples": samples, "n_points": objective.n, "n_params": dim}
