"""``ratt bench`` variants: METHOD[key=value,...] builds the step with those settings."""

from __future__ import annotations

import pytest

from ratt.bench import BenchConfig
from ratt.bench.steps import make_step, parse_variant
from ratt.cli.bench import method_list
from ratt.errors import UserError


def test_variants_parse_into_the_method_config_and_the_average():
    base, method, ema = parse_variant("rat_trades[sigma_target=0.05,sigma_every=1,noise=laplace]")
    assert (base, method.sigma_target, method.sigma_every, method.noise, ema) == (
        "rat_trades", 0.05, 1, "laplace", 0.0)  # fmt: skip
    assert parse_variant("trades[ema=0.995]")[2] == 0.995
    assert method_list("trades,rat_trades[a=1,b=2],mart") == ["trades", "rat_trades[a=1,b=2]", "mart"]
    for bad, needle in (
        ("trades[ema=2]", "ema_decay"),
        ("trades[x]", "key=value"),
        ("nope", "unknown method"),
    ):
        with pytest.raises(UserError, match=needle):
            parse_variant(bad)


def test_a_variant_step_has_what_it_asks_for():
    config = BenchConfig(methods=["trades"], model="smallcnn", batch=4, shape=(1, 8, 8), steps=1)
    step, _, _ = make_step(config, "rat_trades[sigma_target=0.05]", "cpu")
    assert step.method.config.sigma_target == 0.05 and step.ema is None
    step, x, y = make_step(config, "trades[ema=0.9]", "cpu")
    assert step.ema is not None and step.ema.decay == 0.9
    step(x, y)
    assert step.ema.updates == 1
