from __future__ import annotations

import pytest
import torch

from ratt.attacks import (
    ATTACKS,
    ThreatModel,
    autoattack,
    cw,
    fgsm,
    pgd,
    project,
    trades_attack,
)
from ratt.attacks.base import ball_noise, random_start
from ratt.core.units import parse_magnitude
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


# ---------------------------------------------------------------- every attack, every norm
def _ball_size(x_adv, x, norm):
    delta = (x_adv - x).flatten(1)
    return delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)


# One instance of every registered attack (families with 5 steps), clean aside.
EXAMPLES = [name.replace("N", "5") for name in ATTACKS.names() if name != "clean"]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", EXAMPLES)
def test_every_attack_stays_in_the_ball_and_in_range(name, norm, digits_test):
    model = trained_linear_digits()
    x, y = digits_test.images[:8].float(), digits_test.labels[:8]
    # large radii: AutoAttack's first stage breaks every point and the test stays fast
    eps = 0.5 if norm == "linf" else 4.0
    x_adv, _ = ATTACKS.get(name).run(model, x, y, ThreatModel(norm, eps, eps / 4, 5))
    assert x_adv.shape == x.shape
    assert (_ball_size(x_adv, x, norm) <= eps + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_attack_restores_train_mode(name):
    model = Linear().train()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    ATTACKS.get(name).run(model, x, y, ThreatModel(eps=0.5, step=0.2, steps=2))
    assert model.training


def _random_linear(num_classes, dim=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    model = Linear((1, 8, 8), num_classes)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn(num_classes, dim, generator=gen))
        model.classifier.bias.copy_(torch.randn(num_classes, generator=gen))
    # inputs in [0.3, 0.7] and eps <= 0.05: the ball never touches the [0, 1] box
    x = 0.3 + 0.4 * torch.rand(400, 1, 8, 8, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)  # correct by construction, so robustness is a margin question
    return model.eval(), x, y


def _closed_form_robust(model, x, y, eps):
    """Exact L-inf robustness of a linear classifier without box constraints, in float64:
    robust iff for every j != y, (w_y - w_j).x + b_y - b_j > eps * ||w_y - w_j||_1."""
    w = model.classifier.weight.double()
    b = model.classifier.bias.double()
    flat = x.flatten(1).double()
    margins = (flat @ w.T + b).gather(1, y[:, None]) - (flat @ w.T + b)  # (N, C)
    l1 = (w[y][:, None, :] - w[None, :, :]).abs().sum(-1)  # (N, C)
    ok = (margins > eps * l1) | torch.nn.functional.one_hot(y, w.shape[0]).bool()
    return ok.all(1)


def test_linf_pgd_finds_the_analytic_worst_case_of_a_binary_linear_model():
    model, x, y = _random_linear(2)
    eps = 0.02
    x_adv = pgd(model, x, y, ThreatModel("linf", eps, eps / 4, 20, random_start=True))
    with torch.no_grad():
        pgd_correct = model(x_adv).argmax(1) == y
    exact = _closed_form_robust(model, x, y, eps)
    assert 0.1 < exact.float().mean() < 0.9  # the test is not trivial
    assert torch.equal(pgd_correct, exact)
    # and the perturbation is the analytic corner -eps * sign(w_y - w_j)
    w = model.classifier.weight.detach()
    corner = x.flatten(1) - eps * (w[y] - w[1 - y]).sign()
    torch.testing.assert_close(x_adv.flatten(1), corner)


def test_linf_pgd_is_bounded_by_and_close_to_the_exact_multiclass_robust_accuracy():
    model, x, y = _random_linear(10)
    eps = 0.04
    x_adv = pgd(model, x, y, ThreatModel("linf", eps, eps / 4, 50, restarts=2))
    with torch.no_grad():
        pgd_acc = (model(x_adv).argmax(1) == y).float().mean().item()
    exact = _closed_form_robust(model, x, y, eps).float().mean().item()
    assert 0.05 < exact < 0.95
    assert pgd_acc >= exact - 1e-9  # no attack beats the exact worst case
    assert pgd_acc <= exact + 0.03


def test_cw_margin_cap_is_configurable(digits_test):
    model = trained_linear_digits()
    x, y = digits_test.images[:64].float(), digits_test.labels[:64]
    threat = ThreatModel("linf", 0.1, 0.025, 10, random_start=False)
    torch.testing.assert_close(cw(model, x, y, threat), pgd(model, x, y, threat, loss="cw"))
    # with kappa = 0 the margin saturates at once: only points still correct move
    stuck = cw(model, x, y, threat, kappa=-1e9)
    torch.testing.assert_close(stuck, x)


def test_ratts_autoattack_gives_the_reference_evaluations_per_point_outcome(digits_test):
    """The reference's own run_standard_evaluation over the whole set and ratt's stage-by-stage
    runs (and ratt eval --attacks aa, one chunk of 100 points) agree point by point."""
    from pyautoattack import AutoAttack

    from ratt.eval import evaluate
    from ratt.eval.chunks import chunk_seed

    model = trained_linear_digits()
    x, y = digits_test.images[:100].float(), digits_test.labels[:100]
    threat = ThreatModel("linf", 0.1, 0.025, 20)
    seed = chunk_seed(0, 0)  # what ratt eval uses for the first chunk at seed 0
    reference = AutoAttack(model, norm="Linf", eps=0.1, version="standard", seed=seed)
    reference.verbose = False
    x_ref, _ = reference.run_standard_evaluation(x, y, batch_size=100)
    with torch.no_grad():
        reference_correct = model(x_ref).argmax(1) == y
    result = evaluate(model, digits_test.subset(torch.arange(100)), ["aa"], threat, batch_size=100, seed=0)
    assert torch.equal(result.correct["aa"], reference_correct)
    assert result.stages["aa"][-1] == int(reference_correct.sum())


def test_autoattack_refuses_fewer_than_ten_classes():
    model = Linear(num_classes=5)
    with pytest.raises(UserError, match="10 classes"):
        autoattack(model, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), ThreatModel(eps=0.1))


