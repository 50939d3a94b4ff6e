"""`ratt report` never mixes evaluations: each row's figures come from one evaluation (one n,
one attack set, one threat model); the worst case is over exactly the attacks shown."""

from __future__ import annotations

import json

import pytest
import yaml

from ratt.cli import main
from ratt.config import TrainConfig
from ratt.errors import UserError
from ratt.report import group_runs, load_run, summarize
from ratt.report.collect import rat_effects

THREAT = {"norm": "linf", "eps": 0.2, "step": 0.05, "steps": 10, "random_start": True, "restarts": 1}


def _run(root, name, method="trades", seed=0, n=100, accuracy=None, robust=None):
    """A finished run whose summary.json holds ``accuracy`` (default clean 0.9, pgd20 0.5)."""
    run = root / name
    run.mkdir()
    config = TrainConfig()
    config.method.name, config.run.seed = method, seed
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    accuracy = accuracy or {"clean": 0.9, "pgd20": 0.5}
    robust = min(accuracy.values()) if robust is None else robust
    test = {"n": n, "accuracy": accuracy, "robust": robust, "seconds": {}}
    summary = {"checkpoint": "best", "train_seconds": 5.0, "threat": THREAT, "test": test}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _eval_json(run, n, accuracy, robust, eps=0.2, weights="best"):
    evaluation = {"weights": weights, "n": n, "accuracy": accuracy, "robust": robust,
                  "threat": {**THREAT, "eps": eps}}  # fmt: skip
    (run / "eval.json").write_text(json.dumps(evaluation))


def test_eval_json_replaces_the_summary_it_is_never_merged_with_it(tmp_path):
    """The issue's case: `ratt eval --attacks clean --n 10` after training with clean,pgd20 on
    100 points: the row shows 10 points, clean only, and a worst case equal to clean."""
    run = _run(tmp_path, "a")
    _eval_json(run, 10, {"clean": 0.7}, 0.7)
    record = load_run(run)
    assert record.accuracy == {"clean": 0.7, "robust": 0.7} and record.n == 10
    assert record.source == "eval.json" and record.weights == "best"
    (row,) = summarize(group_runs([record]))
    assert row["columns"] == ["clean", "robust"] and row["n"] == [10] and "pgd20" not in row


def test_the_summary_is_used_whole_when_there_is_no_eval_json(tmp_path):
    record = load_run(_run(tmp_path, "a", n=360))
    assert record.accuracy == {"clean": 0.9, "pgd20": 0.5, "robust": 0.5} and record.n == 360
    assert record.source == "summary.json" and record.threat == ("linf", 0.2)


def test_an_eval_json_without_accuracies_is_ignored_with_a_warning(tmp_path, caplog):
    run = _run(tmp_path, "a")
    (run / "eval.json").write_text('{"accuracy": {}, "robust": NaN, "n": 360}')  # what `--attacks ""` wrote
    record = load_run(run)
    assert record.source == "summary.json" and record.accuracy["pgd20"] == 0.5
    assert "holds no accuracies" in caplog.text


@pytest.mark.parametrize(
    "evaluation,needle",
    [
        ({"accuracy": {"clean": 0.9}, "robust": float("nan"), "n": 10}, "'robust'"),
        ({"accuracy": {"clean": 1.5}, "robust": 0.5, "n": 10}, "'clean'"),
        ({"accuracy": {"clean": "high"}, "n": 10}, "'clean'"),
        ({"accuracy": {"clean": 0.9}, "robust": 0.9, "n": 0}, "n=0"),
        ({"accuracy": [0.9], "n": 10}, "accuracy"),
    ],
)
def test_a_value_ratt_never_writes_is_a_one_line_error_naming_the_file(tmp_path, evaluation, needle):
    run = _run(tmp_path, "a")
    (run / "eval.json").write_text(json.dumps(evaluation))
    with pytest.raises(UserError, match=needle) as caught:
        load_run(run)
    assert "eval.json" in str(caught.value) and "\n" not in str(caught.value)


