"""run.tensorboard=true: metrics as TensorBoard scalars, one point per epoch even across a
kill and a resume, and ratt eval's accuracies beside them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ratt.runs.tensorboard import tag_of
from tests.train.test_resume import kill_after_a_checkpoint

ARGS = ["epochs=4", "train_limit=256", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1",
        "checkpoint_every=1", "run.tensorboard=true"]  # fmt: skip


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tags_follow_the_metrics_names():
    assert [tag_of(k) for k in ("train_loss", "val_robust_acc", "lr", "flat_loss")] == [
        "train/loss", "val/robust_acc", "lr", "flat/loss"]  # fmt: skip


def test_events_survive_a_kill_and_a_resume_without_duplicate_steps(tmp_path):
    run = tmp_path / "run"
    logged = run / "metrics.jsonl"  # killed after at least one epoch was logged
    kill_after_a_checkpoint(["train", "--quiet", "--out", str(run), *ARGS], run,
                            ready=lambda: logged.exists() and bool(logged.read_text().strip()))  # fmt: skip
    resume = [sys.executable, "-m", "ratt", "train", "--resume", str(run)]
    resumed = subprocess.run(resume, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    scalars = _scalars(run / "tensorboard")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "val_robust_acc", "lr"):
        points = scalars[tag_of(key)]
        assert [step for step, _ in points] == [1, 2, 3, 4], key  # each epoch once
        assert [value for _, value in points] == pytest.approx([row[key] for row in rows], rel=1e-6)
    assert "test/clean" in scalars
    evaluated = subprocess.run([sys.executable, "-m", "ratt", "eval", str(run), "--attacks", "clean,pgd5",
                                "--quiet"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert [step for step, _ in _scalars(run / "tensorboard" / "eval")["eval/pgd5"]] == [4]
