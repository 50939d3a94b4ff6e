"""The evaluation suite: accuracy bookkeeping, resuming, gradient-masking flags, weight noise."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from ratt.attacks import Attack, ThreatModel
from ratt.cli import main
from ratt.config import TrainConfig
from ratt.data import info as dataset_info
from ratt.eval import (
    EvalResult,
    PartialStore,
    evaluate,
    gradient_flags,
    result_flags,
    sweep_flag,
    weight_noise_accuracy,
)
from ratt.runs import build_model, save_weights
from tests.helpers import trained_linear_digits

THREAT = ThreatModel("linf", 0.1, 0.025, 10)


class Killed(Exception):
    """Stands in for a kill signal in the middle of a batch."""


class Quantized(nn.Module):
    """A linear model behind ``round(4x) / 4``: piecewise constant, so input gradients are zero."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(4 * x) / 4)


class Noisy(nn.Module):
    """A linear model with dropout that stays on in eval mode (a randomized defence)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(nn.functional.dropout(x, 0.2, training=True))


def test_eval_with_zero_eps_gives_the_clean_accuracy_exactly(digits_test):
    model = trained_linear_digits()
    zero = ThreatModel("linf", 0.0, 0.0, 20)
    result = evaluate(model, digits_test, ["clean", "pgd20", "cw20", "fgsm"], zero, batch_size=128)
    assert result.accuracy["pgd20"] == result.accuracy["clean"] == result.robust
    assert result.accuracy["cw20"] == result.accuracy["fgsm"] == result.accuracy["clean"]


def test_robust_accuracy_is_the_per_point_worst_case(digits_test):
    model = trained_linear_digits()
    result = evaluate(model, digits_test, ["clean", "fgsm", "pgd5", "cw5"], THREAT, batch_size=100)
    worst = result.correct["clean"] & result.correct["fgsm"] & result.correct["pgd5"] & result.correct["cw5"]
    assert result.robust == pytest.approx(worst.float().mean().item())
    assert result.robust <= min(result.accuracy.values())
    stderr = (result.accuracy["pgd5"] * (1 - result.accuracy["pgd5"]) / result.n) ** 0.5
    assert result.to_dict()["stderr"]["pgd5"] == pytest.approx(stderr)


def test_an_interrupted_evaluation_resumes_from_its_finished_batches(digits_test, tmp_path, monkeypatch):
    model = trained_linear_digits()
    data = digits_test.subset(torch.arange(200))
    reference = evaluate(model, data, ["clean", "pgd5"], THREAT, batch_size=50, seed=3)

    calls = []
    kill = [True]
    original = Attack.run

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        if kill[0] and calls.count("pgd5") == 3:
            raise Killed  # in the middle of the third pgd5 batch
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Attack, "run", counting)
    store = PartialStore(tmp_path / "eval_partial", model)
    with pytest.raises(Killed):
        evaluate(model, data, ["clean", "pgd5"], THREAT, batch_size=50, seed=3, store=store)
    calls.clear()
    kill[0] = False
    resumed = evaluate(model, data, ["clean", "pgd5"], THREAT, batch_size=50, seed=3, store=store)
    assert calls == ["pgd5", "pgd5"]  # clean was finished; pgd5 had 2 of 4 batches
    assert resumed.accuracy == reference.accuracy and resumed.robust == reference.robust
    # another threat model does not reuse those batches
    calls.clear()
    evaluate(model, data, ["pgd5"], THREAT.with_eps(0.05), batch_size=50, seed=3, store=store)
    assert calls == ["pgd5"] * 4


def test_flags_fire_on_a_gradient_masking_model_and_stay_quiet_on_a_normal_one(digits_test):
    normal = trained_linear_digits()
    masked = Quantized(normal).eval()
    data = digits_test.subset(torch.arange(128))
    quiet = {f.name: f.fired for f in gradient_flags(normal, data)}
    assert quiet == {"zero-gradient": False, "randomized-forward": False}
    loud = {f.name: f.fired for f in gradient_flags(masked, data)}
    assert loud["zero-gradient"] and not loud["randomized-forward"]
    assert {f.name: f.fired for f in gradient_flags(Noisy(normal).eval(), data)}["randomized-forward"]
    result = evaluate(normal, data, ["pgd10", "pgd40"], THREAT, batch_size=128)
    assert {f.name: f.fired for f in result_flags(result)}["more-pgd-steps"] is False


def test_result_flags_read_pgd_steps_and_autoattacks_square_stage():
    result = EvalResult({"pgd20": 0.50, "pgd100": 0.40}, {}, 0.4, 1000, stages={"aa": [90, 60, 55, 55, 50]})
    fired = {f.name: f.fired for f in result_flags(result)}
    assert fired == {"more-pgd-steps": True, "black-box-beats-white-box": True}
    result = EvalResult({"pgd20": 0.50, "pgd100": 0.495}, {}, 0.4, 1000, stages={"aa": [90, 60, 55, 55, 55]})
    fired = {f.name: f.fired for f in result_flags(result)}
    assert fired == {"more-pgd-steps": False, "black-box-beats-white-box": False}


def test_eps_sweep_flag_fires_when_accuracy_does_not_fall():
    assert sweep_flag({0.05: 0.8, 0.1: 0.6, 0.2: 0.2, 0.4: 0.0}, 500).fired is False
    assert sweep_flag({0.05: 0.6, 0.1: 0.6, 0.2: 0.61, 0.4: 0.6}, 500).fired is True
    assert sweep_flag({0.05: 0.8, 0.1: 0.4, 0.2: 0.7, 0.4: 0.0}, 500).fired is True
    assert sweep_flag({0.1: 0.5}, 500).fired is None


@pytest.mark.slow
def test_square_beats_white_box_attacks_on_a_quantized_model(digits_test):
    masked = Quantized(trained_linear_digits()).eval()
    data = digits_test.subset(torch.arange(32))
    result = evaluate(masked, data, ["pgd20", "aa"], ThreatModel("linf", 0.2, 0.05, 20), batch_size=32)
    assert {f.name: f.fired for f in result_flags(result)}["black-box-beats-white-box"]


def test_weight_noise_restores_the_weights_and_reduces_to_the_plain_model_at_sigma_zero(digits_test):
    model = trained_linear_digits()
    data = digits_test.subset(torch.arange(100))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = weight_noise_accuracy(model, data, [0.0, 0.5], THREAT, ("clean", "pgd5"), draws=3)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    plain = evaluate(model, data, ["clean", "pgd5"], THREAT)
    assert table[0.0]["clean"] == (plain.accuracy["clean"], 0.0)
    assert table[0.0]["pgd5"] == (plain.accuracy["pgd5"], 0.0)
    assert table[0.5]["clean"][1] > 0  # draws differ
    assert table[0.5]["clean"][0] < plain.accuracy["clean"]  # noise of half the weights' size hurts


@pytest.fixture()
def untrained_run(tmp_path):
    config = TrainConfig()
    model = build_model(config, dataset_info("digits"))
    run = tmp_path / "run"
    meta = {"config": config.to_dict(), "epoch": 0, "ratt_version": "0", "format": "ratt-checkpoint-1"}
    save_weights(model, run / "checkpoints" / "best.safetensors", meta)
    return run


def test_cli_eval_writes_eval_json_flags_and_partial_results(untrained_run, capsys, caplog):
    args = ["eval", str(untrained_run), "--attacks", "clean,pgd2", "--n", "64", "--json", "--quiet"]
    assert main([*args, "--weight-noise", "0.01", "--draws", "2", "--eps", "0.1"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out.strip().splitlines()[-1])
    assert set(report["accuracy"]) == {"clean", "pgd2"} and "robust" in report
    assert {f["name"] for f in report["flags"]} >= {"zero-gradient", "randomized-forward"}
    assert report["weight_noise"]["draws"] == 2
    assert "trained at" in caplog.text  # --eps 0.1 differs from the training radius 0.2
    assert json.loads((untrained_run / "eval.json").read_text())["accuracy"] == report["accuracy"]
    assert len(list((untrained_run / "eval_partial").glob("*.pt"))) == 2


def test_cli_eval_of_aa_on_too_few_classes_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    aa = sys.modules["ratt.attacks.autoattack"]  # the package attribute is the function
    monkeypatch.setitem(aa.MIN_CLASSES, "standard", 11)  # as if digits had too few classes
    config = TrainConfig()
    model = build_model(config, dataset_info("digits"))
    meta = {"config": config.to_dict(), "epoch": 0, "ratt_version": "0", "format": "ratt-checkpoint-1"}
    save_weights(model, tmp_path / "m.safetensors", meta)
    assert main(["eval", str(tmp_path / "m.safetensors"), "--attacks", "aa", "--n", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "AutoAttack" in err and err.count("\n") == 1
