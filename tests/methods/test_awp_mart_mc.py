"""MART, AWP and the Monte-Carlo objective against hand computations on tiny models."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ratt.attacks import ThreatModel
from ratt.config import MethodConfig
from ratt.core.weights import perturbable_weights
from ratt.methods import build_method
from ratt.methods.awp import AWP
from ratt.methods.losses import mart_terms
from ratt.models import create_model

THREAT = ThreatModel(eps=0.1, step=0.025, steps=2)


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.classifier = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.classifier(F.relu(self.bn(self.conv(x))).flatten(1))


def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_mart_terms_match_a_loop_over_samples():
    torch.manual_seed(0)
    z_nat, z_adv = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    bce, wkl = mart_terms(z_nat, z_adv, y)
    bce_ref, wkl_ref = 0.0, 0.0
    for i in range(6):
        p_adv, p_nat = F.softmax(z_adv[i], 0), F.softmax(z_nat[i], 0)
        wrong = max(p_adv[k] for k in range(5) if k != y[i])
        bce_ref += -torch.log(p_adv[y[i]]) - torch.log(1 - wrong)
        wkl_ref += (p_nat * (p_nat / p_adv).log()).sum() * (1 - p_nat[y[i]])
    torch.testing.assert_close(bce, bce_ref / 6)
    torch.testing.assert_close(wkl, wkl_ref / 6)


def test_mart_terms_stay_finite_on_saturated_logits():
    z = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    bce, wkl = mart_terms(z, z * -1, torch.tensor([1]))
    (bce + wkl).backward()
    assert torch.isfinite(bce) and torch.isfinite(wkl) and torch.isfinite(z.grad).all()


def _awp(name="awp+trades", lr_proxy=0.01, model=None, **kw):
    torch.manual_seed(0)
    model = model or BNNet()
    config = MethodConfig(name=name, awp_warmup=0, awp_lr=lr_proxy, **kw)
    return model, build_method(name, model, THREAT, config, 10)


def test_awp_default_gamma_follows_the_base_method():
    assert _awp("awp+trades")[1].gamma == 0.005
    assert _awp("awp+rat_trades")[1].gamma == 0.005
    assert _awp("awp+pgd_at")[1].gamma == 0.01
    assert _awp("awp+trades", awp_gamma=0.02)[1].gamma == 0.02


def test_awp_direction_has_the_norm_of_each_weight_and_leaves_bn_statistics_alone():
    model, method = _awp()
    x, y = _batch()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    x_adv = method.craft(x, y)
    direction = method.weight_direction(x, x_adv, y)
    weights = perturbable_weights(model)
    assert set(direction) == {"conv.weight", "classifier.weight"}  # >= 2 dims only
    for name, d in direction.items():
        assert d.norm().item() == pytest.approx(weights[name].norm().item(), rel=1e-5)
    for key, value in stats.items():
        assert torch.equal(model.state_dict()[key], value)


def test_awp_restores_the_weights_exactly_when_the_optimizer_does_not_move_them():
    model, method = _awp()
    before = copy.deepcopy(model.state_dict())
    x, y = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    loss, _ = method.loss(x, y)
    assert not torch.equal(model.conv.weight, before["conv.weight"])  # perturbed during the step
    opt.zero_grad()
    loss.backward()
    opt.step()
    method.after_step()
    for name in ("conv.weight", "classifier.weight", "conv.bias", "classifier.bias"):
        assert torch.equal(model.state_dict()[name], before[name]), name


def test_awp_step_applies_the_gradient_taken_at_the_perturbed_weights():
    model, method = _awp()
    twin = copy.deepcopy(model)
    x, y = _batch()
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    torch.manual_seed(5)
    loss, _ = method.loss(x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    method.after_step()

    # independent: same x_adv, perturb a copy by hand, take its gradient, update the original
    torch.manual_seed(5)
    twin_method = build_method("trades", twin, THREAT, MethodConfig(), 10)
    x_adv = twin_method.craft(x, y)
    proxy = copy.deepcopy(twin)
    proxy_loss, _ = twin_method.objective(proxy, x, x_adv, y)
    grads = torch.autograd.grad(-proxy_loss, [p for p in proxy.parameters()])
    stepped = {n: p - 0.01 * g for (n, p), g in zip(proxy.named_parameters(), grads, strict=True)}
    perturbed = copy.deepcopy(twin)
    with torch.no_grad():
        for n, p in perturbed.named_parameters():
            if p.ndim >= 2:
                diff = stepped[n] - dict(twin.named_parameters())[n]
                p.add_(0.005 * diff * p.norm() / (diff.norm() + 1e-20))
    ref_loss, _ = twin_method.objective(perturbed, x, x_adv, y)
    ref_grads = dict(
        zip(
            [n for n, _ in perturbed.named_parameters()],
            torch.autograd.grad(ref_loss, list(perturbed.parameters())),
            strict=True,
        )
    )
    torch.testing.assert_close(loss, ref_loss)
    for n, p in twin.named_parameters():
        torch.testing.assert_close(
            dict(model.named_parameters())[n], p - lr * ref_grads[n], rtol=1e-5, atol=1e-6
        )


def test_awp_waits_for_its_warmup():
    torch.manual_seed(0)
    model = BNNet()
    method = build_method("awp+trades", model, THREAT, MethodConfig(awp_warmup=2), 10)
    assert isinstance(method, AWP)
    x, y = _batch()
    before = model.conv.weight.clone()
    method.start_epoch(1)
    method.loss(x, y)
    assert torch.equal(model.conv.weight, before)
    method.start_epoch(2)
    method.loss(x, y)
    assert not torch.equal(model.conv.weight, before)
    method.after_step()
    assert torch.equal(model.conv.weight, before)


def test_awp_crafts_rat_examples_without_weight_noise():
    _, method = _awp("awp+rat_trades")
    assert method.inner.sigma_w == 0.0


def test_rat_mc_with_zero_noise_is_trades():
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8)).eval()
    x, y = _batch(8)
    x_adv = (x + 0.05).clamp(0, 1)
    mc = build_method("rat_mc", model, THREAT, MethodConfig(mc_sigma=0.0, mc_samples=3), 10)
    trades = build_method("trades", model, THREAT, MethodConfig(), 10)
    torch.testing.assert_close(mc.objective(model, x, x_adv, y)[0], trades.objective(model, x, x_adv, y)[0])


def test_rat_mc_averages_trades_over_noisy_weights():
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8)).eval()
    x, y = _batch(8)
    x_adv = (x + 0.05).clamp(0, 1)
    config = MethodConfig(mc_sigma=0.5, mc_samples=2, mc_relative=False)
    mc = build_method("rat_mc", model, THREAT, config, 10)
    torch.manual_seed(3)
    got, _ = mc.objective(model, x, x_adv, y)
    # by hand: draw the same noise in the same order, perturb copies, average TRADES
    torch.manual_seed(3)
    trades = build_method("trades", model, THREAT, MethodConfig(), 10)
    total = 0.0
    for _ in range(2):
        noisy = copy.deepcopy(model)
        with torch.no_grad():
            for p in noisy.parameters():
                if p.ndim >= 2:
                    p.add_(torch.randn_like(p) * 0.5)
        total = total + trades.objective(noisy, x, x_adv, y)[0] / 2
    torch.testing.assert_close(got, total)
    assert got.requires_grad
