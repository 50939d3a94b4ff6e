"""The best checkpoint is the epoch with the best validation accuracy of the method's kind:
PGD accuracy for methods trained for robustness, clean accuracy for natural training."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from ratt.cli import main

# 5 epochs on all of digits at lr 0.02: the natural model's PGD accuracy peaks at epoch 2, its
# clean accuracy at epoch 5
TINY = ["epochs=5", "steps=2", "val_attack_steps=3", "test_attacks=clean", "threads=1", "keep_every=1",
        "lr=0.02"]  # fmt: skip


@pytest.mark.parametrize("method,metric", [("natural", "val_clean_acc"), ("trades", "val_robust_acc")])
def test_best_is_the_epoch_with_the_best_validation_accuracy_of_the_methods_kind(tmp_path, method, metric):
    run = tmp_path / method
    assert main(["train", "--quiet", "--out", str(run), f"method={method}", *TINY]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    scores = [row[metric] for row in rows]
    chosen = rows[scores.index(max(scores))]["epoch"]  # the first epoch reaching the best
    best = load_file(run / "checkpoints" / "best.safetensors")
    same = [
        row["epoch"]
        for row in rows
        if all(
            (best[k] == v).all()
            for k, v in load_file(run / "checkpoints" / f"epoch-{row['epoch']:04d}.safetensors").items()
        )
    ]
    assert same == [chosen]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selected_by"] == ("clean" if method == "natural" else "robust")
    if method == "natural":  # the case the rule is for: PGD accuracy would have picked another epoch
        robust = [row["val_robust_acc"] for row in rows]
        assert rows[robust.index(max(robust))]["epoch"] != chosen
