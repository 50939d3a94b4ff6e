from __future__ import annotations

import pytest
import torch
from torch import nn

from ratt import data
from ratt.models import MODELS, create_model, find_classifier

# Every registered name; the wrn family is exercised through a small member.
NAMES = [n for n in MODELS.names() if n != "wrn-D-W"] + ["wrn-10-1", "wrn-16-2"]
SHAPES = {"digits": data.info("digits").shape, "cifar10": data.info("cifar10").shape}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dataset", list(SHAPES))
def test_every_model_forwards_on_its_dataset_shape(name, dataset):
    info = data.info(dataset)
    model = create_model(name, info.num_classes, info.shape, mean=info.mean, std=info.std).eval()
    x = torch.rand(2, *info.shape)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, info.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", NAMES)
def test_classifier_is_the_last_linear_layer_and_sees_penultimate_features(name):
    model = create_model(name, 7, (3, 16, 16)).eval()
    seen = {}
    fc = find_classifier(model, torch.rand(2, 3, 16, 16))
    assert isinstance(fc, nn.Linear) and fc.out_features == 7
    fc.register_forward_hook(lambda m, inp, out: seen.update(h=inp[0], z=out))
    with torch.no_grad():
        logits = model(torch.rand(3, 3, 16, 16))
    # The hooked output is the model output: nothing follows the classifier.
    torch.testing.assert_close(seen["z"], logits)
    torch.testing.assert_close(seen["h"] @ fc.weight.T + fc.bias, logits)


def test_normalization_lives_in_the_model_as_buffers():
    model = create_model("smallcnn", 10, (3, 8, 8), mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    buffers = dict(model.named_buffers())
    assert set(buffers) >= {"mean", "std"}
    assert "mean" not in dict(model.named_parameters())
    x = torch.rand(2, 3, 8, 8)
    model.eval()
    expected = model.net((x - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / 0.2)
    torch.testing.assert_close(model(x), expected)


def test_wrn_34_10_has_the_published_size():
    # Zagoruyko & Komodakis: WRN-34-10 for CIFAR-10 has 46.16M parameters.
    model = create_model("wrn-34-10", 10, (3, 32, 32))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 - 46.16) < 0.01


def test_smallcnn_at_28px_is_the_trades_network():
    # TRADES' SmallCNN: 4 unpadded 3x3 convs and two pools -> 64*4*4 = 1024 features.
    model = create_model("smallcnn", 10, (1, 28, 28))
    assert model.net.head[0].in_features == 1024
