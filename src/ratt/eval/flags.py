"""Signs of gradient masking (Athalye et al. 2018; Carlini et al. 2019; AutoAttack's checks).

A flag that fires does not prove the evaluation wrong, and a quiet one does not prove it
right; each names a pattern that, in the papers above, came with overestimated robustness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ratt.attacks import parse_attack
from ratt.attacks.base import cw_margin_loss, eval_mode
from ratt.core.table import plural
from ratt.data.base import TensorDataset, to_float
from ratt.data.stream import LazyDataset, held
from ratt.eval.suite import EvalPlan, EvalResult


@dataclass(frozen=True)
class Flag:
    """One check: ``fired`` is True (suspicious), False (passed) or None (not checked)."""

    name: str
    fired: bool | None
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "fired": self.fired, "detail": self.detail}


def gradient_flags(
    model: nn.Module, dataset: TensorDataset | LazyDataset, n: int = 256, device: torch.device | str = "cpu"
) -> list[Flag]:
    """Checks on the first ``n`` points that need the model, not attack results.

    - ``zero-gradient``: the input gradient of the CW margin (which, unlike the
      cross-entropy, does not saturate on confident points) is zero or non-finite for more
      than 1% of the points (e.g. a rounding/quantization layer, a shattered gradient).
    - ``randomized-forward``: two eval-mode forwards of the same batch differ (a randomized
      defence needs EOT attacks; fixed-seed numbers overestimate its robustness).
    """
    first = held(dataset.subset(torch.arange(min(n, len(dataset)))))
    x, y = to_float(first.images).to(device), first.labels.to(device)
    with eval_mode(model):
        x_grad = x.clone().requires_grad_(True)
        logits = model(x_grad)
        loss = cw_margin_loss(y, logits.shape[1], kappa=math.inf)(logits, y)
        (grad,) = torch.autograd.grad(loss, x_grad, allow_unused=True)
        with torch.no_grad():
            again = model(x)
    if grad is None:
        grad = torch.zeros_like(x)
    flat = grad.flatten(1)
    nonfinite = int((~torch.isfinite(flat)).any(1).sum())
    zero = int((flat == 0).all(1).sum())
    bad = nonfinite + zero
    flags = [
        Flag(
            "zero-gradient",
            nonfinite > 0 or bad > 0.01 * len(y),
            f"{zero} of {len(y)} points have a zero and {nonfinite} a non-finite input gradient",
        )
    ]
    first = logits.detach()
    diff = (first - again).abs().max().item()
    scale = 1e-5 * (1.0 + first.abs().max().item())
    flags.append(
        Flag("randomized-forward", diff > scale, f"two eval-mode forwards differ by up to {diff:.3g}")
    )
    return flags


def result_flags(result: EvalResult, margin: float = 0.02) -> list[Flag]:
    """Checks on attack results.

    - ``more-pgd-steps``: a longer PGD (e.g. pgd100) is more than ``margin`` and two binomial
      standard errors below a shorter one (pgd20): the shorter attack had not converged,
      which PGD on an honest model does within a few tens of steps.
    - ``black-box-beats-white-box``: inside AutoAttack, Square (gradient-free) broke points
      that APGD-CE, APGD-T and FAB-T could not (AutoAttack's own check), more of them than
      :func:`square_threshold` allows; the count is printed either way.
    """
    flags = []
    pgds = sorted(
        (parse_attack(name).steps, name) for name in result.accuracy if parse_attack(name).kind == "pgd"
    )
    if len(pgds) >= 2 and pgds[0][0] < pgds[-1][0]:
        (_, short), (_, long) = pgds[0], pgds[-1]
        drop = result.accuracy[short] - result.accuracy[long]
        fired = drop > max(margin, 2 * result.stderr(short))
        flags.append(Flag("more-pgd-steps", fired, f"{long} is {100 * drop:.2f} points below {short}"))
    else:
        flags.append(Flag("more-pgd-steps", None, "needs two pgdN attacks (e.g. pgd20,pgd100)"))
    with_square = [name for name in result.stages if "square" in parse_attack(name).stages]
    if with_square:
        name = with_square[0]
        stages, remaining = parse_attack(name).stages, result.stages[name]
        at = stages.index("square")  # remaining[at]: before Square; remaining[at + 1]: after
        square = remaining[at] - remaining[at + 1]
        before = ", ".join(s.upper() for s in stages[:at])
        threshold = square_threshold(result.n)
        flags.append(
            Flag(
                "black-box-beats-white-box",
                square > threshold,
                f"Square broke {plural(square, 'point')} of {result.n} that {before} left correct "
                f"(flagged above {threshold})",
            )
        )
    else:
        flags.append(Flag("black-box-beats-white-box", None, "needs aa or aa-plus"))
    return flags


SQUARE_MARGIN = 0.002  # a share of the evaluated points; see square_threshold


def square_threshold(n: int) -> int:
    """Points Square may break after the white-box attacks before the gradient-masking flag
    fires: more than 0.2 % of the ``n`` points, and never for a single point.

    Why: Square is a randomized search, so on an honest model it still picks up a stray point
    now and then; one point of 300 moves the accuracy by 0.33 points, well inside the ±2.9
    points binomial standard error at n=300 and 50 % accuracy that the table prints. Masked
    gradients leave many points to Square, not one.
    """
    return max(1, int(SQUARE_MARGIN * n))


def default_sweep(eps: float, norm: str = "linf") -> list[float]:
    """ε × (0.25, 0.5, 1, 2, 4), capped at 1 for L-inf."""
    values = [eps * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]
    return sorted({min(v, 1.0) if norm == "linf" else v for v in values})


def eps_sweep(plan: EvalPlan, eps_values: list[float], attack: str = "pgd20") -> dict[float, float]:
    """Accuracy under ``attack`` at each radius (``plan.threat``'s step/eps ratio; no chunk
    kept): eps -> accuracy."""
    return {
        eps: replace(plan, threat=plan.threat.with_eps(eps), store=None).run([attack]).accuracy[attack]
        for eps in sorted(eps_values)
    }


def sweep_flag(sweep: dict[float, float], n: int, margin: float = 0.02) -> Flag:
    """``eps-does-not-hurt``: accuracy does not fall from the smallest to the largest radius,
    or rises between two consecutive radii by more than ``margin`` and two standard errors."""
    if len(sweep) < 2:
        return Flag("eps-does-not-hurt", None, "needs --eps-sweep")
    eps = sorted(sweep)
    accs = [sweep[e] for e in eps]
    rises = [
        (a, b, accs[i + 1] - accs[i])
        for i, (a, b) in enumerate(zip(eps, eps[1:], strict=False))
        if accs[i + 1] - accs[i] > max(margin, 2 * math.sqrt(max(accs[i] * (1 - accs[i]), 0) / max(n, 1)))
    ]
    flat = accs[-1] >= accs[0] - 0.01 and accs[0] > 0
    detail = ", ".join(f"eps={e:.4g}: {100 * a:.1f}%" for e, a in zip(eps, accs, strict=True))
    return Flag("eps-does-not-hurt", flat or bool(rises), detail)
