"""``run.max_steps`` caps the optimizer steps of a run (a smoke run): training stops there,
the cut epoch is validated, checkpointed and tested as usual."""

from __future__ import annotations

import json

from ratt.cli import main
from ratt.train.step import TrainStep

ARGS = ["method=natural", "test_attacks=clean", "threads=1", "--quiet", "batch_size=64"]


def test_max_steps_stops_training_after_that_many_steps(tmp_path, monkeypatch):
    calls = []
    original = TrainStep.__call__

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TrainStep, "__call__", counted)
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "max_steps=3", "epochs=2", *ARGS]) == 0
    assert len(calls) == 3  # digits: 20 steps of 64 per epoch without the cap
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and "val_clean_acc" in rows[0]  # one cut epoch, validated
    assert "clean" in json.loads((run / "summary.json").read_text())["test"]["accuracy"]
    calls.clear()
    assert main(["train", "--out", str(tmp_path / "r2"), "max_steps=30", "epochs=2", *ARGS]) == 0
    assert len(calls) == 30  # across the epoch boundary: 20 + 10
    assert len((tmp_path / "r2" / "metrics.jsonl").read_text().splitlines()) == 2