def test_runs_of_a_group_evaluated_differently_get_one_row_each(tmp_path, capsys):
    same_a, same_b = (
        _run(tmp_path, "a0", seed=0),
        _run(tmp_path, "a1", seed=1, accuracy={"clean": 0.8, "pgd20": 0.4}),
    )
    small = _run(tmp_path, "a2", seed=2)
    _eval_json(small, 10, {"clean": 0.7}, 0.7)
    other_eps = _run(tmp_path, "a3", seed=3)
    _eval_json(other_eps, 100, {"clean": 0.9, "pgd20": 0.3}, 0.3, eps=0.3)
    rows = summarize(group_runs([load_run(r) for r in (same_a, same_b, small, other_eps)]))
    by_name = {row["group"]: row for row in rows}
    assert set(by_name) == {
        "trades [n=100; clean, PGD-20; linf eps=0.2]",
        "trades [n=10; clean; linf eps=0.2]",
        "trades [n=100; clean, PGD-20; linf eps=0.3]",
    }
    both = by_name["trades [n=100; clean, PGD-20; linf eps=0.2]"]
    assert (
        both["runs"] == 2
        and both["pgd20"][0] == pytest.approx(0.45)
        and both["robust"][0] == pytest.approx(0.45)
    )
    assert by_name["trades [n=10; clean; linf eps=0.2]"]["n"] == [10]
    assert "pgd20" not in by_name["trades [n=10; clean; linf eps=0.2]"]
    assert by_name["trades [n=100; clean, PGD-20; linf eps=0.3]"]["pgd20"][0] == 0.3
    # the command says so on stderr and the page explains the brackets
    out = tmp_path / "report"
    assert main(["report", *map(str, (same_a, same_b, small, other_eps)), "--out", str(out)]) == 0
    assert "runs of 'trades' were evaluated differently" in capsys.readouterr().err
    assert "one row per evaluation" in (out / "report.md").read_text()


def test_a_group_evaluated_one_way_is_one_row(tmp_path):
    runs = [_run(tmp_path, f"a{s}", seed=s) for s in range(3)]
    (row,) = summarize(group_runs([load_run(r) for r in runs]))
    assert row["group"] == "trades" and row["runs"] == 3


def test_rat_effects_compare_only_runs_evaluated_on_the_same_points(tmp_path):
    rat, base = _run(tmp_path, "r0", "rat_trades"), _run(tmp_path, "t0", "trades")
    assert "clean" in rat_effects([load_run(rat), load_run(base)])[0]
    _eval_json(rat, 10, {"clean": 1.0, "pgd20": 0.9}, 0.9)  # 10 points against the base's 100
    (effect,) = rat_effects([load_run(rat), load_run(base)])
    assert effect["columns"] == []


def test_report_after_eval_on_ten_points_shows_that_evaluation_alone(tmp_path, capsys):
    """End to end, as in the issue: train (test: clean, pgd2 on 360 points), `ratt eval
    --attacks clean --n 10`, `ratt report`."""
    run, out = tmp_path / "run", tmp_path / "report"
    tiny = [
        "epochs=1",
        "train_limit=64",
        "steps=1",
        "val_attack_steps=1",
        "test_attacks=clean,pgd2",
        "threads=1",
    ]
    assert main(["train", "--quiet", "--out", str(run), *tiny]) == 0
    assert main(["eval", str(run), "--attacks", "clean", "--n", "10", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(out)]) == 0
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    assert "PGD" not in header and "test points" in header
    evaluated = json.loads((run / "eval.json").read_text())
    (group,) = json.loads((out / "report.json").read_text())["groups"]
    assert group["n"] == [10] and group["columns"] == ["clean", "robust"]
    assert group["clean"][0] == evaluated["accuracy"]["clean"] and group["robust"][0] == evaluated["robust"]
    assert group["robust"][0] <= group["clean"][0]


def test_from_picks_one_evaluation_for_every_run(tmp_path, capsys):
    """The powered study's case: training tested all 10,000 points with clean,pgd20; `ratt eval`
    ran AutoAttack on 1,000. `--from summary` reports the 10,000, `--from eval` the 1,000, the
    default the 1,000 (eval.json wins); a run without eval.json is left out under `--from eval`."""
    both = _run(tmp_path, "a0", seed=0, n=10000, accuracy={"clean": 0.84, "pgd20": 0.75})
    _eval_json(both, 1000, {"clean": 0.843, "aa": 0.734}, 0.734)
    trained = _run(tmp_path, "a1", seed=1, n=10000, accuracy={"clean": 0.86, "pgd20": 0.76})
    assert load_run(both).n == 1000 and load_run(both, "eval").accuracy["aa"] == 0.734
    full = load_run(both, "summary")
    assert full.n == 10000 and full.source == "summary.json" and "aa" not in full.accuracy
    assert full.accuracy["pgd20"] == 0.75 and full.accuracy["robust"] == 0.75
    assert not load_run(trained, "eval").accuracy and load_run(trained, "summary").n == 10000
    with pytest.raises(UserError, match="source"):
        load_run(both, "best")
    out = tmp_path / "report"
    assert main(["report", str(both), str(trained), "--from", "summary", "--out", str(out)]) == 0
    (row,) = json.loads((out / "report.json").read_text())["groups"]
    assert row["n"] == [10000] and row["pgd20"][0] == pytest.approx(0.755)
    assert main(["report", str(both), str(trained), "--from", "eval", "--out", str(out)]) == 0
    assert f"{trained} is not finished (no eval.json)" in capsys.readouterr().err
    (row,) = json.loads((out / "report.json").read_text())["groups"]
    assert row["runs"] == 1 and row["aa"][0] == pytest.approx(0.734)
