"""Mixed precision (bf16/fp16 autocast), channels_last and the torch.compile fallback."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from ratt import config as cfg
from ratt.attacks import ThreatModel, pgd, trades_attack
from ratt.models import create_model
from ratt.runs import build_config
from ratt.train import Trainer, train
from ratt.train.precision import CompiledOrEager, autocast


def _config(*overrides: str) -> cfg.TrainConfig:
    base = ["epochs=1", "train_limit=64", "batch_size=32", "steps=2", "progress=false", "device=cpu"]
    return build_config(None, [*base, *overrides])


@pytest.mark.parametrize("method", ["trades", "awp+rat_trades"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_low_precision_epoch_runs_and_keeps_fp32_weights(precision, method, tmp_path):
    trainer = Trainer(_config(f"precision={precision}", f"method={method}", "awp_warmup=0"), tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    metrics = trainer.train_epoch()
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))
    for name, value in trainer.model.state_dict().items():
        if value.is_floating_point():
            assert value.dtype == torch.float32 and torch.isfinite(value).all(), name
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert (trainer.setup.scaler is not None) == (precision == "fp16")


def test_the_sign_step_is_exact_fp32_under_bf16_autocast():
    """Under autocast the forward is bf16, but the input and its step stay fp32: one PGD step
    from x is exactly clamp(x + step * sign(g)) with g the bf16 forward's input gradient."""
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8)).eval()
    x = torch.rand(16, 1, 8, 8) * 0.8 + 0.1
    y = torch.randint(0, 10, (16,))
    threat = ThreatModel("linf", 0.3, 0.0123, 1, random_start=False)
    with autocast("bf16", torch.device("cpu")):
        x_adv = pgd(model, x, y, threat)
        probe = x.clone().requires_grad_(True)
        logits = model(probe)
        assert logits.dtype == torch.bfloat16
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), probe)
    assert x_adv.dtype == torch.float32 and grad.dtype == torch.float32
    expected = (x + threat.step * grad.sign()).clamp(0, 1)
    assert torch.equal(x_adv, expected)
    # the signs are those of the fp32 gradient almost everywhere (bf16 only moves tiny ones)
    probe32 = x.clone().requires_grad_(True)
    (grad32,) = torch.autograd.grad(F.cross_entropy(model(probe32), y, reduction="sum"), probe32)
    agree = (grad.sign() == grad32.sign()).float().mean()
    assert agree > 0.9
    with autocast("bf16", torch.device("cpu")):
        x_trades = trades_attack(model, x, ThreatModel("linf", 0.1, 0.02, 3))
    assert x_trades.dtype == torch.float32
    assert (x_trades - x).abs().max() <= 0.1 + 1e-7


def test_channels_last_keeps_nhwc_weights_and_trains(tmp_path):
    trainer = Trainer(_config("model=wrn-10-1", "channels_last=true", "threads=1"), tmp_path)
    metrics = trainer.train_epoch()
    assert trainer.model.net.blocks[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.isfinite(torch.tensor(metrics["train_loss"]))


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    model = create_model("smallcnn", 10, (1, 8, 8))
    x = torch.rand(4, 1, 8, 8)

    def broken(module):
        def call(*args):
            raise RuntimeError("inductor: no C++ compiler\nlong trace")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    wrapped = CompiledOrEager(model)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler.*running eagerly"):
        out = wrapped(x)
    torch.testing.assert_close(out, model(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warns once, then stays eager quietly
        wrapped(x)


def test_precision_is_validated():
    with pytest.raises(Exception, match="run.precision must be fp32, bf16 or fp16"):
        build_config(None, ["precision=fp8"])


@pytest.mark.slow
def test_bf16_training_reaches_fp32_accuracy(tmp_path):
    """The default digits setting, shortened to 10 epochs: bf16 within a few points of fp32."""
    results = {}
    for precision in ("fp32", "bf16"):
        overrides = [f"precision={precision}", "epochs=10", "progress=false", "threads=2"]
        config = build_config(None, overrides)
        results[precision] = train(config, tmp_path / precision)["test"]["accuracy"]
    for attack in ("clean", "pgd20"):
        assert abs(results["bf16"][attack] - results["fp32"][attack]) < 0.05, results
