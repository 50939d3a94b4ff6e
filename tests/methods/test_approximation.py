"""The approximation probe: its Monte-Carlo rise against a closed form, its pairs in the
metrics, and no effect on training."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ratt.cli import main
from ratt.methods.approximation import monte_carlo_rise
from ratt.methods.noise import WeightNoise
from ratt.runs import read_weights
from tests.methods.test_rat_switches import Basis


def test_the_monte_carlo_rise_matches_the_closed_form_of_a_quadratic_rise():
    classes, n, sigma = 10, 512, 0.05
    model = Basis(classes, n)
    x, y = torch.eye(n), torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(0))
    # beta = 0: L = CE; at zero weights E[CE(w + u)] - log C = sigma^2 (C - 1) / (2 C) (+ O(sigma^4))
    rise = monte_carlo_rise(model, x, x, y, 0.0, WeightNoise(sigma, "gaussian", "all"), pairs=16,
                            generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert rise == pytest.approx(sigma**2 * (classes - 1) / (2 * classes), rel=0.05)
    assert all(p.abs().sum() == 0 for p in model.parameters())  # the model itself is untouched


TINY = ["method=rat_trades", "epochs=2", "train_limit=128", "batch_size=32", "steps=1", "val_attack_steps=1",
        "test_attacks=clean", "threads=1", "deterministic=true"]  # fmt: skip


def test_the_probe_logs_pairs_each_epoch_and_leaves_training_as_it_was(tmp_path, capsys):
    plain, probed = tmp_path / "plain", tmp_path / "probed"
    assert main(["train", "--quiet", "--out", str(plain), *TINY]) == 0
    assert main(["train", "--quiet", "--out", str(probed), *TINY, "approx_every=2", "sigma_w=0.01"]) == 0
    rows = [json.loads(line) for line in (probed / "metrics.jsonl").read_text().splitlines()]
    assert [len(row["approx"]) for row in rows] == [2, 2]  # 4 steps an epoch, every 2nd probed
    assert all(
        len(pair) == 3 and all(math.isfinite(v) for v in pair) for row in rows for pair in row["approx"]
    )
    again = tmp_path / "again"  # same settings, no probe: the weights are bit-identical
    assert main(["train", "--quiet", "--out", str(again), *TINY, "sigma_w=0.01"]) == 0
    a, _ = read_weights(probed / "checkpoints" / "last.safetensors")
    b, _ = read_weights(again / "checkpoints" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
