"""The catastrophic-overfitting guard: the pure rule on constructed accuracy sequences, and the
trainer acting on a constructed collapse (its validation measurements scripted)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from ratt.cli import main
from ratt.eval.overfitting import collapse_epoch, new_collapse
from ratt.train.trainer import Trainer


def test_collapse_is_flagged_when_pgd_falls_past_the_drop_while_fgsm_does_not_fall():
    # (epoch, fgsm, pgd): PGD peaks at 45% (epoch 2), then falls to 20% with FGSM up
    history = [(1, 0.42, 0.40), (2, 0.47, 0.45), (3, 0.50, 0.30), (4, 0.90, 0.20)]
    found = collapse_epoch(history, 20)
    assert found is not None and found.epoch == 4 and found.best_epoch == 2 and found.rule == "fall"
    assert found.drop == pytest.approx(25.0)
    assert "epoch 4" in found.describe() and "\n" not in found.describe()
    assert collapse_epoch(history[:3], 20) is None  # a 15-point fall, a 20-point gap: under the drop
    assert collapse_epoch(history, 10).epoch == 3  # a smaller drop fires earlier


def test_collapse_is_flagged_when_fgsm_is_far_above_pgd_even_from_the_first_validation():
    # rat_fgsm_rs seed 0 at eps 0.2 (docs/results/fast/collapse/): never robust, no best to fall from
    never_robust = [(1, 0.74, 0.19), (2, 0.84, 0.03), (3, 0.79, 0.01)]
    found = collapse_epoch(never_robust, 20)
    assert found is not None and (found.epoch, found.rule) == (1, "gap")
    assert found.gap == pytest.approx(55.0)
    assert "above PGD accuracy 19.00%" in found.describe() and "\n" not in found.describe()
    healthy = [(1, 0.64, 0.59), (2, 0.72, 0.63), (3, 0.75, 0.66)]  # fgsm_rs seed 1's first epochs
    assert collapse_epoch(healthy, 20) is None and collapse_epoch(healthy, 8).epoch == 2
    slow = [(1, 0.63, 0.61), (2, 0.72, 0.64), (3, 0.75, 0.68), (4, 0.81, 0.59)]  # FGSM up, PGD down
    assert (collapse_epoch(slow, 20).epoch, collapse_epoch(slow, 20).rule) == (4, "gap")


def test_no_collapse_when_fgsm_falls_too_or_pgd_holds():
    both_fall = [(1, 0.60, 0.45), (2, 0.30, 0.10)]  # plain divergence, not a collapse
    assert collapse_epoch(both_fall, 20) is None
    steady = [(e, 0.50, 0.40 - 0.001 * e) for e in range(1, 20)]
    assert collapse_epoch(steady, 20) is None
    assert collapse_epoch([], 20) is None
    exactly = [(1, 0.45, 0.45), (2, 0.45, 0.25)]  # a 20-point fall and gap: not more than the drop
    assert collapse_epoch(exactly, 20.0001) is None and collapse_epoch(exactly, 19.9999).epoch == 2


def test_new_collapse_fires_once_at_the_epoch_it_happens():
    rows = [{"epoch": 1, "val_fgsm_acc": 0.5, "val_robust_acc": 0.45}]
    lines = [json.dumps(r) for r in rows]
    assert new_collapse(lines, {"epoch": 2, "lr": 0.1}, 20) is None  # not validated this epoch
    row = {"epoch": 2, "val_fgsm_acc": 0.9, "val_robust_acc": 0.1}
    assert new_collapse(lines, row, 20).epoch == 2
    flagged = [*lines, json.dumps({**row, "catastrophic_overfitting": 2})]
    later = {"epoch": 3, "val_fgsm_acc": 0.95, "val_robust_acc": 0.05}
    assert new_collapse(flagged, later, 20) is None


# a constructed collapse: FGSM accuracy stays or rises while PGD accuracy falls at epoch 3
SCRIPT = [(0.60, 0.40), (0.62, 0.45), (0.90, 0.05), (0.95, 0.02), (0.97, 0.01)]
TINY = ["epochs=5", "train_limit=64", "val_attack_steps=2", "test_attacks=clean", "threads=1", "keep_every=1"]


def _scripted(monkeypatch):
    calls = []

    def validate(self):
        fgsm, pgd = SCRIPT[len(calls)]
        calls.append(self.loop.epoch + 1)
        return {"val_clean_acc": 0.9, "val_robust_acc": pgd, "val_fgsm_acc": fgsm}

    monkeypatch.setattr(Trainer, "_validate", validate)
    return calls


@pytest.mark.parametrize("on_co", ["continue", "stop"])
def test_trainer_flags_a_constructed_collapse_and_stops_on_request(tmp_path, monkeypatch, caplog, on_co):
    calls = _scripted(monkeypatch)
    run = tmp_path / on_co
    assert main(["train", "--quiet", "--out", str(run), "method=fgsm_rs", f"run.on_co={on_co}", *TINY]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    flags = [row.get("catastrophic_overfitting") for row in rows]
    assert flags[:3] == [None, None, 3] and all(f is None for f in flags[3:])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["catastrophic_overfitting"] == 3
    said = "catastrophic overfitting at epoch 3"
    lines = [r.getMessage() for r in caplog.records if said in r.getMessage()]
    assert len(lines) == 1
    best = load_file(run / "checkpoints" / "best.safetensors")
    epoch2 = load_file(run / "checkpoints" / "epoch-0002.safetensors")
    assert all((best[k] == v).all() for k, v in epoch2.items())  # the best checkpoint is kept
    if on_co == "stop":
        assert calls == [1, 2, 3] and len(rows) == 3 and summary["epochs"] == 3
        assert summary["stopped"] == "catastrophic overfitting at epoch 3 (run.on_co=stop)"
    else:
        assert calls == [1, 2, 3, 4, 5] and summary["stopped"] is None
    cost = summary["cost"]
    assert cost["forward_units_per_step"] == 5 and cost["steps"] == summary["epochs"]  # 1 step per epoch
    assert cost["forward_units"] == 5 * cost["steps"] and cost["device_seconds"] == cost["train_seconds"]


def test_validation_measures_fgsm_accuracy_on_the_validation_split(tmp_path):
    run = tmp_path / "run"
    args = ["method=fgsm", "epochs=1", "train_limit=64", "val_attack_steps=2", "test_attacks=clean"]
    assert main(["train", "--quiet", "--out", str(run), *args]) == 0
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 <= row["val_fgsm_acc"] <= 1 and row["val_robust_acc"] <= row["val_clean_acc"]
    config = json.loads((run / "summary.json").read_text())
    assert config["catastrophic_overfitting"] is None and config["stopped"] is None
