"""Weight averaging (optim.ema_decay): the average itself, its use for selection and the final
test, exact resume after SIGKILL; and run.select=test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ratt.attacks import ThreatModel
from ratt.config import MethodConfig
from ratt.methods import build_method
from ratt.runs import read_weights
from ratt.train.ema import WeightAverage, ema_rate
from ratt.train.step import TrainStep
from tests.train.test_resume import _assert_same_run, kill_after_a_checkpoint

TINY = ["epochs=3", "train_limit=320", "batch_size=64", "steps=2", "val_attack_steps=2",
        "test_attacks=clean", "threads=1", "checkpoint_every=1", "deterministic=true",
        "optim.ema_decay=0.9"]  # fmt: skip


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.classifier = nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(self.body(x))


def test_the_average_equals_one_computed_by_hand_over_a_few_steps():
    torch.manual_seed(0)
    model = Tiny()
    threat = ThreatModel(eps=0.1, step=0.05, steps=1)
    method = build_method("trades", model, threat, MethodConfig(name="trades"), 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    ema = WeightAverage(model, decay=0.7)
    step = TrainStep(model, method, optimizer, ema=ema)
    expected = {k: v.double().clone() for k, v in model.state_dict().items()}
    for t in range(5):
        step(torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,)))
        rate = min(0.7, (1 + t) / (10 + t))  # the documented warm-up rule, written out
        assert ema_rate(0.7, t) == rate
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                expected[key] = rate * expected[key] + (1 - rate) * value.double()
            else:
                expected[key] = value.double()
    for key, value in ema.shadow.items():  # BatchNorm running statistics follow too
        torch.testing.assert_close(value.double(), expected[key], rtol=1e-6, atol=1e-7)
    assert int(ema.shadow["body.2.num_batches_tracked"]) == 10  # copied: 2 train forwards a step
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.applied(model):
        assert torch.equal(model.classifier.weight, ema.shadow["classifier.weight"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _ratt(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ratt", *args], capture_output=True, text=True,
                          timeout=300, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ema") / "run"
    proc = _ratt("train", "--quiet", "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr
    return out


def test_an_averaged_run_selects_and_tests_with_the_average_and_eval_reads_it(reference):
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["weights"] == "ema" and summary["selected_on"] == "val"
    for name in ("best", "last"):
        raw, _ = read_weights(reference / "checkpoints" / f"{name}.safetensors")
        avg, _ = read_weights(reference / "checkpoints" / f"{name}.ema.safetensors")
        assert not torch.equal(raw["net.classifier.weight"], avg["net.classifier.weight"])
    proc = _ratt("eval", str(reference), "--attacks", "clean", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["averaged_weights"] and report["weights_file"].endswith("best.ema.safetensors")
    assert report["accuracy"]["clean"] == summary["test"]["accuracy"]["clean"]  # the same weights
    raw = json.loads(_ratt("eval", str(reference), "--attacks", "clean", "--weights", "raw", "--json",
                           "--quiet").stdout.strip().splitlines()[-1])  # fmt: skip
    assert not raw["averaged_weights"] and raw["weights_file"].endswith("best.safetensors")


def test_an_averaged_run_killed_and_resumed_is_bit_identical(reference, tmp_path):
    out = tmp_path / "run"
    kill_after_a_checkpoint(["train", "--quiet", "--out", str(out), *TINY], out)
    resumed = _ratt("train", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, reference)
    for name in ("best", "last"):
        a, _ = read_weights(out / "checkpoints" / f"{name}.ema.safetensors")
        b, _ = read_weights(reference / "checkpoints" / f"{name}.ema.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in b), name


def test_selecting_on_test_picks_the_epoch_with_the_best_test_pgd_and_says_so(tmp_path):
    out = tmp_path / "run"
    args = ["epochs=4", "train_limit=256", "steps=2", "val_attack_steps=3", "test_attacks=clean",
            "threads=1", "run.select=test", "val_size=60"]  # fmt: skip
    assert _ratt("train", "--quiet", "--out", str(out), *args).returncode == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best_epoch = max(rows, key=lambda r: r["test_robust_acc"])["epoch"]  # first of the best
    assert [r["epoch"] for r in rows if r["test_robust_acc"] == rows[best_epoch - 1]["test_robust_acc"]][0] \
        == best_epoch  # fmt: skip
    _, meta = read_weights(out / "checkpoints" / "best.safetensors")
    assert meta["epoch"] == best_epoch
    assert json.loads((out / "summary.json").read_text())["selected_on"] == "test"
    proc = _ratt("eval", str(out), "--attacks", "clean", "--quiet")
    assert "selected on the TEST split" in proc.stdout
