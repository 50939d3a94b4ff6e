"""Every shipped config parses, validates and names a registered dataset/model/method."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratt.runs import build_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


def test_configs_exist():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_is_valid(path):
    config = build_config(path)
    if "cifar" in str(path):  # the paper's setting
        assert config.optim.epochs == 200 and config.data.batch_size == 128
        assert config.method.beta == 6.0
        if "rat" in config.method.name:
            assert config.method.alpha == 0.2
