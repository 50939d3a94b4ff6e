"""RAT's switches (docs/methods.md): noise distributions and scopes, Taylor-term selection,
the alpha warm-up, the adaptive noise controller, label smoothing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ratt.attacks import ThreatModel
from ratt.config import MethodConfig
from ratt.methods import build_method
from ratt.methods.losses import cross_entropy, kl_batchmean
from ratt.methods.noise import WeightNoise, draw_noise, loss_rise, next_sigma, noisy_weights_of, perturbed
from ratt.methods.rat import combine, default_soft_c, forward_with_features, taylor_terms
from ratt.methods.rat_plugin import warmed_alpha
from ratt.models import create_model

THREAT = ThreatModel(eps=0.1, step=0.02, steps=2)


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "laplace"])
def test_every_noise_distribution_has_the_requested_std_and_its_own_shape(kind):
    gen = torch.Generator().manual_seed(0)
    sample = draw_noise(torch.empty(400_000, dtype=torch.float64), 0.3, kind, gen)
    # n = 4e5: the sample std is within 0.5% of 0.3 for all three (kurtosis <= 6)
    assert sample.std().item() == pytest.approx(0.3, rel=0.005)
    assert abs(sample.mean().item()) < 0.003
    excess_kurtosis = ((sample - sample.mean()) ** 4).mean() / sample.var() ** 2 - 3
    expected = {"gaussian": 0.0, "uniform": -1.2, "laplace": 3.0}[kind]
    assert excess_kurtosis.item() == pytest.approx(expected, abs=0.1)
    if kind == "uniform":
        assert sample.abs().max() <= 0.3 * math.sqrt(3)


def test_noise_scope_and_relative_scale():
    model = create_model("smallcnn", 10, (1, 8, 8))
    convs = noisy_weights_of(model, "conv")
    everything = noisy_weights_of(model, "all")
    assert all(p.ndim == 4 for p in convs.values()) and set(convs) < set(everything)
    assert any(p.ndim == 2 for p in everything.values())
    before = {n: p.detach().clone() for n, p in everything.items()}
    with perturbed(model, WeightNoise(0.1, "gaussian", "all", relative=True), {}):
        for name, p in everything.items():
            if p.numel() < 500:
                continue
            rms = before[name].square().mean().sqrt()
            assert (p - before[name]).std().item() == pytest.approx(0.1 * rms.item(), rel=0.15)
    for name, p in everything.items():
        assert torch.equal(p.detach(), before[name])


def _terms(model, x, x_adv, y):
    z_nat, z_adv, h_nat, h_adv = forward_with_features(model, model.classifier, x, x_adv)
    ce = F.cross_entropy(z_nat, y)
    rest = 6.0 * kl_batchmean(z_nat, z_adv)
    first, second = taylor_terms(z_nat, z_adv, h_nat, h_adv, y, default_soft_c(10))
    return ce, rest, first, second


@pytest.mark.parametrize("taylor", ["first+second", "first", "second", "none"])
def test_taylor_switch_keeps_exactly_the_chosen_parts_of_the_full_loss(taylor):
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8)).double()
    x = torch.rand(16, 1, 8, 8, dtype=torch.float64)
    x_adv = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    y = torch.randint(0, 10, (16,))
    config = MethodConfig(name="rat_trades", taylor=taylor, alpha=0.3)
    method = build_method("rat_trades", model, THREAT, config, 10)
    got, _ = method.objective(model, x, x_adv, y)
    ce, rest, first, second = _terms(model, x, x_adv, y)
    a = 0.3
    want = {
        "first+second": (1 - a) * ce + rest + a * first + a / 2 * second,
        "first": (1 - a) * ce + rest + a * first,
        "second": (1 - a) * ce + rest + a / 2 * second,
        "none": ce + rest,  # TRADES itself
    }[taylor]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert combine(ce, rest, first, second, a, taylor).item() == pytest.approx(want.item(), rel=1e-12)


def test_alpha_warmup_ramps_linearly_per_epoch():
    model = create_model("smallcnn", 10, (1, 8, 8))
    method = build_method(
        "rat_trades", model, THREAT, MethodConfig(name="rat_trades", alpha=0.2, alpha_warmup=4), 10
    )
    seen = []
    for epoch in range(6):
        method.start_epoch(epoch)
        seen.append(method.alpha)
    assert seen == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert warmed_alpha(0.2, 3, 0) == 0.2


class Basis(nn.Module):
    """Logits ``W x`` for inputs that are basis vectors: at zero weights every CE is log C and
    weight noise u gives input i the logits u[:, i], independent across inputs.

    Expanding logsumexp to second order around 0 (gradient 1/C, Hessian I/C - 11^T/C^2):
    ``E[CE(w + u)] - log C = sigma^2 (C - 1) / (2C)``, so the relative rise is
    ``sigma^2 (C - 1) / (2 C log C)``.
    """

    def __init__(self, classes: int, dim: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(dim, classes, bias=False)
        nn.init.zeros_(self.classifier.weight)

    def forward(self, x):
        return self.classifier(x)


def test_the_noise_controller_reaches_its_target_on_a_closed_form_loss():
    torch.manual_seed(0)
    classes, n, target = 10, 512, 0.002
    model = Basis(classes, n)
    x, y = torch.eye(n), torch.randint(0, classes, (n,))
    sigma, history = 1e-4, []
    for _ in range(40):
        rise = loss_rise(model, x, y, WeightNoise(sigma, "gaussian", "all"))
        sigma = next_sigma(sigma, rise, target)
        history.append(sigma)
    expected = math.sqrt(2 * classes * target * math.log(classes) / (classes - 1))
    settled = math.exp(sum(math.log(s) for s in history[-10:]) / 10)  # geometric mean of the last 10
    assert settled == pytest.approx(expected, rel=0.05)
    assert next_sigma(1.0, 0.0, 0.1) == 2.0 and next_sigma(1.0, 100.0, 0.1) == 0.5  # clipped steps


def test_rat_trades_with_a_target_adapts_sigma_logs_it_and_checkpoints_it():
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8))
    config = MethodConfig(name="rat_trades", sigma_w=1e-4, sigma_target=0.05, sigma_every=1)
    method = build_method("rat_trades", model, THREAT, config, 10)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    sigmas = []
    for _ in range(3):
        _, logs = method.loss(x, y)
        sigmas.append(float(logs["sigma_w"]))
    assert sigmas[0] > 1e-4 and sigmas[1] > sigmas[0]  # 1e-4 raises the loss far less than 5%
    state = method.state_dict()
    fresh = build_method("rat_trades", model, THREAT, config, 10)
    fresh.load_state_dict(state)
    assert fresh.sigma_w == method.sigma_w and fresh.steps_done == 3


def test_the_default_switches_draw_the_authors_noise_bit_for_bit():
    """gaussian + conv + absolute: weight + sigma * randn_like(weight), as before the switches."""
    model = create_model("smallcnn", 10, (1, 8, 8))
    convs = noisy_weights_of(model, "conv")
    before = {n: p.detach().clone() for n, p in convs.items()}
    torch.manual_seed(3)
    with perturbed(model, WeightNoise(0.01), {}):
        got = {n: p.detach().clone() for n, p in convs.items()}
    torch.manual_seed(3)
    for name, weight in before.items():
        assert torch.equal(got[name], weight.clone().add_(torch.randn_like(weight), alpha=0.01))


@pytest.mark.parametrize("method_name", ["natural", "trades", "pgd_at", "rat_trades"])
def test_label_smoothing_is_torchs_label_smoothing(method_name):
    logits, y = torch.randn(8, 10, dtype=torch.float64), torch.randint(0, 10, (8,))
    expected = F.cross_entropy(logits, y, label_smoothing=0.1)
    # independent: the smoothed target written out
    target = torch.full_like(logits, 0.1 / 10)
    target[torch.arange(8), y] += 0.9
    by_hand = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(expected, by_hand)
    assert torch.equal(cross_entropy(logits, y, 0.1), expected)
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8)).double()
    x = torch.rand(8, 1, 8, 8, dtype=torch.float64)
    config = MethodConfig(name=method_name, label_smoothing=0.1, taylor="none")
    method = build_method(method_name, model, THREAT, config, 10)
    x_adv = x if method_name == "natural" else (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    loss, _ = method.objective(model, x, x_adv, y)
    z_nat, z_adv = model(x), model(x_adv)
    want = {
        "natural": F.cross_entropy(z_nat, y, label_smoothing=0.1),
        "pgd_at": F.cross_entropy(z_adv, y, label_smoothing=0.1),
        "trades": F.cross_entropy(z_nat, y, label_smoothing=0.1) + 6.0 * kl_batchmean(z_nat, z_adv),
        "rat_trades": F.cross_entropy(z_nat, y, label_smoothing=0.1) + 6.0 * kl_batchmean(z_nat, z_adv),
    }[method_name]
    torch.testing.assert_close(loss, want)
