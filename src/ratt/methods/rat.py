"""RAT: adversarial training with randomized weights via Taylor expansion (Jin et al., CVPR 2023).

The robust loss under random weights ``w + u`` is expanded in ``u``. The zeroth-order term
is the base objective (TRADES in the paper); the first- and second-order terms are made
cheap by looking only at the classifier's last layer:

1. the gradient of the mean cross-entropy w.r.t. the last layer, summed over each class
   row, has a closed form ``g[c] = (1/B) sum_i (p_ic - 1[y_i = c]) * sum_j h_ij`` (no
   backward pass), computed for the clean and the adversarial batch;
2. first order uses ``|g|``, second order ``g**2`` (an element-wise square standing in for
   the Kronecker product);
3. the gaps between clean and adversarial statistics become soft labels
   (:func:`soft_label_matrix`), and the loss pulls ``p_adv`` and ``p_nat`` toward them:

   ``L = (1 - alpha) CE(z_nat, y) + beta KL(p_nat || p_adv) + alpha first + alpha/2 second``.

Everything here is a function of tensors; :class:`RATTrades` and the plug-ins only wire
the functions to a model. ``docs/methods.md`` gives the step-by-step definition.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ratt.config.sections import SECOND_ORDER_MODES, TAYLOR_MODES
from ratt.methods.losses import kl_batchmean
from ratt.methods.passes import ADVERSARIAL, CLEAN, ordered_forwards
from ratt.models import find_classifier


# ----------------------------------------------------------------------- tensor functions
def last_layer_grad_stats(features: Tensor, logits: Tensor, y: Tensor, distributed: bool = False) -> Tensor:
    """Row sums of d mean-CE / d W for a linear last layer ``z = W h + b``, in closed form.

    ``g[c] = sum_j dCE/dW[c, j] = (1/B) sum_i (p_ic - 1[y_i = c]) * sum_j h_ij``.

    Args:
        features: (B, d) inputs ``h`` of the last layer.
        logits: (B, C) its outputs ``z``.
        y: (B,) labels.
        distributed: the batch is this process's shard of a global batch: the per-rank sums
            and counts are all-reduced, so ``g`` is the global batch's (B = global size).
    Returns:
        (C,) detached (a constant of the loss: no gradient flows through it).
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)  # fp32 under autocast, fp64 stays
    with torch.no_grad(), torch.autocast(logits.device.type, enabled=False):
        residual = F.softmax(logits.to(dtype), dim=1)
        residual[torch.arange(y.shape[0], device=y.device), y] -= 1.0
        # Accumulated in float64: the soft labels depend on small differences of g, so g is
        # computed to full precision and is the same value however the batch is split.
        total = torch.cat(
            [
                residual.double().T @ features.double().sum(dim=1),
                torch.full((1,), float(y.shape[0]), dtype=torch.float64, device=y.device),
            ]
        )
        if distributed:
            import torch.distributed as dist

            dist.all_reduce(total)
        return (total[:-1] / total[-1]).to(dtype)


def soft_label_matrix(v: Tensor, c: float) -> Tensor:
    """The C x C soft-label matrix ``S(v)`` built from a gap vector ``v``.

    ``v`` is shifted to a minimum of 0 and normalized; row ``k`` is ``v`` with entry ``k``
    set to 0 and rescaled to sum to ``c``, and its diagonal entry is ``1 - c``. A row with
    no off-diagonal mass (all gaps equal) spreads ``c`` uniformly over the other classes.

    Args:
        v: (C,) gaps.
        c: off-diagonal mass in [0, 1] (default in RAT: 1 - 2/C).
    Returns:
        (C, C); every row sums to 1, ``S[k, k] = 1 - c``.
    """
    num = v.shape[0]
    v = v - v.min()
    total = v.sum()
    v = v / total if total > 0 else torch.zeros_like(v)
    eye = torch.eye(num, dtype=v.dtype, device=v.device)
    rows = v.expand(num, num) * (1 - eye)
    mass = rows.sum(dim=1, keepdim=True)
    uniform = (1 - eye) / max(num - 1, 1)
    rows = torch.where(mass > 0, rows / mass.clamp_min(torch.finfo(v.dtype).tiny), uniform)
    return c * rows + (1 - c) * eye


