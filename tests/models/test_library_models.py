"""``timm:NAME`` and ``torchvision:NAME`` model specs: the library's own network at random
initialization with the dataset's normalization inside, compared with that network built
directly and fed inputs normalized by hand."""

from __future__ import annotations

import pytest
import torch

from ratt.errors import UserError
from ratt.models import create_model, runs_code

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _by_hand(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _library(spec: str) -> torch.nn.Module:
    source, name = spec.split(":")
    if source == "timm":
        import timm

        return timm.create_model(name, pretrained=False, num_classes=7, in_chans=3)
    import torchvision

    return torchvision.models.get_model(name, weights=None, num_classes=7)


@pytest.mark.parametrize("spec", ["torchvision:resnet18", "timm:resnet10t"])
def test_library_spec_is_the_library_network_with_normalization_inside(spec):
    torch.manual_seed(3)
    ours = create_model(spec, 7, (3, 32, 32), mean=MEAN, std=STD).eval()
    torch.manual_seed(3)
    theirs = _library(spec).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(_by_hand(x)), rtol=0, atol=0)
    assert ours(x).shape == (2, 7)


def test_torchvision_kwargs_reach_the_builder():
    model = create_model("torchvision:resnet18", 5, (3, 32, 32), kwargs={"zero_init_residual": True})
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert blocks and all(b.bn2.weight.abs().sum() == 0 for b in blocks)


@pytest.mark.parametrize(
    ("spec", "shape", "kwargs", "says"),
    [
        ("torchvision:resnet5000", (3, 32, 32), {}, "torchvision has no classifier 'resnet5000'"),
        ("torchvision:fasterrcnn_resnet50_fpn", (3, 32, 32), {}, "no classifier"),  # a detector
        ("torchvision:resnet18", (1, 28, 28), {}, "takes 3-channel images; the data has 1"),
        ("torchvision:resnet18", (3, 32, 32), {"weights": "DEFAULT"}, "model.init=FILE"),
        ("torchvision:resnet18", (3, 32, 32), {"depth": 3}, "model=torchvision:resnet18:"),
    ],
)
def test_bad_torchvision_specs_are_one_line_errors(spec, shape, kwargs, says):
    with pytest.raises(UserError, match=says) as caught:
        create_model(spec, 10, shape, kwargs=kwargs)
    assert "\n" not in str(caught.value)


def test_torchvision_specs_run_no_code_of_the_checkpoints():
    assert not runs_code("torchvision:resnet50")
