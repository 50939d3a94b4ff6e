"""The single-step methods (fgsm, fgsm_rs, n_fgsm, gradalign) and RAT on them, against closed
forms on a linear model, a float64 reference of the RAT objective and direct autograd."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ratt.attacks import ThreatModel
from ratt.cli import main
from ratt.config import MethodConfig
from ratt.methods import build_method
from ratt.methods.single_step import SINGLE_STEP
from tests.methods.test_rat import MLP, _reference_rat_loss

EPS = 0.1
THREAT = ThreatModel(eps=EPS, step=0.025, steps=10)  # steps/step are not used by these methods


def _linear(d=6, classes=4, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d, classes).double()


def _closed_form_grad(model, x, y):
    """grad_x sum_i CE(W x_i + b, y_i) = (softmax(z) - onehot(y)) W, per point."""
    p = F.softmax(model(x), 1)
    return (p - F.one_hot(y, p.shape[1]).double()) @ model.weight


def _batch(n=16, d=6, classes=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return x, torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize(
    "name,radius,step,projected",
    [("fgsm", 0.0, 1.0, True), ("fgsm_rs", 1.0, 1.25, True), ("n_fgsm", 2.0, 1.0, False)],
)
def test_single_step_examples_match_the_closed_form_on_a_linear_model(name, radius, step, projected):
    model = _linear()
    x, y = _batch()
    method = build_method(name, model, THREAT, MethodConfig(name=name), 4)
    torch.manual_seed(5)
    x_adv = method.craft(x, y)
    torch.manual_seed(5)  # the same start noise, drawn by hand: U(-radius eps, radius eps)
    noise = (2 * torch.rand(x.shape, dtype=x.dtype) - 1) * radius * EPS
    start = x if radius == 0 else (x + noise).clamp(0, 1)
    expected = start + step * EPS * _closed_form_grad(model, start, y).sign()
    if projected:
        expected = torch.minimum(torch.maximum(expected, x - EPS), x + EPS)
    expected = expected.clamp(0, 1)
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-12)
    torch.manual_seed(5)
    loss, _ = method.loss(x, y)  # the training loss: CE at x_adv
    torch.testing.assert_close(loss, F.cross_entropy(model(expected), y))
    reach = (x_adv - x).abs().max().item()
    assert reach <= EPS + 1e-12 if projected else reach > EPS  # N-FGSM leaves the eps-ball


def test_fgsm_step_key_scales_the_step():
    model = _linear()
    x, y = _batch()
    method = build_method("fgsm", model, THREAT, MethodConfig(name="fgsm", fgsm_step=0.5), 4)
    expected = (x + 0.5 * EPS * _closed_form_grad(model, x, y).sign()).clamp(0, 1)
    torch.testing.assert_close(method.craft(x, y), expected, rtol=0, atol=1e-12)


def _closed_form_alignment(model, x, noisy, y):
    """1 - mean cos(g(x), g(x + eta)) with g from the closed form, differentiable in W and b
    through the noisy point only (the clean gradient is a constant, as in GradAlign)."""
    g_clean = _closed_form_grad(model, x, y).detach()
    g_noisy = _closed_form_grad(model, noisy, y)
    cos = (g_clean * g_noisy).sum(1) / (g_clean.norm(dim=1) * g_noisy.norm(dim=1))
    return 1 - cos.mean()


def test_gradalign_term_and_its_gradient_match_the_closed_form():
    model = _linear()
    x, y = _batch()
    lam = 0.7
    method = build_method("gradalign", model, THREAT, MethodConfig(name="gradalign", gradalign_lambda=lam), 4)
    x_adv = method.craft(x, y)
    torch.manual_seed(9)
    loss, logs = method.objective(model, x, x_adv, y)
    model.zero_grad()
    loss.backward()
    got = [model.weight.grad.clone(), model.bias.grad.clone()]

    reference = copy.deepcopy(model)
    torch.manual_seed(9)
    noisy = (x + (2 * torch.rand(x.shape, dtype=x.dtype) - 1) * EPS).clamp(0, 1)
    align = _closed_form_alignment(reference, x, noisy, y)
    expected = F.cross_entropy(reference(x_adv), y) + lam * align
    reference.zero_grad()
    expected.backward()
    torch.testing.assert_close(logs["align"], align.detach())
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(got, [reference.weight.grad, reference.bias.grad])
    assert 0 < float(align.detach()) < 2 and model.weight.grad.abs().sum() > 0


def test_gradalign_cosine_is_one_minus_direct_autograd_cosine_on_a_nonlinear_model():
    torch.manual_seed(0)
    model = MLP().double()
    x, y = _batch()
    method = build_method("gradalign", model, THREAT, MethodConfig(name="gradalign"), 4)
    torch.manual_seed(3)
    value = method.alignment(model, x, y)
    torch.manual_seed(3)
    noisy = (x + (2 * torch.rand(x.shape, dtype=x.dtype) - 1) * EPS).clamp(0, 1)
    grads = []
    for point in (x, noisy):
        point = point.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(F.cross_entropy(model(point), y, reduction="sum"), point)[0])
    direct = 1 - F.cosine_similarity(grads[0], grads[1], dim=1).mean()
    torch.testing.assert_close(value, direct)


@pytest.mark.parametrize("name", ["fgsm_rs", "n_fgsm", "gradalign"])
def test_rat_variant_without_noise_and_taylor_terms_is_its_base(name):
    torch.manual_seed(0)
    model = MLP().double()
    x, y = _batch()
    base = build_method(name, model, THREAT, MethodConfig(name=name), 4)
    config = MethodConfig(name=f"rat_{name}", sigma_w=0.0, taylor="none")
    rat = build_method(f"rat_{name}", model, THREAT, config, 4)
    results = []
    for method in (base, rat):
        torch.manual_seed(4)
        x_adv = method.craft(x, y)
        loss, _ = method.objective(model, x, x_adv, y)
        results.append((x_adv, loss))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["fgsm_rs", "n_fgsm", "gradalign"])
def test_rat_variant_matches_a_float64_reference_of_the_rat_objective(name):
    torch.manual_seed(0)
    model = MLP().double()
    x, y = _batch()
    alpha, c = 0.3, 0.5
    config = MethodConfig(name=f"rat_{name}", alpha=alpha, soft_c=c, sigma_w=0.0)
    rat = build_method(f"rat_{name}", model, THREAT, config, 4)
    base = build_method(name, model, THREAT, MethodConfig(name=name), 4)
    torch.manual_seed(2)
    x_adv = rat.craft(x, y)
    torch.manual_seed(6)
    loss, _ = rat.objective(model, x, x_adv, y)
    # SPEC section 1 with beta = 0 and PGD-AT's cross-entropy on x_adv in place of the clean one
    ref = _reference_rat_loss(model, x, x_adv, y, alpha, 0.0, c, "reference")
    ref = ref - (1 - alpha) * F.cross_entropy(model(x), y) + (1 - alpha) * F.cross_entropy(model(x_adv), y)
    if name == "gradalign":
        torch.manual_seed(6)
        ref = ref + 0.2 * base.alignment(model, x, y)
    torch.testing.assert_close(loss, ref)


def test_rat_single_step_crafts_on_noisy_weights_and_restores_them():
    torch.manual_seed(0)
    from ratt.models import create_model

    model = create_model("wrn-10-1", 10, (3, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = MethodConfig(name="rat_fgsm_rs", sigma_w=0.05)
    rat = build_method("rat_fgsm_rs", model, THREAT, config, 10)
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 10, (8,))
    torch.manual_seed(7)
    x_adv = rat.craft(x, y)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    noisy = copy.deepcopy(model)  # the same draws by hand: every conv weight, then the start
    torch.manual_seed(7)
    with torch.no_grad():
        for module in noisy.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.add_(torch.randn_like(module.weight), alpha=0.05)
    expected = build_method("fgsm_rs", noisy, THREAT, MethodConfig(name="fgsm_rs"), 10).craft(x, y)
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=0)
    torch.manual_seed(7)
    for module in noisy.modules():  # the same random stream, the start drawn after it
        if isinstance(module, nn.Conv2d):
            torch.randn_like(module.weight)
    clean = build_method("fgsm_rs", model, THREAT, MethodConfig(name="fgsm_rs"), 10).craft(x, y)
    assert not torch.equal(clean, x_adv)


def test_single_step_trades_works_with_rat():
    torch.manual_seed(0)
    model = MLP().double()
    x, y = _batch()
    one = ThreatModel(eps=EPS, step=EPS, steps=1)
    rat = build_method("rat_trades", model, one, MethodConfig(name="rat_trades"), 4)
    loss, logs = rat.loss(x, y)
    assert torch.isfinite(loss) and "taylor1" in logs


def test_single_step_methods_compose_with_awp():
    torch.manual_seed(0)
    model = MLP().double()
    x, y = _batch()
    for name in SINGLE_STEP:
        method = build_method(f"awp+{name}", model, THREAT, MethodConfig(name=f"awp+{name}", awp_warmup=0), 4)
        loss, _ = method.loss(x, y)
        loss.backward()
        method.after_step()
        assert torch.isfinite(loss), name


@pytest.mark.parametrize(
    "args,message",
    [
        (["method=n_fgsm", "method.nfgsm_k=-1"], "method.nfgsm_k must be >= 0"),
        (["method=gradalign", "method.gradalign_lambda=-0.1"], "method.gradalign_lambda must be >= 0"),
        (["method=fgsm_rs", "attack.steps=2"], "takes one attack step"),
        (["method=awp+rat_n_fgsm", "attack.steps=5"], "takes one attack step"),
        (["method=fgsm", "attack.step=0.1"], "method.fgsm_step"),
        (["method=fgsm", "method.fgsm_step=0"], "method.fgsm_step must be > 0"),
        (["method=rat_fgsm_rs", "method.sigma_target=0.05"], "rat_trades' only"),
        (["method=fgsm_rs", "attack.norm=l2"], "attack.norm=linf only"),
        (["run.co_drop=0"], "run.co_drop must be in (0, 100]"),
        (["run.co_drop=101"], "run.co_drop must be in (0, 100]"),
        (["run.on_co=halt"], "run.on_co must be continue or stop"),
    ],
)
def test_bad_single_step_and_guard_settings_are_refused_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


@pytest.mark.parametrize("name", ["rat_fgsm_rs", "rat_n_fgsm", "rat_gradalign"])
def test_rat_noise_alone_makes_the_base_passes_and_the_cost_model_says_so(name):
    from ratt.methods.cost import step_passes

    torch.manual_seed(0)
    model = MLP().double()
    x, y = _batch()
    counts = []
    for taylor in ("first+second", "none"):
        method = build_method(name, model, THREAT, MethodConfig(name=name, taylor=taylor), 4)
        x_adv = method.craft(x, y)
        method.objective(model, x, x_adv, y)  # the first call also finds the classifier
        seen: list[int] = []
        handle = model.register_forward_hook(lambda module, inputs, out, seen=seen: seen.append(1))
        method.objective(model, x, x_adv, y)
        handle.remove()
        counts.append(len(seen))
    assert counts[0] == counts[1] + 1  # the clean forward RAT's terms need, and only it
    full, alone = (step_passes(name, 10, taylor=t).units for t in ("first+second", "none"))
    assert full - alone == 3 and alone == step_passes(name.removeprefix("rat_"), 10).units
