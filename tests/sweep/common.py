"""What the sweep tests share: the tiny settings and the bit-for-bit comparison of two cells."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

# On the CPU even where there is a GPU: the same numbers on every machine, and --workers 2 is
# allowed on a 1-GPU machine (on GPUs a sweep runs one cell per GPU).
TINY = ["epochs=1", "train_limit=64", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1",
        "device=cpu"]  # fmt: skip
TIMING = ("seconds", "train_seconds")


def numbers(run):
    """Every number a cell produced: its weights files' tensors, its metrics rows without the
    timing fields, its summary's test accuracies."""
    weights = {p.name: load_file(p) for p in sorted((run / "checkpoints").glob("*.safetensors"))}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in row.items() if k not in TIMING} for row in rows]
    test = json.loads((run / "summary.json").read_text())["test"]
    return weights, rows, (test["accuracy"], test["robust"])


def assert_same_numbers(a, b):
    """The cells in run directories ``a`` and ``b`` hold bit-identical numbers."""
    (wa, ra, sa), (wb, rb, sb) = numbers(a), numbers(b)
    assert wa.keys() == wb.keys() and wa
    for name in wa:
        assert wa[name].keys() == wb[name].keys()
        assert all(torch.equal(wa[name][k], wb[name][k]) for k in wa[name]), name
    assert ra == rb and sa == sb
