"""Comparing groups: paired by seed against a reference with a sign test, grouping by a config
key with a sensitivity figure, grouping by sweep folder."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from ratt.cli import main
from ratt.config import TrainConfig
from ratt.core.stats import sign_test
from ratt.errors import UserError
from ratt.report import group_runs, load_run
from ratt.report.compare import paired_differences, sensitivity


def _run(root, sweep, method, seed, alpha, clean, aa):
    run = root / sweep / "digits" / method / f"seed-{seed}"
    run.mkdir(parents=True)
    config = TrainConfig()
    config.method.name, config.method.alpha, config.run.seed = method, alpha, seed
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0}) + "\n")
    test = {"n": 360, "accuracy": {"clean": clean, "aa": aa}, "robust": aa, "seconds": {}}
    (run / "summary.json").write_text(json.dumps({"train_seconds": 1.0, "threat": {}, "test": test}))
    return run


def test_the_sign_test_matches_the_binomial_by_hand():
    assert sign_test(5, 0) == pytest.approx(2 / 32)  # both tails of 5 fair coins all one way
    assert sign_test(4, 1) == pytest.approx(2 * (1 + 5) / 32)
    assert sign_test(2, 2) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 1024)


@pytest.fixture
def ablation(tmp_path):
    runs = []
    for seed in range(5):
        runs.append(_run(tmp_path, "base", "trades", seed, 0.2, 0.90, 0.60 + 0.01 * seed))
        runs.append(_run(tmp_path, "alpha-0.1", "rat_trades", seed, 0.1, 0.91, 0.58 + 0.01 * seed))
        runs.append(_run(tmp_path, "alpha-0.4", "rat_trades", seed, 0.4, 0.89, 0.61 + 0.01 * seed))
    return runs


def test_paired_differences_pair_by_seed_and_count_the_signs(ablation):
    groups = group_runs([load_run(r) for r in ablation], "sweep,method")
    assert set(groups) == {"base / trades", "alpha-0.1 / rat_trades", "alpha-0.4 / rat_trades"}
    assert list(group_runs([load_run(r) for r in ablation], "sweep, method")) == list(groups)  # spaces
    rows = {row["group"]: row for row in paired_differences(groups, "base / trades")}
    low = rows["alpha-0.1 / rat_trades"]["aa"]
    assert low["diffs"] == pytest.approx([-0.02] * 5) and (low["ahead"], low["behind"]) == (0, 5)
    assert low["p"] == pytest.approx(0.0625) and low["mean"] == pytest.approx(-0.02)
    assert rows["alpha-0.4 / rat_trades"]["aa"]["ahead"] == 5
    # identical differences: no spread measured, so neither the t-test nor the detectable
    # difference is defined (a spread of 0 would claim any shift is detectable)
    assert math.isnan(low["detectable"]) and math.isnan(low["t_p"])


def test_grouping_by_a_config_key_draws_accuracy_against_it(ablation, tmp_path, capsys):
    groups = group_runs([load_run(r) for r in ablation], "method.alpha")
    assert set(groups) == {"alpha=0.2", "alpha=0.1", "alpha=0.4"}
    data = sensitivity(groups, "method.alpha")
    assert data["values"] == [0.1, 0.2, 0.4]
    assert data["aa"]["mean"] == pytest.approx([0.60, 0.62, 0.63])
    assert data["aa"]["low"][0] == pytest.approx(0.58) and data["aa"]["high"][0] == pytest.approx(0.62)
    out = tmp_path / "report"
    args = ["report", *map(str, ablation), "--out", str(out), "--group-by", "method.alpha"]
    assert main([*args, "--paired-with", "alpha=0.2"]) == 0
    assert (out / "sensitivity-method-alpha.png").exists()
    markdown = (out / "report.md").read_text()
    assert "Paired with alpha=0.2, by seed" in markdown and "p=0.062" in markdown
    assert "What these seeds can detect" in markdown
    saved = json.loads((out / "report.json").read_text())
    assert saved["sensitivity"]["method.alpha"]["values"] == [0.1, 0.2, 0.4]
    assert not math.isnan(saved["paired"][0]["aa"]["mean"])
    assert main([*args, "--paired-with", "nope"]) == 2


def test_a_group_with_two_runs_of_one_seed_cannot_be_paired(ablation, tmp_path, capsys):
    """Grouped by method alone, the two rat_trades variants of each seed fall into one group:
    pairing them with TRADES by seed is ambiguous (each TRADES run would be counted twice as if
    10 seeds had run), so the report refuses with one line instead of printing such a test."""
    groups = group_runs([load_run(r) for r in ablation], "method")
    with pytest.raises(UserError, match="two runs of digits seed 0"):
        paired_differences(groups, "trades")
    runs = [str(r) for r in ablation]
    assert main(["report", *runs, "--paired-with", "trades", "--out", str(tmp_path / "r")]) == 2
    assert "group by more" in capsys.readouterr().err


def test_a_group_spanning_several_settings_is_named_with_what_differs(ablation, tmp_path, capsys):
    """Grouped by method, rat_trades holds α = 0.1 and α = 0.4: the row is a mean over both,
    and the command says so on stderr naming the key; grouped by sweep, nothing is said."""
    runs = [str(r) for r in ablation]
    assert main(["report", *runs, "--group-by", "method", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "runs of 'rat_trades' differ in method.alpha" in err and "'trades'" not in err
    assert main(["report", *runs, "--group-by", "sweep,method", "--out", str(tmp_path / "b")]) == 0
    assert "differ in" not in capsys.readouterr().err


@pytest.mark.parametrize("seed_counts", [[3], [5], [1], [2, 3]])
def test_paired_note_gives_the_smallest_sign_test_p_for_the_seeds_at_hand(seed_counts):
    from ratt.report.build import paired_note

    note = paired_note([{"seeds": list(range(n))} for n in seed_counts])
    most = max(seed_counts)
    smallest = min(1.0, 2 * 0.5**most)  # every seed on one side
    assert f"with {most} seed" in note and f"smallest possible p is {smallest:.3g})" in note
    assert ("the most of any row" in note) == (len(set(seed_counts)) > 1)


def test_rats_effect_states_what_its_seeds_can_detect_as_the_paired_view_does(tmp_path):
    runs = []
    for seed, (trades_aa, rat_aa) in enumerate([(0.60, 0.57), (0.62, 0.61), (0.61, 0.56)]):
        runs.append(_run(tmp_path, "base", "trades", seed, 0.2, 0.90, trades_aa))
        runs.append(_run(tmp_path, "base", "rat_trades", seed, 0.2, 0.90, rat_aa))
    out = tmp_path / "report"
    args = ["report", *map(str, runs), "--out", str(out), "--group-by", "sweep,method"]
    assert main([*args, "--paired-with", "base / trades"]) == 0
    saved = json.loads((out / "report.json").read_text())
    (effect,) = saved["rat_effects"]
    (paired,) = saved["paired"]
    for key in ("diffs", "t_p", "detectable", "p"):  # two code paths to the same three pairs
        assert effect["aa"][key] == pytest.approx(paired["aa"][key])
    # differences -3, -1, -5 points: std 2, and t(0.975, 2) + t(0.8, 2) = 4.3027 + 1.0607
    assert effect["aa"]["detectable"] == pytest.approx(5.3633 * 0.02 / math.sqrt(3), rel=1e-4)
    markdown = (out / "report.md").read_text()
    section = markdown.split("## RAT's effect: what these seeds can detect")[1].split("## ")[0]
    assert "| digits | rat_trades − trades | 3 |" in section and "6.2 |" in section
