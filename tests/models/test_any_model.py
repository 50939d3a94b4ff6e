"""Any nn.Module mapping [0, 1] images to logits works with RAT and the attacks: torchvision,
timm, a WideResNet whose last layer is ``.fc``, an ``nn.Sequential``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ratt.attacks import ThreatModel, trades_attack
from ratt.errors import UserError
from ratt.methods import rat_trades_loss
from ratt.methods.losses import kl_batchmean
from ratt.methods.rat import default_soft_c, taylor_terms
from ratt.models import find_classifier

THREAT = ThreatModel(eps=0.03, step=0.01, steps=2)


class WideFC(nn.Module):
    """A tiny WideResNet-like net whose last layer is called ``.fc`` (as in many repos)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        h = F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 1).flatten(1)
        return self.fc(h)


def _build(kind: str) -> tuple[nn.Module, tuple[int, ...], str]:
    """(model, input shape, name of its final layer)."""
    torch.manual_seed(0)
    if kind == "torchvision-resnet18":
        import torchvision

        return torchvision.models.resnet18(num_classes=10), (3, 32, 32), "fc"
    if kind == "timm-resnet10t":
        import timm

        return timm.create_model("resnet10t", num_classes=10, pretrained=False), (3, 32, 32), "fc"
    if kind == "wrn-fc":
        return WideFC(), (3, 16, 16), "fc"
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), (1, 8, 8), "3"


@pytest.mark.parametrize("kind", ["torchvision-resnet18", "timm-resnet10t", "wrn-fc", "sequential"])
def test_rat_trades_loss_and_the_attack_run_unchanged_on_any_model(kind):
    model, shape, layer_name = _build(kind)
    model.train()
    x = torch.rand(4, *shape)
    y = torch.tensor([0, 1, 2, 3])
    expected_layer = dict(model.named_modules())[layer_name]
    assert find_classifier(model, x) is expected_layer
    x_adv = trades_attack(model, x, THREAT)
    assert model.training and (x_adv - x).abs().max() <= 0.03 + 1e-6
    loss = rat_trades_loss(model, x, x_adv, y)
    loss.backward()
    assert torch.isfinite(loss)
    # independent: the same loss from the features read off the known final layer
    seen = []
    handle = expected_layer.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    z_nat, z_adv = model(x), model(x_adv)
    handle.remove()
    first, second = taylor_terms(z_nat, z_adv, seen[0], seen[1], y, default_soft_c(10))
    want = 0.8 * F.cross_entropy(z_nat, y) + 6.0 * kl_batchmean(z_nat, z_adv) + 0.2 * first + 0.1 * second
    torch.testing.assert_close(loss, want)


def test_a_linear_layer_that_is_not_the_final_one_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(UserError, match="not the model's final layer"):
        rat_trades_loss(model, x, x, torch.zeros(4, dtype=torch.long), classifier=model[1])


class Scaled(nn.Module):
    """Logits scaled after the last linear layer: no linear layer produces the output."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(64, 10)

    def forward(self, x):
        return 2.0 * self.body(x.flatten(1))


class MisnamedHead(nn.Module):
    """``.fc`` names an inner layer; the true last layer is ``.out``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x.flatten(1))))


def test_models_without_a_final_linear_layer_get_one_clear_line():
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(UserError, match="no nn.Linear of Scaled produces its output"):
        find_classifier(Scaled(), x)
    with pytest.raises(UserError, match=r"MisnamedHead\.fc is an nn.Linear but not the model's final layer"):
        find_classifier(MisnamedHead(), x)
    model = MisnamedHead()
    assert find_classifier(model, x, classifier=model.out) is model.out
