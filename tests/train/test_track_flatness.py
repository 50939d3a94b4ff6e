"""track_flatness logs cheap flatness measures without changing the training trajectory."""

from __future__ import annotations

import json

import torch

from ratt.runs import build_config, read_weights
from ratt.train import train

BASE = ["epochs=2", "train_limit=128", "steps=1", "val_attack_steps=1", "test_attacks=clean",
        "progress=false", "threads=1", "val_size=64"]  # fmt: skip


def test_flatness_is_logged_and_leaves_training_untouched(tmp_path):
    train(build_config(overrides=BASE), tmp_path / "plain")
    tracked = ["track_flatness=true", "flatness_every=1", "flatness_points=32"]
    train(build_config(overrides=[*BASE, *tracked]), tmp_path / "tracked")
    rows = [json.loads(line) for line in (tmp_path / "tracked" / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        for key in ("flat_hessian_top", "flat_noise_rise", "flat_adv_hessian_top", "flat_adv_loss"):
            assert key in row and row[key] == row[key]  # present and not NaN
    plain, _ = read_weights(tmp_path / "plain" / "checkpoints" / "last.safetensors")
    other, _ = read_weights(tmp_path / "tracked" / "checkpoints" / "last.safetensors")
    for key in plain:
        assert torch.equal(plain[key], other[key]), key
