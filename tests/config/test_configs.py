"""Every shipped config parses, validates and names a registered dataset/model/method."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ratt.core.units import parse_magnitude
from ratt.runs import build_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


def test_configs_exist():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_is_valid(path):
    config = build_config(path)
    if "cifar" in str(path) and "recipes" not in str(path):  # the paper's setting
        assert config.optim.epochs == 200 and config.data.batch_size == 128
        assert config.method.beta == 6.0
        if "rat" in config.method.name:
            assert config.method.alpha == 0.2


def test_recipes_keep_the_paper_protocol_and_the_recipe_apart():
    recipes = {p.stem: build_config(p) for p in CONFIGS if "recipes" in str(p)}
    extra = recipes["cifar10-wrn-28-10-rat_trades-ema-extra"]
    assert extra.optim.ema_decay > 0 and extra.data.extra and extra.method.label_smoothing > 0
    base = recipes["cifar10-wrn-28-10-trades-ema-extra"]
    assert (base.method.name, extra.method.name) == ("trades", "rat_trades")
    assert base.optim == extra.optim and base.data == extra.data  # a paired comparison
    assert recipes["cifar10-wrn-34-10-rat_trades-paper-protocol"].run.select == "test"


def test_imagenet_recipes_are_paired_at_4_255_and_build_their_models():
    from ratt.models import create_model

    recipes = {p.stem: build_config(p) for p in CONFIGS if p.parent.name == "imagenet"}
    for family, model in (("resnet50", "torchvision:resnet50"), ("convnext_tiny", "timm:convnext_tiny")):
        runs = {m: recipes[f"{family}-{m}"] for m in ("pgd_at", "trades", "rat_trades")}
        for config in runs.values():
            assert config.data.name == "imagenet" and config.model.name == model
            assert parse_magnitude(config.attack.eps, "eps") == pytest.approx(4 / 255)
        base, rat = runs["trades"], runs["rat_trades"]  # a paired comparison: the method alone differs
        assert base.optim == rat.optim and base.data == rat.data and base.attack == rat.attack
        net = create_model(model, 1000, (3, 224, 224)).eval()
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert recipes["convnext_tiny-trades"].optim.optimizer == "adamw"