def taylor_targets(
    g_nat: Tensor, g_adv: Tensor, y: Tensor, c: float, second_order: str = "reference"
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-sample soft labels of the first- and second-order terms.

    Args:
        g_nat, g_adv: (C,) last-layer statistics of the clean and adversarial batch.
        y: (B,) labels.
        c: off-diagonal mass of the soft labels.
        second_order: ``"reference"`` (the authors' code: both second-order targets from
            the adv - nat gap of ``g**2``) or ``"symmetric"`` (the target for ``p_adv``
            from nat - adv, mirroring the first-order term).
    Returns:
        (y1, y2, yy1, yy2), each (B, C): targets for p_adv, p_nat (first order) and
        p_adv, p_nat (second order).
    """
    if second_order not in SECOND_ORDER_MODES:
        raise ValueError(f"second_order must be one of {SECOND_ORDER_MODES}, got {second_order!r}")
    t1_nat, t1_adv = g_nat.abs(), g_adv.abs()
    t2_nat, t2_adv = g_nat.square(), g_adv.square()
    y1 = soft_label_matrix(t1_nat - t1_adv, c)[y]
    y2 = soft_label_matrix(t1_adv - t1_nat, c)[y]
    yy2 = soft_label_matrix(t2_adv - t2_nat, c)[y]
    yy1 = yy2 if second_order == "reference" else soft_label_matrix(t2_nat - t2_adv, c)[y]
    return y1, y2, yy1, yy2


def kl_from_target(target: Tensor, logits: Tensor) -> Tensor:
    """``mean_i KL(q_i || softmax(z_i)) = mean_i sum_c q_ic (log q_ic - log p_ic)``, 0 log 0 = 0.

    (B, C) fixed targets, (B, C) logits -> scalar; gradient flows through ``logits`` only.
    """
    log_p = F.log_softmax(logits, dim=1)
    return (torch.xlogy(target, target) - target * log_p).sum(dim=1).mean()


def taylor_terms(
    logits_nat: Tensor,
    logits_adv: Tensor,
    features_nat: Tensor,
    features_adv: Tensor,
    y: Tensor,
    c: float,
    *,
    second_order: str = "reference",
    distributed: bool = False,
) -> tuple[Tensor, Tensor]:
    """RAT's first- and second-order terms (docs/methods.md, steps 3-5).

    Shapes: logits (B, C), features (B, d), y (B,). Returns the two scalars
    ``first = (KL(y1 || p_adv) + KL(y2 || p_nat)) / 2`` and
    ``second = (KL(yy1 || p_adv) + KL(yy2 || p_nat)) / 2``. With ``distributed`` the
    statistics are the global batch's (see :func:`last_layer_grad_stats`); the KL terms
    are this shard's means (DDP's gradient averaging makes them the global mean).
    """
    g_nat = last_layer_grad_stats(features_nat, logits_nat, y, distributed)
    g_adv = last_layer_grad_stats(features_adv, logits_adv, y, distributed)
    y1, y2, yy1, yy2 = taylor_targets(g_nat, g_adv, y, c, second_order)
    first = 0.5 * (kl_from_target(y1, logits_adv) + kl_from_target(y2, logits_nat))
    second = 0.5 * (kl_from_target(yy1, logits_adv) + kl_from_target(yy2, logits_nat))
    return first, second


def default_soft_c(num_classes: int) -> float:
    """The authors' off-diagonal mass ``1 - 2/C`` (0.8 for 10 classes, 0.98 for 100)."""
    return 1.0 - 2.0 / num_classes


