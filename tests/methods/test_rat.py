"""RAT's math against independent computations (autograd, float64 loops, finite differences)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ratt.attacks import ThreatModel
from ratt.config import MethodConfig
from ratt.methods import build_method, rat_trades_loss
from ratt.methods import rat as rat_module
from ratt.methods.noise import WeightNoise, perturbed
from ratt.methods.rat import (
    kl_from_target,
    last_layer_grad_stats,
    soft_label_matrix,
    taylor_targets,
)
from ratt.models import create_model


class MLP(nn.Module):
    """A float64-friendly model with a ``classifier``."""

    def __init__(self, d_in=6, d_hidden=5, num_classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, d_hidden), nn.Tanh())
        self.classifier = nn.Linear(d_hidden, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))


@pytest.mark.parametrize("batch,classes", [(1, 2), (7, 10), (33, 100)])
def test_last_layer_stats_match_autograd_row_sums(batch, classes):
    torch.manual_seed(batch)
    fc = nn.Linear(9, classes).double()
    h = torch.randn(batch, 9, dtype=torch.float64)
    y = torch.randint(0, classes, (batch,))
    logits = fc(h)
    F.cross_entropy(logits, y).backward()
    expected = fc.weight.grad.sum(dim=1)
    got = last_layer_grad_stats(h.float(), logits.detach().float(), y).double()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert not last_layer_grad_stats(h, logits, y).requires_grad


def test_soft_label_matrix_on_a_hand_worked_case():
    s = soft_label_matrix(torch.tensor([5.0, 6.0, 8.0]), 0.8)  # gaps above the min: 0, 1, 3
    expected = torch.tensor([[0.2, 0.2, 0.6], [0.0, 0.2, 0.8], [0.0, 0.8, 0.2]])
    torch.testing.assert_close(s, expected)


@pytest.mark.parametrize("classes", [2, 3, 10, 100])
def test_soft_label_rows_sum_to_one_with_one_minus_c_on_the_diagonal(classes):
    torch.manual_seed(classes)
    c = 1 - 2 / classes
    for v in (
        torch.randn(classes),
        torch.zeros(classes),
        torch.ones(classes) * 3,
        F.one_hot(torch.tensor(0), classes).float(),
    ):
        s = soft_label_matrix(v, c)
        assert torch.isfinite(s).all() and (s >= 0).all()
        torch.testing.assert_close(s.sum(1), torch.ones(classes))
        torch.testing.assert_close(s.diagonal(), torch.full((classes,), 1 - c))


def test_soft_label_row_without_off_diagonal_mass_is_uniform():
    # only class 0 has a gap: row 0 has nothing off its diagonal -> c spread uniformly
    s = soft_label_matrix(torch.tensor([1.0, 0.0, 0.0, 0.0]), 0.9)
    torch.testing.assert_close(s[0], torch.tensor([0.1, 0.3, 0.3, 0.3]))
    # equal gaps everywhere: every row is uniform off the diagonal
    s = soft_label_matrix(torch.full((4,), 2.0), 0.9)
    torch.testing.assert_close(s[2], torch.tensor([0.3, 0.3, 0.1, 0.3]))


def test_second_order_modes():
    g_nat, g_adv = torch.tensor([0.3, -0.1, 0.2]), torch.tensor([0.1, 0.4, -0.2])
    y = torch.tensor([0, 2])
    _, _, yy1, yy2 = taylor_targets(g_nat, g_adv, y, 1 / 3, "reference")
    torch.testing.assert_close(yy1, yy2)
    _, _, sy1, sy2 = taylor_targets(g_nat, g_adv, y, 1 / 3, "symmetric")
    torch.testing.assert_close(sy2, yy2)
    torch.testing.assert_close(sy1, soft_label_matrix(g_nat.square() - g_adv.square(), 1 / 3)[y])
    assert not torch.allclose(sy1, yy1)


def _reference_rat_loss(model, x, x_adv, y, alpha, beta, c, second_order):
    """Straight from SPEC section 1, with Python loops and autograd statistics (float64)."""
    classes = model.classifier.out_features

    def grad_stats(inputs):
        probe = MLP(x.shape[1], model.classifier.in_features, classes).double()
        probe.load_state_dict(model.state_dict())
        probe.zero_grad()
        F.cross_entropy(probe(inputs), y).backward()
        return probe.classifier.weight.grad.sum(1)

    def S(v):
        v = v - v.min()
        v = v / v.sum()
        rows = []
        for k in range(classes):
            off = [float(v[j]) if j != k else 0.0 for j in range(classes)]
            total = sum(off)
            row = [c * o / total if total > 0 else c / (classes - 1) for o in off]
            row[k] = 1 - c
            rows.append(row)
        return torch.tensor(rows, dtype=torch.float64)

    def kl(q, logits):
        p = F.softmax(logits, 1)
        terms = torch.where(q > 0, q * (q.clamp_min(1e-300).log() - p.log()), -0 * p)
        return terms.sum(1).mean()

    g_nat, g_adv = grad_stats(x), grad_stats(x_adv)
    t1n, t1a, t2n, t2a = g_nat.abs(), g_adv.abs(), g_nat**2, g_adv**2
    y1, y2 = S(t1n - t1a)[y], S(t1a - t1n)[y]
    yy2 = S(t2a - t2n)[y]
    yy1 = yy2 if second_order == "reference" else S(t2n - t2a)[y]
    z_nat, z_adv = model(x), model(x_adv)
    p_nat = F.softmax(z_nat, 1)
    first = 0.5 * (kl(y1, z_adv) + kl(y2, z_nat))
    second = 0.5 * (kl(yy1, z_adv) + kl(yy2, z_nat))
    trades_kl = (p_nat * (p_nat.log() - F.log_softmax(z_adv, 1))).sum(1).mean()
    ce = F.cross_entropy(z_nat, y)
    return (1 - alpha) * ce + beta * trades_kl + alpha * first + 0.5 * alpha * second


@pytest.mark.parametrize("second_order", ["reference", "symmetric"])
def test_rat_trades_loss_matches_a_float64_reference(second_order):
    torch.manual_seed(0)
    model = MLP().double()
    x = torch.randn(12, 6, dtype=torch.float64)
    x_adv = x + 0.3 * torch.randn_like(x)
    y = torch.randint(0, 4, (12,))
    got = rat_trades_loss(model, x, x_adv, y, alpha=0.2, beta=6.0, second_order=second_order)
    want = _reference_rat_loss(model, x, x_adv, y, 0.2, 6.0, 1 - 2 / 4, second_order)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_rat_trades_loss_with_alpha_zero_is_trades():
    torch.manual_seed(1)
    model = MLP().double()
    x = torch.randn(10, 6, dtype=torch.float64)
    x_adv = x + 0.2 * torch.randn_like(x)
    y = torch.randint(0, 4, (10,))
    got = rat_trades_loss(model, x, x_adv, y, alpha=0.0, beta=6.0)
    p, log_q = F.softmax(model(x), 1), F.log_softmax(model(x_adv), 1)
    want = F.cross_entropy(model(x), y) + 6.0 * (p * (p.log() - log_q)).sum(1).mean()
    torch.testing.assert_close(got, want)


def test_rat_trades_loss_gradient_matches_finite_differences(monkeypatch):
    """The statistics are constants of the loss: freeze them at w0, then compare autograd
    with central differences in float64."""
    torch.manual_seed(2)
    model = MLP().double()
    x = torch.randn(8, 6, dtype=torch.float64)
    x_adv = x + 0.3 * torch.randn_like(x)
    y = torch.randint(0, 4, (8,))
    frozen = []
    original = rat_module.last_layer_grad_stats
    with torch.no_grad():
        for inputs in (x, x_adv):
            feats = model.body(inputs)
            frozen.append(original(feats, model.classifier(feats), y).double())
    calls = {"n": 0}

    def fixed(features, logits, labels, distributed=False):
        out = frozen[calls["n"] % 2]
        calls["n"] += 1
        return out

    monkeypatch.setattr(rat_module, "last_layer_grad_stats", fixed)
    loss = rat_trades_loss(model, x, x_adv, y, alpha=0.5, beta=2.0)
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params)
    h = 1e-6
    with torch.no_grad():
        for param, grad in zip(params, grads, strict=True):
            flat, gflat = param.view(-1), grad.reshape(-1)
            for i in range(0, flat.numel(), max(1, flat.numel() // 5)):
                old = flat[i].item()
                flat[i] = old + h
                up = rat_trades_loss(model, x, x_adv, y, alpha=0.5, beta=2.0)
                flat[i] = old - h
                down = rat_trades_loss(model, x, x_adv, y, alpha=0.5, beta=2.0)
                flat[i] = old
                numeric = (up - down) / (2 * h)
                assert abs(numeric.item() - gflat[i].item()) < 1e-6 * max(1.0, abs(numeric.item()))


def test_kl_from_target_handles_zero_targets():
    q = torch.tensor([[0.0, 0.5, 0.5]])
    logits = torch.tensor([[0.0, 1.0, 2.0]], requires_grad=True)
    value = kl_from_target(q, logits)
    p = F.softmax(logits, 1)
    expected = 0.5 * (0.5 / p[0, 1]).log() + 0.5 * (0.5 / p[0, 2]).log()
    torch.testing.assert_close(value, expected)
    value.backward()
    assert torch.isfinite(logits.grad).all()


def test_crafting_noise_adds_noise_of_the_right_size_and_restores_exactly():
    model = create_model("wrn-10-2", 10, (3, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    backup = {}
    with perturbed(model, WeightNoise(0.01), backup):
        convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        diffs = torch.cat([(m.weight - before[f"{n}.weight"]).flatten() for n, m in convs])
        assert diffs.std().item() == pytest.approx(0.01, rel=0.05)
        assert torch.equal(model.classifier.weight, before["net.classifier.weight"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_rat_trades_crafts_on_noisy_weights_and_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = build_method(
        "rat_trades",
        model,
        ThreatModel(eps=0.1, step=0.02, steps=2),
        MethodConfig(name="rat_trades", sigma_w=0.05),
        10,
    )
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    x_adv = method.craft(x, y)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    loss, logs = method.loss(x, y)
    assert torch.isfinite(loss) and {"ce", "kl", "taylor1", "taylor2"} <= set(logs)