def test_autoattack_is_at_most_pgd20_and_keeps_the_callers_rng(digits_test):
    model = trained_linear_digits()
    x, y = digits_test.images[:16].float(), digits_test.labels[:16]
    threat = ThreatModel("linf", 0.15, 0.15 / 4, 20)
    pgd_acc = _accuracy(model, pgd(model, x, y, threat), y)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    aa_acc = _accuracy(model, autoattack(model, x, y, threat), y)
    assert torch.rand(1) == expected  # the reference's re-seeding did not leak
    assert 0 < pgd_acc and aa_acc <= pgd_acc


@pytest.mark.slow
def test_autoattack_is_at_most_pgd20_on_more_points(digits_test):
    model = trained_linear_digits()
    x, y = digits_test.images[:128].float(), digits_test.labels[:128]
    threat = ThreatModel("linf", 0.1, 0.025, 20)
    aa_correct = model(autoattack(model, x, y, threat)).argmax(1) == y
    pgd_correct = model(pgd(model, x, y, threat)).argmax(1) == y
    assert aa_correct.float().mean() <= pgd_correct.float().mean()


def test_pgd_leaves_parameter_gradients_switched_on():
    model = Linear()
    model.classifier.bias.requires_grad_(False)
    pgd(model, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), ThreatModel(eps=0.1, step=0.05, steps=2))
    assert model.classifier.weight.requires_grad and not model.classifier.bias.requires_grad


# ---------------------------------------------------------------- given random starts
@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_pgd_from_given_starts_equals_pgd_from_the_same_random_draws(norm, eps, digits_test):
    """``start`` replaces the random draw and nothing else: the start ``random_start`` draws
    from a generator, passed in, gives the attack the same generator would (restarts too)."""
    model = trained_linear_digits()
    x, y = digits_test.images[:64].float(), digits_test.labels[:64]
    threat = ThreatModel(norm, eps, eps / 4, 5)
    drawn = pgd(model, x, y, threat, generator=torch.Generator().manual_seed(7))
    start = random_start(x, norm, eps, torch.Generator().manual_seed(7))
    torch.testing.assert_close(pgd(model, x, y, threat, start=start), drawn, rtol=0, atol=0)
    by_cw = cw(model, x, y, threat, start=start)
    torch.testing.assert_close(by_cw, pgd(model, x, y, threat, "cw", start=start), rtol=0, atol=0)
    # two restarts: the second start only matters for points the first run left correct
    starts = torch.stack([start, random_start(x, norm, eps, torch.Generator().manual_seed(8))])
    both = pgd(model, x, y, ThreatModel(norm, eps, eps / 4, 5, restarts=2), start=starts)
    with torch.no_grad():
        fooled_first = model(drawn).argmax(1) != y
        fooled_both = model(both).argmax(1) != y
    torch.testing.assert_close(both[fooled_first], drawn[fooled_first], rtol=0, atol=0)
    assert (fooled_both >= fooled_first).all()
    with pytest.raises(ValueError, match="shape"):
        pgd(model, x, y, threat, start=starts)  # two starts for one restart


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.0)])
def test_ball_noise_fills_the_ball_and_is_the_same_for_the_same_generator_state(norm, eps):
    noise = ball_noise(500, (1, 8, 8), norm, eps, torch.Generator().manual_seed(1))
    flat = noise.flatten(1)
    size = flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)
    assert noise.shape == (500, 1, 8, 8) and noise.dtype == torch.float32 and noise.device.type == "cpu"
    assert (size <= eps + 1e-6).all() and size.max() > 0.9 * eps
    assert torch.equal(noise, ball_noise(500, (1, 8, 8), norm, eps, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("bad", [{"eps": float("nan")}, {"step": float("inf")}, {"eps": -0.1}])
def test_a_threat_model_refuses_non_finite_or_negative_radii(bad):
    with pytest.raises(ValueError, match="finite and >= 0"):
        ThreatModel(**bad)
