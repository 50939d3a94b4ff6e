"""The device checks that need no training run: one step of every method in every precision and
memory format, RAT's statistics against a float64 CPU reference, AWP's exact restore, the
attacks' projection, AutoAttack.

Each check is a function of the device and the :class:`~ratt.doctor.result.Sizes`; it returns
``(one-line detail, measured data)`` and raises ``AssertionError`` when the device gets
something wrong. ``tests/cuda`` calls the same functions on CUDA under pytest; ``ratt doctor``
tabulates them (on CPU with tiny sizes in the dry run).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ratt.attacks import ThreatModel, cw, fgsm, pgd, run_autoattack, trades_attack
from ratt.bench import BenchConfig
from ratt.bench.steps import make_step
from ratt.doctor.result import Sizes
from ratt.doctor.synthetic import CLASSES, SHAPE, synthetic_batch, template_classifier
from ratt.methods import METHODS
from ratt.methods.rat import capture_features, last_layer_grad_stats
from ratt.models import create_model
from ratt.train.precision import autocast

Outcome = tuple[str, dict[str, Any]]
COMBOS = (("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True))  # (precision, channels_last)
RAT_STATS_RTOL = 1e-5  # of mean_i |sum_j h_ij|, the size of each sample's term in g


def all_methods() -> list[str]:
    """Every registered method and its ``awp+`` variant (``ratt list methods``)."""
    base = list(METHODS)
    return base + [f"awp+{name}" for name in base]


def combo_name(precision: str, channels_last: bool) -> str:
    return precision + (" channels_last" if channels_last else "")


def _params(model: torch.nn.Module) -> dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def one_step(method: str, precision: str, channels_last: bool, device: torch.device, sizes: Sizes) -> float:
    """One :class:`~ratt.train.step.TrainStep` of ``method``; checks it and returns the loss.

    Checked: the loss is finite; every parameter stays fp32, finite, and at least one moved;
    under bf16 the classifier's output is bf16 (autocast is on); with ``channels_last`` every
    convolution weight is still NHWC after the step.
    """
    config = BenchConfig(
        methods=[method], model=sizes.check_model, batch=sizes.check_batch, steps=sizes.check_steps,
        precision=precision, channels_last=channels_last,
    )  # fmt: skip
    step, x, y = make_step(config, method, device)
    model = step.model
    before = _params(model)
    dtypes: list[torch.dtype] = []
    handle = model.classifier.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    try:
        outcome = step(x, y)
    finally:
        handle.remove()
    loss = float(outcome.loss)
    assert outcome.finite, f"{method}: loss {loss} is not finite"
    moved = False
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, f"{method}: {name} is {p.dtype}, not float32"
        assert torch.isfinite(p).all(), f"{method}: {name} is not finite after the step"
        moved = moved or not torch.equal(p, before[name])
        if channels_last and p.dim() == 4:
            assert p.is_contiguous(memory_format=torch.channels_last), f"{method}: {name} lost channels_last"
    assert moved, f"{method}: no parameter changed"
    if precision == "bf16":
        assert torch.bfloat16 in dtypes, (
            f"{method}: classifier ran in {set(dtypes)}, not bf16 (autocast off?)"
        )
    return loss


def check_method_steps(device: torch.device, sizes: Sizes, precision: str, channels_last: bool) -> Outcome:
    """:func:`one_step` for every method; fails listing the methods that failed."""
    losses, failures = {}, []
    for method in all_methods():
        try:
            losses[method] = one_step(method, precision, channels_last, device, sizes)
        except AssertionError as exc:
            failures.append(str(exc))
        except Exception as exc:  # a crash in one method must not hide the others
            failures.append(f"{method}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
    assert not failures, f"{len(failures)} of {len(all_methods())} methods failed: " + "; ".join(failures)
    return f"{len(losses)} methods, {sizes.check_model}, batch {sizes.check_batch}", {"loss": losses}


def rat_stats_error(device: torch.device, sizes: Sizes, precision: str) -> tuple[float, float]:
    """(max error, tolerance) of :func:`last_layer_grad_stats` on ``device`` against float64 autograd
    on the CPU, for the features ``h`` and logits ``z`` of a forward under ``precision``.

    Reference: ``z' = z + h (W - W)^T`` in float64 (equal to ``z``, with ``dz'/dW`` the layer's),
    ``g_ref = row sums of d mean-CE(z', y) / dW``. Tolerance: ``1e-5 * mean_i |sum_j h_ij|``
    (each sample's term in ``g`` is at most ``|sum_j h_ij|``; fp32 softmax errs by ~1e-7).
    """
    torch.manual_seed(0)
    model = create_model(sizes.check_model, CLASSES, SHAPE).to(device)
    x, y = synthetic_batch(max(sizes.check_batch, 16), device)
    with capture_features(model.classifier) as seen, autocast(precision, device), torch.no_grad():
        model(x)
    h, z = seen[0][0].detach(), seen[0][1].detach()
    g = last_layer_grad_stats(h, z, y)
    h64, z64, y_cpu = h.double().cpu(), z.double().cpu(), y.cpu()
    w = model.classifier.weight.detach().double().cpu().requires_grad_(True)
    z_ref = z64 + h64 @ (w - w.detach()).T
    (grad,) = torch.autograd.grad(F.cross_entropy(z_ref, y_cpu), w)
    error = float((g.double().cpu() - grad.sum(dim=1)).abs().max())
    return error, RAT_STATS_RTOL * float(h64.sum(dim=1).abs().mean())


def check_rat_stats(device: torch.device, sizes: Sizes) -> Outcome:
    """RAT's last-layer statistics on ``device`` in fp32 and bf16 vs the float64 CPU reference."""
    data = {}
    for precision in ("fp32", "bf16"):
        error, tol = rat_stats_error(device, sizes, precision)
        data[precision] = {"max_error": error, "tolerance": tol}
        assert error <= tol, f"{precision}: |g - g_ref| = {error:.3g} > {tol:.3g}"
    worst = max(v["max_error"] / v["tolerance"] for v in data.values())
    return f"max error {worst:.2g} of the tolerance (1e-5 x mean |sum h|)", data


def _awp_restore_once(device: torch.device, sizes: Sizes, precision: str) -> None:
    config = BenchConfig(
        methods=["awp+rat_trades"], model=sizes.check_model, batch=sizes.check_batch,
        steps=sizes.check_steps, precision=precision,
    )  # fmt: skip
    step, x, y = make_step(config, "awp+rat_trades", device)
    for group in step.optimizer.param_groups:
        group["lr"] = 0.0
    model, method = step.model, step.method
    before, perturbed = _params(model), []
    objective = method.inner.objective

    def spy(*args: Any) -> Any:
        perturbed.append(any(not torch.equal(p, before[n]) for n, p in model.named_parameters()))
        return objective(*args)

    method.inner.objective = spy
    step(x, y)
    assert perturbed == [True], f"{precision}: the weights were not perturbed during the step"
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), f"{precision}: {name} differs after the restore"


def check_awp_restore(device: torch.device, sizes: Sizes) -> Outcome:
    """AWP (around RAT-TRADES) perturbs the weights during the step and, with a learning rate
    of 0, leaves every parameter bit-identical after it, in fp32 and bf16."""
    for precision in ("fp32", "bf16"):
        _awp_restore_once(device, sizes, precision)
    return "weights perturbed during the step, bit-identical after it (fp32, bf16)", {}


def _attack_cases() -> list[tuple[str, ThreatModel, Any]]:
    linf = ThreatModel("linf", 8 / 255, 2 / 255, 5)
    l2 = ThreatModel("l2", 0.5, 0.125, 5)
    return [
        ("pgd linf ce", linf, lambda m, x, y: pgd(m, x, y, linf)),
        ("pgd linf cw", linf, lambda m, x, y: pgd(m, x, y, linf, loss="cw")),
        ("pgd l2 ce", l2, lambda m, x, y: pgd(m, x, y, l2)),
        ("cw l2", l2, lambda m, x, y: cw(m, x, y, l2)),
        ("fgsm linf", linf, lambda m, x, y: fgsm(m, x, y, linf)),
        ("trades linf", linf, lambda m, x, y: trades_attack(m, x, linf)),
    ]


def check_attack_projection(device: torch.device, sizes: Sizes) -> Outcome:
    """Every attack's output lies in its eps ball around ``x`` and in [0, 1], stays fp32 and
    moved, in fp32 and under bf16 autocast; inputs include pixels at exactly 0 and 1."""
    torch.manual_seed(0)
    model = create_model(sizes.check_model, CLASSES, SHAPE).to(device)
    x, y = synthetic_batch(sizes.check_batch, device)
    x[:, :, :4] = 0.0
    x[:, :, -4:] = 1.0
    worst: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        for name, threat, attack in _attack_cases():
            label = f"{name} {precision}"
            with autocast(precision, device):
                x_adv = attack(model, x, y)
            assert x_adv.dtype == torch.float32, f"{label}: x_adv is {x_adv.dtype}"
            delta = (x_adv - x).flatten(1)
            size = delta.abs().amax(1) if threat.norm == "linf" else delta.norm(dim=1)
            worst[label] = float(size.max())
            assert (size <= threat.eps * (1 + 1e-6) + 1e-6).all(), (
                f"{label}: |delta| {worst[label]:.6g} > eps"
            )
            assert x_adv.min() >= 0 and x_adv.max() <= 1, f"{label}: x_adv leaves [0, 1]"
            assert bool((delta != 0).any()), f"{label}: the attack did not move"
    return f"{len(worst)} attack/precision pairs inside the ball and [0, 1]", {"max_delta": worst}


def check_autoattack(device: torch.device, sizes: Sizes) -> Outcome:
    """Standard AutoAttack on the template classifier: x_adv in the ball and [0, 1], stage
    counts non-increasing, accuracy at most PGD-20's, the caller's RNG untouched."""
    model = template_classifier(device)
    x, y = synthetic_batch(sizes.aa_points, device, seed=1)
    threat = ThreatModel("linf", sizes.aa_eps, sizes.aa_eps / 4, 20)

    def accuracy(inputs: Tensor) -> float:
        with torch.no_grad():
            return float((model(inputs).argmax(1) == y).float().mean())

    pgd_acc = accuracy(pgd(model, x, y, threat))
    torch.manual_seed(123)
    expected = torch.rand(2, device=device)
    torch.manual_seed(123)
    start = time.perf_counter()
    result = run_autoattack(model, x, y, threat)
    seconds = time.perf_counter() - start
    assert torch.equal(torch.rand(2, device=device), expected), "AutoAttack changed the caller's RNG"
    clean_acc, aa_acc = accuracy(x), accuracy(result.x_adv)
    delta = (result.x_adv - x).abs().amax()
    assert float(delta) <= threat.eps + 1e-6, f"|delta| {float(delta):.6g} > eps {threat.eps}"
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1, "x_adv leaves [0, 1]"
    counts = result.remaining
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False)), f"stage counts increase: {counts}"
    assert clean_acc >= 0.9, f"template classifier clean accuracy {clean_acc:.3f} < 0.9"
    assert aa_acc <= pgd_acc, f"AutoAttack accuracy {aa_acc:.3f} > PGD-20's {pgd_acc:.3f}"
    data = {"clean": clean_acc, "pgd20": pgd_acc, "aa": aa_acc, "remaining": counts, "aa_seconds": seconds}
    accuracies = f"clean {clean_acc:.2f} pgd20 {pgd_acc:.2f} aa {aa_acc:.2f}"
    return f"{sizes.aa_points} points, eps {sizes.aa_eps}: {accuracies}", data
