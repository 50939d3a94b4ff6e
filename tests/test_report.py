from __future__ import annotations

import json
import statistics

import pytest
import yaml

from ratt.cli import main
from ratt.config import TrainConfig
from ratt.errors import UserError
from ratt.report import group_runs, load_run, summarize


def _fake_run(root, name, method, seed, clean, pgd, seconds, epochs=3):
    run = root / name
    run.mkdir()
    config = TrainConfig()
    config.method.name, config.run.seed = method, seed
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    rows = [{"epoch": e + 1, "train_loss": 2.0 - e / 10, "val_clean_acc": clean, "val_robust_acc": pgd}
            for e in range(epochs)]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"train_seconds": seconds, "test": {"n": 100, "accuracy": {"clean": clean, "pgd20": pgd},
               "robust": pgd, "seconds": {}}}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "versions.json").write_text(json.dumps({"torch": "x"}))
    return run


@pytest.fixture
def runs(tmp_path):
    return [
        _fake_run(tmp_path, "a0", "trades", 0, 0.90, 0.50, 10.0),
        _fake_run(tmp_path, "a1", "trades", 1, 0.94, 0.56, 12.0),
        _fake_run(tmp_path, "b0", "rat_trades", 0, 0.92, 0.60, 11.0),
    ]


def test_groups_aggregate_mean_and_sample_std_over_seeds(runs):
    rows = summarize(group_runs([load_run(r) for r in runs], "method"))
    trades = next(r for r in rows if r["group"] == "trades")
    assert trades["runs"] == 2
    assert trades["clean"][0] == pytest.approx(0.92)
    assert trades["clean"][1] == pytest.approx(statistics.stdev([0.90, 0.94]))
    assert trades["train_seconds"][0] == pytest.approx(11.0)
    single = next(r for r in rows if r["group"] == "rat_trades")
    assert single["pgd20"][0] == pytest.approx(0.60)


def test_eval_json_overrides_the_training_summary(runs):
    (runs[2] / "eval.json").write_text(json.dumps({"accuracy": {"clean": 0.92, "aa": 0.55}, "robust": 0.55}))
    record = load_run(runs[2])
    assert record.accuracy["aa"] == 0.55 and record.accuracy["robust"] == 0.55


def test_report_command_writes_markdown_and_a_self_contained_page(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| trades | 2 | 92.0 ± 2.8 | 53.0 ± 4.2 |" in md
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and 'src="http' not in page
    assert (out / "curves.png").stat().st_size > 1000
    assert "trades" in capsys.readouterr().out


def test_flatness_comes_from_the_landscape_summary(runs):
    landscape = {"seed": 0, "n": 360, "summary": {"hessian_top": 4.5, "noise_rise": 0.1}}
    (runs[0] / "landscape.json").write_text(json.dumps(landscape))
    assert load_run(runs[0]).flatness == {"hessian_top": 4.5, "noise_rise": 0.1}


def test_a_folder_that_is_not_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a ratt run directory"):
        load_run(tmp_path)
