from __future__ import annotations

import pytest
import torch

from ratt.attacks import ThreatModel, fgsm, parse_magnitude, pgd, project, trades_attack
from ratt.errors import UserError
from tests.helpers import Linear, trained_linear_digits


def _accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_pgd_stays_in_the_ball_and_in_range(norm, loss, digits_test):
    model = trained_linear_digits()
    x, y = digits_test.images[:64].float(), digits_test.labels[:64]
    eps = 0.2 if norm == "linf" else 1.0
    threat = ThreatModel(norm, eps, eps / 4, 10, restarts=2)
    x_adv = pgd(model, x, y, threat, loss=loss)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_trades_attack_stays_in_the_ball_and_in_range(digits_test):
    model = trained_linear_digits()
    x = digits_test.images[:64].float()
    x_adv = trades_attack(model, x, ThreatModel("linf", 0.1, 0.02, 5))
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_pgd_lowers_the_accuracy_of_a_trained_model(digits_test):
    model = trained_linear_digits()
    x, y = digits_test.images.float(), digits_test.labels
    clean = _accuracy(model, x, y)
    weak = _accuracy(model, fgsm(model, x, y, ThreatModel(eps=0.1, step=0.1, steps=1)), y)
    strong = _accuracy(model, pgd(model, x, y, ThreatModel(eps=0.1, step=0.025, steps=20)), y)
    assert clean > 0.9
    assert strong < clean - 0.3
    assert strong <= weak + 0.02  # 20 steps are at least as strong as one


def test_pgd_with_zero_eps_returns_the_clean_input(digits_test):
    model = trained_linear_digits()
    x, y = digits_test.images[:32].float(), digits_test.labels[:32]
    torch.testing.assert_close(pgd(model, x, y, ThreatModel(eps=0.0, step=0.0, steps=5)), x)


def test_attacks_restore_the_callers_mode():
    model = Linear().train()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    pgd(model, x, y, ThreatModel(eps=0.1, step=0.05, steps=2))
    assert model.training
    model.eval()
    trades_attack(model, x, ThreatModel(eps=0.1, step=0.05, steps=2))
    assert not model.training


def test_projection_matches_a_brute_force_clamp():
    x = torch.rand(8, 3, 4, 4)
    far = x + 3 * torch.randn_like(x)
    expected = torch.minimum(torch.maximum(far, x - 0.1), x + 0.1).clamp(0, 1)
    torch.testing.assert_close(project(far, x, "linf", 0.1), expected)


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.031", 0.031), (0.2, 0.2)])
def test_eps_accepts_fractions_and_decimals(text, value):
    assert parse_magnitude(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["8", "-0.1", "abc", "1/0"])
def test_eps_rejects_pixel_units_and_garbage(bad):
    with pytest.raises(UserError):
        parse_magnitude(bad)