# ------------------------------------------------------------------------------ wiring
@contextlib.contextmanager
def capture_features(layer: nn.Module) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Record ``(input, output)`` of every forward of ``layer`` while the block runs."""
    seen: list[tuple[Tensor, Tensor]] = []
    handle = layer.register_forward_hook(lambda mod, inp, out: seen.append((inp[0], out)))
    try:
        yield seen
    finally:
        handle.remove()


def forward_with_features(
    model: nn.Module, classifier: nn.Linear, x: Tensor, x_adv: Tensor, order: str = "na"
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The forwards of ``x`` and ``x_adv`` in ``order`` (in the model's current mode; repeats
    without gradient, :func:`ratt.methods.passes.ordered_forwards`).

    Returns (logits_nat, logits_adv, features_nat, features_adv) of the first forward of
    each; the features are the inputs of ``classifier`` (B, d).
    """
    with capture_features(classifier) as seen:
        logits_nat, logits_adv = ordered_forwards(model, x, x_adv, order)
    if len(seen) != len(order):
        raise RuntimeError(
            f"the classifier ran {len(seen)} times for {len(order)} forwards; pass the model's "
            "last nn.Linear as classifier="
        )
    return logits_nat, logits_adv, seen[order.index(CLEAN)][0], seen[order.index(ADVERSARIAL)][0]


def rat_trades_loss(
    model: nn.Module,
    x: Tensor,
    x_adv: Tensor,
    y: Tensor,
    *,
    alpha: float = 0.2,
    beta: float = 6.0,
    second_order: str = "reference",
    classifier: nn.Linear | None = None,
    soft_c: float | None = None,
) -> Tensor:
    """The RAT-TRADES loss (docs/methods.md, steps 2-5), for use in any training loop.

    ``(1 - alpha) CE(z_nat, y) + beta KL(p_nat || p_adv) + alpha first + alpha/2 second``,
    with one forward of ``x`` and one of ``x_adv`` in the model's current mode.

    Args:
        model: any module mapping (B, ...) inputs to (B, C) logits through a final ``nn.Linear``.
        x, x_adv: (B, ...) clean and adversarial inputs.
        y: (B,) labels.
        classifier: the final linear layer (default: found and checked by
            :func:`ratt.models.find_classifier`: ``.classifier``, ``.fc``, ``.head``, ... or the
            last ``nn.Linear`` producing the output).
        soft_c: off-diagonal soft-label mass (default ``1 - 2/C``).
    Returns:
        scalar loss; backward once.

    Example:
        >>> x_adv = ratt.attacks.trades_attack(model, x, threat)
        >>> rat_trades_loss(model, x, x_adv, y).backward()
    """
    layer = find_classifier(model, x, classifier)
    z_nat, z_adv, h_nat, h_adv = forward_with_features(model, layer, x, x_adv)
    c = default_soft_c(z_nat.shape[1]) if soft_c is None else soft_c
    first, second = taylor_terms(z_nat, z_adv, h_nat, h_adv, y, c, second_order=second_order)
    ce = F.cross_entropy(z_nat, y)
    return combine(ce, beta * kl_batchmean(z_nat, z_adv), first, second, alpha)


def combine(
    ce: Tensor, rest: Tensor, first: Tensor, second: Tensor, alpha: float, taylor: str = "first+second"
):
    """RAT's loss from a base's terms and the Taylor terms (scalars), by which terms are on:

    - ``first+second`` (the paper): ``(1 - alpha) ce + rest + alpha first + alpha/2 second``;
    - ``first``: ``(1 - alpha) ce + rest + alpha first``;
    - ``second``: ``(1 - alpha) ce + rest + alpha/2 second``;
    - ``none``: ``ce + rest``, the base objective itself (with RAT's noisy crafting only).
    """
    if taylor == "first+second":
        return (1 - alpha) * ce + rest + alpha * first + 0.5 * alpha * second
    if taylor == "first":
        return (1 - alpha) * ce + rest + alpha * first
    if taylor == "second":
        return (1 - alpha) * ce + rest + 0.5 * alpha * second
    if taylor == "none":
        return ce + rest
    raise ValueError(f"taylor must be one of {TAYLOR_MODES}, got {taylor!r}")
