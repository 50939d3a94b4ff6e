from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ratt.attacks import ThreatModel
from ratt.config import MethodConfig
from ratt.methods import METHODS, build_method
from ratt.models import create_model
from tests.helpers import Linear


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)


@pytest.mark.parametrize("name", [*METHODS, "awp+trades", "awp+rat_trades", "awp+pgd_at"])
def test_every_method_takes_a_step_that_lowers_its_loss_on_a_fixed_batch(name):
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8)).train()
    method = build_method(name, model, ThreatModel(eps=0.1, step=0.025, steps=3), MethodConfig(name=name), 10)
    x, y = _batch()
    x_adv = method.craft(x, y)
    assert model.training  # crafting ran in eval mode and gave the mode back

    def objective():
        torch.manual_seed(1)  # same dropout mask every time
        return method.objective(model, x, x_adv, y)[0]

    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = objective()
    opt.zero_grad()
    before.backward()
    opt.step()
    after = objective()
    assert torch.isfinite(before) and after.item() < before.item()


def test_trades_loss_equals_ce_plus_beta_kl_written_out():
    torch.manual_seed(0)
    model = Linear().eval()
    method = build_method(
        "trades", model, ThreatModel(eps=0.1, step=0.025, steps=3), MethodConfig(beta=6.0), 10
    )
    x, y = _batch()
    with torch.no_grad():
        model.classifier.weight.mul_(20)  # peaked outputs, so the KL term is far from zero
    x_adv = torch.rand_like(x)
    loss, parts = method.objective(model, x, x_adv, y)
    with torch.no_grad():
        p = F.softmax(model(x).double(), 1)
        q = F.softmax(model(x_adv).double(), 1)
        ce = -(p[torch.arange(16), y]).log().mean()
        kl = (p * (p.log() - q.log())).sum(1).mean()
    torch.testing.assert_close(loss.double(), ce + 6.0 * kl, rtol=1e-5, atol=1e-6)
    assert kl.item() > 0.1
    assert parts["kl"] == pytest.approx(kl.item(), rel=1e-4)
