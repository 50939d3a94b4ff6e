"""``method.numerics``: the released codes' start points, MART constants and train-mode passes
(``code``) against the formulas as printed (``paper``), each checked against a computation
written out here in a few lines of float64 torch."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ratt
from ratt.attacks import ThreatModel
from ratt.config import MethodConfig, describe_keys
from ratt.config.sections import CHOICES, NUMERICS
from ratt.config.validate import one_of
from ratt.errors import UserError
from ratt.methods import build_method

THREAT = ThreatModel(eps=0.3, step=0.1, steps=1)


def _linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).double()


def _boundary_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(4, 1, 3, 4) float64 images with many pixels exactly at 0 and 1, as digits has."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 3, 4, generator=g, dtype=torch.float64)
    x[x < 0.3], x[x > 0.7] = 0.0, 1.0
    return x, torch.tensor([0, 1, 2, 1])


def _method(name: str, numerics: str, model: nn.Module, threat: ThreatModel = THREAT, **kw):
    return build_method(name, model, threat, MethodConfig(name=name, numerics=numerics, **kw), 3)


def _step(model, start, x, grad_of):
    """One released-code L-inf step: ascend sign(grad), clip to the ball, clamp to [0, 1]."""
    start = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(grad_of(model, start), start)
    moved = start.detach() + THREAT.step * grad.sign()
    return torch.min(torch.max(moved, x - THREAT.eps), x + THREAT.eps).clamp(0.0, 1.0)


def _ce(y):
    return lambda model, z: F.cross_entropy(model(z), y)


def _kl_from(model, x):
    p = F.softmax(model(x), dim=1).detach()
    return lambda m, z: (p * (p.log() - F.log_softmax(m(z), dim=1))).sum()


# ------------------------------------------------------------------------------ MART
def test_mart_margin_term_has_the_released_constants_under_code_and_log_1_minus_p_under_paper():
    # p_adv = (0.6, 0.3, 0.1), y = 0: the top wrong class has p = 0.3
    z_adv = torch.tensor([[0.6, 0.3, 0.1]], dtype=torch.float64).log()
    z_nat = torch.tensor([[0.5, 0.2, 0.3]], dtype=torch.float64).log()
    y = torch.tensor([0])
    pairs = [(0.5, 0.6), (0.2, 0.3), (0.3, 0.1)]  # (p_nat, p_adv) per class
    kl = sum(pn * math.log(pn / pa) for pn, pa in pairs)
    kl_code = sum(pn * (math.log(pn) - math.log(pa + 1e-12)) for pn, pa in pairs)
    expected = {
        "code": (-math.log(0.6) - math.log(1.0001 - 0.3 + 1e-12), kl_code * (1.0000001 - 0.5)),
        "paper": (-math.log(0.6) - math.log(1 - 0.3), kl * (1 - 0.5)),
    }
    for numerics, (bce, weighted_kl) in expected.items():
        got_bce, got_kl, _ = _method("mart", numerics, _linear_model()).loss_terms(z_nat, z_adv, y)
        assert float(got_bce) == pytest.approx(bce, rel=1e-13, abs=0)
        assert float(got_kl) == pytest.approx(6.0 * weighted_kl, rel=1e-13, abs=0)


def test_mart_margin_at_a_certain_wrong_class_is_log_of_the_released_offset():
    """p_adv(wrong) = 1 in float64: the released code takes log(1e-4 + 1e-12), the printed
    formula (guarded) log(1e-12)."""
    z_adv = torch.tensor([[0.0, 60.0, 0.0]], dtype=torch.float64)
    z_nat = torch.zeros(1, 3, dtype=torch.float64)
    y = torch.tensor([0])
    ce = float(F.cross_entropy(z_adv, y))
    code, _, _ = _method("mart", "code", _linear_model()).loss_terms(z_nat, z_adv, y)
    paper, _, _ = _method("mart", "paper", _linear_model()).loss_terms(z_nat, z_adv, y)
    assert float(code) == pytest.approx(ce - math.log(1e-4 + 1e-12), rel=1e-12)
    assert float(paper) == pytest.approx(ce - math.log(1e-12), rel=1e-12)


@pytest.mark.parametrize("numerics", NUMERICS)
def test_mart_attack_starts_where_its_numerics_say(numerics):
    """code: PGD from x + 0.001 N(0, 1), unclamped; paper: a uniform point of the ball."""
    model, (x, y) = _linear_model(), _boundary_batch()
    torch.manual_seed(5)
    if numerics == "code":
        start = x + 0.001 * torch.randn_like(x)
    else:
        start = (x + (2 * torch.rand(x.shape, dtype=x.dtype) - 1) * THREAT.eps).clamp(0.0, 1.0)
    expected = _step(model, start, x, _ce(y))
    torch.manual_seed(5)
    got = _method("mart", numerics, model).craft(x, y)
    assert torch.equal(got, expected)


# ---------------------------------------------------------------------------- TRADES
@pytest.mark.parametrize("name", ["trades", "rat_trades"])
def test_trades_attack_start_is_unclamped_under_code_and_clamped_under_paper(name):
    model, (x, y) = _linear_model(), _boundary_batch()
    crafted = {}
    for numerics in NUMERICS:
        torch.manual_seed(3)
        start = x + 0.001 * torch.randn_like(x)
        if numerics == "paper":
            start = start.clamp(0.0, 1.0)  # 0.001 N(0, 1) is far inside the 0.3 ball
        expected = _step(model, start, x, _kl_from(model, x))
        torch.manual_seed(3)
        crafted[numerics] = _method(name, numerics, model).craft(x, y)
        torch.testing.assert_close(crafted[numerics], expected, rtol=0, atol=1e-15)
    assert not torch.equal(crafted["code"], crafted["paper"])  # the boundary pixels moved


# ------------------------------------------------------------------ train-mode passes
def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 3)).double().train()


def _running_stats_by_hand(x, x_adv, order, momentum=0.1):
    mean, var = torch.zeros(4, dtype=x.dtype), torch.ones(4, dtype=x.dtype)
    for kind in order:
        batch = x if kind == "n" else x_adv
        mean = (1 - momentum) * mean + momentum * batch.mean(0)
        var = (1 - momentum) * var + momentum * batch.var(0, unbiased=True)
    return mean, var


@pytest.mark.parametrize(
    "name, numerics, order",
    [
        ("trades", "code", "nan"),  # TRADES: CE(model(x)), KL(model(x_adv), model(x))
        ("trades", "paper", "na"),
        ("awp+trades", "code", "ann"),  # AWP-TRADES: KL(model(x_adv), model(x)), CE(model(x))
        ("rat_trades", "code", "naananan"),  # the authors' TRADES-based RAT code
        ("rat_trades", "paper", "na"),
        ("awp+rat_trades", "code", "na"),  # the authors' AWP-based RAT code
        ("mart", "code", "na"),
        ("pgd_at", "code", "a"),
    ],
)
def test_batchnorm_running_statistics_follow_the_released_passes(name, numerics, order):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    x_adv = x + 0.5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    model = _bn_model()
    method = _method(name, numerics, model, awp_warmup=0, sigma_w=0.0)
    objective = method.inner.objective if name.startswith("awp+") else method.objective
    objective(model, x, x_adv, y)
    mean, var = _running_stats_by_hand(x, x_adv, order)
    bn = model[0]
    torch.testing.assert_close(bn.running_mean, mean, rtol=0, atol=1e-14)
    torch.testing.assert_close(bn.running_var, var, rtol=0, atol=1e-14)
    assert int(bn.num_batches_tracked) == len(order)


@pytest.mark.parametrize("name", ["trades", "rat_trades"])
def test_repeated_forwards_leave_the_loss_and_gradient_unchanged(name):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    x_adv = x + 0.5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    results = []
    for numerics in NUMERICS:
        model = _bn_model()
        loss, _ = _method(name, numerics, model).objective(model, x, x_adv, y)
        loss.backward()
        results.append((loss.detach(), [p.grad for p in model.parameters()]))
    (loss_code, grads_code), (loss_paper, grads_paper) = results
    torch.testing.assert_close(loss_code, loss_paper, rtol=0, atol=1e-14)
    for a, b in zip(grads_code, grads_paper, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    if name == "trades":  # and both equal CE + beta KL written out
        model = _bn_model()
        z, z_adv = model(x), model(x_adv)
        p = F.softmax(z, dim=1)
        kl = (p * (F.log_softmax(z, dim=1) - F.log_softmax(z_adv, dim=1))).sum(1).mean()
        torch.testing.assert_close(loss_code, F.cross_entropy(z, y) + 6.0 * kl, rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------- config
def test_numerics_key_is_one_definition_read_by_validation_and_the_key_list():
    assert MethodConfig().numerics == "paper" == NUMERICS[0]
    assert CHOICES["method.numerics"] is NUMERICS
    assert ratt.build_config(None, ["method.numerics=paper"]).method.numerics == "paper"
    with pytest.raises(UserError, match=re.escape(f"method.numerics must be {one_of(NUMERICS)}")):
        ratt.build_config(None, ["method.numerics=exact"])
    line = next(li for li in describe_keys().splitlines() if "method.numerics" in li)
    assert line.split()[:4] == ["method.numerics", "=", "paper", f"[{'|'.join(NUMERICS)}]"]


@pytest.mark.parametrize("saved, resumed", [(None, "paper"), ("code", "code"), ("paper", "paper")])
def test_resuming_a_run_saved_before_the_key_keeps_its_numerics(tmp_path, saved, resumed):
    """A config.yaml without method.numerics (f33a68b and earlier) ran with today's paper."""
    import yaml

    from ratt.train.resume import saved_config

    config = ratt.build_config(None, [] if saved is None else [f"method.numerics={saved}"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    if saved is None:
        text = (tmp_path / "config.yaml").read_text()
        (tmp_path / "config.yaml").write_text(text.replace(f"  numerics: {config.method.numerics}\n", ""))
        assert "numerics" not in (tmp_path / "config.yaml").read_text()
    assert saved_config(tmp_path).method.numerics == resumed
