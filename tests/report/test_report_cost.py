"""``ratt report``'s training cost: the table's cost columns and collapses from summary.json,
AutoAttack preferred as the robust figure, and the accuracy-against-cost figure."""

from __future__ import annotations

import json
import statistics

import yaml

from ratt.config import TrainConfig
from ratt.report import build_report


def _run(root, method, seed, *, units, steps, seconds, aa=None, pgd=0.4, collapsed=None):
    run = root / f"{method}-{seed}"
    run.mkdir()
    config = TrainConfig()
    config.method.name, config.run.seed = method, seed
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    accuracy = {"clean": 0.8, "pgd20": pgd, **({"aa": aa} if aa is not None else {})}
    test = {"n": 100, "accuracy": accuracy, "robust": min(accuracy.values()), "seconds": {}}
    cost = {"forward_units_per_step": units, "steps": steps, "image_forward_units": units * steps * 64,
            "device_seconds": seconds, "train_seconds": seconds, "devices": 1}  # fmt: skip
    summary = {"train_seconds": seconds, "test": test, "cost": cost, "catastrophic_overfitting": collapsed}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_cost_table_and_figure(tmp_path):
    runs = [
        _run(tmp_path, "fgsm_rs", 0, units=5, steps=100, seconds=10.0, aa=0.30),
        _run(tmp_path, "fgsm_rs", 1, units=5, steps=100, seconds=12.0, aa=0.34, collapsed=3),
        _run(tmp_path, "pgd_at", 0, units=23, steps=100, seconds=50.0, pgd=0.45),
        _run(tmp_path, "pgd_at", 1, units=23, steps=100, seconds=54.0, pgd=0.47),
    ]
    report = build_report(runs, tmp_path / "report")
    text = report.markdown.read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    fast = f"{statistics.fmean([10, 12]):.1f} ± {statistics.stdev([10, 12]):.1f}"
    aa = f"{100 * statistics.fmean([0.30, 0.34]):.2f} ± {100 * statistics.stdev([0.30, 0.34]):.2f}"
    assert rows["fgsm_rs"].startswith(
        f"| fgsm_rs | 2 | 5 | 100 | 3.2e+04 | {fast} | {aa} (AutoAttack) | 1/2 (epochs 3) |"
    )
    assert "| pgd_at | 2 | 23 | 100 | 1.47e+05 | 52.0 ± 2.8 |" in rows["pgd_at"]
    assert "(worst case) | 0/2 |" in rows["pgd_at"]  # no AutoAttack there: the worst case
    assert (tmp_path / "report" / "cost.png").stat().st_size > 0
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [row["collapsed"] for row in data["cost"]] == [[None, 3], [None, None]]


def test_runs_without_cost_show_a_dash_and_no_figure(tmp_path):
    run = _run(tmp_path, "trades", 0, units=27, steps=1, seconds=1.0)
    summary = json.loads((run / "summary.json").read_text())
    del summary["cost"], summary["catastrophic_overfitting"]
    (run / "summary.json").write_text(json.dumps(summary))
    report = build_report([run], tmp_path / "report")
    line = [x for x in report.markdown.read_text().splitlines() if x.startswith("| trades | 1 | - |")]
    assert line and line[0].endswith("| 0/1 |")
    assert not (tmp_path / "report" / "cost.png").exists()


def test_collapses_are_read_from_the_validation_history_with_todays_guard(tmp_path):
    """A run whose summary recorded no collapse (an older guard, which needed a fall from a
    best) is counted by the rule as it is now: FGSM 55 points above PGD from epoch 1. Its
    own ``run.co_drop`` applies; a history without FGSM accuracies leaves the summary's word."""
    never_robust = _run(tmp_path, "rat_fgsm_rs", 0, units=8, steps=10, seconds=1.0)
    rows = [{"epoch": 1, "val_fgsm_acc": 0.74, "val_robust_acc": 0.19},
            {"epoch": 2, "val_fgsm_acc": 0.84, "val_robust_acc": 0.03}]  # fmt: skip
    (never_robust / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lenient = _run(tmp_path, "rat_fgsm_rs", 1, units=8, steps=10, seconds=1.0)
    (lenient / "metrics.jsonl").write_text((never_robust / "metrics.jsonl").read_text())
    config = yaml.safe_load((lenient / "config.yaml").read_text())
    config["run"]["co_drop"] = 90.0  # this run asked for a 90-point gap: none here
    (lenient / "config.yaml").write_text(yaml.safe_dump(config))
    recorded = _run(tmp_path, "rat_fgsm_rs", 2, units=8, steps=10, seconds=1.0, collapsed=4)
    build_report([never_robust, lenient, recorded], tmp_path / "report")
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [row["collapsed"] for row in data["cost"]] == [[1, None, 4]]


def test_labels_of_points_at_the_same_cost_alternate_sides():
    from ratt.report.cost import label_sides

    # fgsm_rs and n_fgsm share 5 units; rat_fgsm_rs and rat_n_fgsm share 8; trades alone
    sides = label_sides([5.0, 8.0, 5.0, 27.0, 8.0, 5.0])
    assert sides == ["right", "right", "left", "right", "left", "right"]
