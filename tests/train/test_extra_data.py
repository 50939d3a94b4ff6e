"""Extra training data (data.extra, data.extra_fraction): each batch mixes original and extra
images at the asked ratio, an epoch is one pass over the original set, and a killed run
resumes exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ratt import data
from ratt.errors import UserError
from ratt.train.batches import BatchPlan
from tests.train.test_resume import _assert_same_run, kill_after_a_checkpoint


def test_without_extra_data_the_plan_is_the_plain_seeded_permutation():
    plan = BatchPlan(n_train=100, batch=32, world=1, seed=3)
    order, extra = plan.epoch_orders(epoch=2)
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(3 * 100_003 + 2))
    assert extra is None and torch.equal(order, expected) and plan.steps == 4
    own, none = plan.step_indices((order, extra), 3)
    assert none is None and torch.equal(own, expected[96:])


def test_batches_mix_original_and_extra_images_at_the_asked_ratio():
    plan = BatchPlan(n_train=100, batch=32, world=2, seed=0, n_extra=30, extra_fraction=0.7)
    assert plan.extra_per_batch == 22 and plan.own_per_batch == 10  # both even: two ranks
    assert plan.steps == 10  # one pass over the 100 originals
    orders = plan.epoch_orders(0)
    seen_own, seen_extra = [], []
    for step in range(plan.steps):
        own, extra = plan.step_indices(orders, step)
        assert len(own) == 10 and len(extra) == 22
        seen_own += own.tolist()
        seen_extra += extra.tolist()
    assert sorted(seen_own) == list(range(100))  # every original image exactly once
    counts = np.bincount(seen_extra, minlength=30)
    assert counts.max() - counts.min() <= 1  # extra images cycled through evenly
    assert all(torch.equal(a, b) for a, b in zip(orders, plan.epoch_orders(0), strict=True))  # reproducible


@pytest.fixture(scope="module")
def extra_file(tmp_path_factory):
    ds = data.load("digits", "train")
    path = tmp_path_factory.mktemp("extra") / "extra.npz"
    flipped = (ds.images.numpy()[:, 0, :, ::-1] * 255).round().astype(np.uint8)  # different images
    np.savez(path, x=flipped, y=ds.labels.numpy())
    return path


ARGS = ["epochs=2", "train_limit=192", "batch_size=32", "steps=1", "val_attack_steps=1", "test_attacks=clean",
        "threads=1", "checkpoint_every=1", "deterministic=true", "data.extra_fraction=0.5"]  # fmt: skip


def _ratt(*args):
    return subprocess.run([sys.executable, "-m", "ratt", *args], capture_output=True, text=True, timeout=300)


def test_a_run_with_extra_data_takes_the_asked_steps_and_resumes_exactly(extra_file, tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    extra = f"data.extra={extra_file}"
    assert _ratt("train", "--quiet", "--out", str(reference), *ARGS, extra).returncode == 0
    rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    # 192 originals at 16 per batch (the other 16 extra): 12 steps an epoch, 24 in all
    state = torch.load(reference / "checkpoints" / "last_state.pt", weights_only=True)
    assert state["scheduler"]["last_epoch"] == 24
    kill_after_a_checkpoint(["train", "--quiet", "--out", str(run), *ARGS, extra], run)
    assert _ratt("train", "--resume", str(run)).returncode == 0
    _assert_same_run(run, reference)


def test_extra_images_of_another_shape_are_refused_before_training(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 9, 9), np.uint8), y=np.zeros(4, int))
    proc = _ratt("train", "--out", str(tmp_path / "run"), f"data.extra={bad}", "epochs=1")
    assert proc.returncode == 2 and "extra images are [1, 9, 9]" in proc.stderr
    with pytest.raises(UserError, match="needs arrays x and y"):
        from ratt.data.custom import read_extra

        np.savez(tmp_path / "nox.npz", images=np.zeros((2, 8, 8), np.uint8))
        read_extra(tmp_path / "nox.npz", (1, 8, 8), 10)
