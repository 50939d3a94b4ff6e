from __future__ import annotations

import json
import statistics

import pytest
import yaml

from ratt.cli import main
from ratt.config import TrainConfig
from ratt.errors import UserError
from ratt.report import group_runs, load_run, summarize
from ratt.report.collect import rat_base, rat_effects


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
    assert "| trades | 2 | 100 | 92.0 ± 2.8 | 53.0 ± 4.2 |" in md
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


def test_rat_base_names_the_method_without_the_taylor_terms():
    assert [rat_base(m) for m in ("rat_trades", "awp+rat_trades", "rat_mart", "rat_pgd_at")] == [
        "trades",
        "awp+trades",
        "mart",
        "pgd_at",
    ]
    assert rat_base("trades") is None and rat_base("rat_mc") is None and rat_base("awp+trades") is None


def test_rat_effects_pair_runs_by_seed_within_a_dataset(runs, tmp_path):
    extra = _fake_run(tmp_path, "b1", "rat_trades", 1, 0.93, 0.55, 11.0)
    unpaired = _fake_run(tmp_path, "c0", "rat_mart", 0, 0.5, 0.5, 1.0)  # no mart run: no pair
    other = _fake_run(tmp_path, "d2", "rat_trades", 2, 0.5, 0.5, 1.0)  # no trades seed 2: not paired
    (effect,) = rat_effects([load_run(r) for r in [*runs, extra, unpaired, other]])
    assert (effect["method"], effect["base"], effect["seeds"]) == ("rat_trades", "trades", [0, 1])
    clean_diffs = [0.92 - 0.90, 0.93 - 0.94]
    assert effect["clean"]["diffs"] == pytest.approx(clean_diffs)
    assert effect["clean"]["mean"] == pytest.approx(statistics.fmean(clean_diffs))
    assert effect["clean"]["std"] == pytest.approx(statistics.stdev(clean_diffs))
    assert effect["pgd20"]["ahead"] == 1 and effect["clean"]["behind"] == 1
    assert effect["robust"]["diffs"] == pytest.approx([0.60 - 0.50, 0.55 - 0.56])
    (runs[0] / "eval.json").write_text(json.dumps({"accuracy": {"clean": 0.9, "aa": 0.4}, "robust": 0.4}))
    (effect,) = rat_effects([load_run(r) for r in [*runs, extra]])
    assert "robust" not in effect  # trades seed 0 also ran AutoAttack: its worst case is not comparable


def test_group_by_two_keys_splits_datasets(runs, tmp_path):
    fm = _fake_run(tmp_path, "f0", "trades", 0, 0.80, 0.40, 50.0)
    config = yaml.safe_load((fm / "config.yaml").read_text())
    config["data"]["name"] = "fashion-mnist"
    (fm / "config.yaml").write_text(yaml.safe_dump(config))
    groups = group_runs([load_run(r) for r in [*runs, fm]], "dataset,method")
    assert {k: len(v) for k, v in groups.items()} == {
        "digits / trades": 2,
        "digits / rat_trades": 1,
        "fashion-mnist / trades": 1,
    }
    with pytest.raises(
        UserError, match="'colour' is neither method, dataset, model, run, sweep nor a config key"
    ):
        group_runs([load_run(runs[0])], "dataset,colour")


def _noise(loss0, rise, acc):
    sigmas = [0.0, 0.1, 0.2]
    return {"sigmas": sigmas, "draws": 2, "loss_mean": [loss0, loss0 + rise / 2, loss0 + rise],
            "loss_std": [0, 0, 0], "acc_mean": acc, "acc_std": [0, 0, 0]}  # fmt: skip


def test_report_json_holds_every_run_value_behind_each_mean_and_the_noise_plot(runs, tmp_path):
    for i, run in enumerate(runs):
        noise = {"adv": _noise(1.0, 0.1 * i, [0.5] * 3)}
        landscape = {"summary": {"adv_hessian_top": 3.0 + i}, "noise": noise}
        (run / "landscape.json").write_text(json.dumps(landscape))
        (run / "landscape_noise.png").write_bytes(b"per-run plot, replaced by the aggregate")
    out = tmp_path / "report"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    saved = json.loads((out / "report.json").read_text())
    for group in saved["groups"]:
        values = [r["accuracy"]["pgd20"] for r in saved["runs"] if r["group"] == group["group"]]
        assert group["pgd20"][0] == pytest.approx(statistics.fmean(values))
        tops = [r["flatness"]["adv_hessian_top"] for r in saved["runs"] if r["group"] == group["group"]]
        assert group["flatness"]["adv_hessian_top"][0] == pytest.approx(statistics.fmean(tops))
    assert (out / "noise.png").stat().st_size > 1000
    assert not list(out.glob("*landscape_noise.png"))
    assert "RAT's effect, paired by seed" in (out / "report.md").read_text()


def test_unfinished_runs_are_left_out_and_named(runs, tmp_path, capsys):
    unfinished = _fake_run(tmp_path, "c0", "rat_trades", 1, 0.5, 0.5, 1.0)
    (unfinished / "summary.json").unlink()
    out = tmp_path / "report"
    assert main(["report", *map(str, [*runs, unfinished]), "--out", str(out)]) == 0
    assert f"{unfinished} is not finished" in capsys.readouterr().err
    saved = json.loads((out / "report.json").read_text())
    assert len(saved["runs"]) == 3 and "Left out, not finished" in (out / "report.md").read_text()
    assert main(["report", str(unfinished), "--out", str(out)]) == 2


def test_every_attack_a_run_was_evaluated_with_is_a_column(tmp_path, capsys):
    """`ratt eval --attacks clean,pgd5,cw7` then `ratt report`: both attacks are reported,
    in the registry's order, with the values eval.json holds."""
    run, out = tmp_path / "run", tmp_path / "report"
    tiny = ["epochs=1", "train_limit=64", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]
    assert main(["train", "--quiet", "--out", str(run), *tiny]) == 0
    assert main(["eval", str(run), "--attacks", "cw7,clean,pgd5", "--n", "40", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(out)]) == 0
    header = capsys.readouterr().out.splitlines()[0].split("  ")
    columns = [h.strip() for h in header if h.strip()]
    assert columns[3:7] == ["clean (%)", "PGD-5 (%)", "CW-7 (%)", "worst case (%)"]
    evaluated = json.loads((run / "eval.json").read_text())["accuracy"]
    row = json.loads((out / "report.json").read_text())["groups"][0]
    assert row["pgd5"][0] == evaluated["pgd5"] and row["cw7"][0] == evaluated["cw7"]
    assert "| clean (%) | PGD-5 (%) | CW-7 (%) | worst case (%) |" in (out / "report.md").read_text()


def test_more_groups_than_colours_stay_told_apart_in_the_figures(tmp_path, monkeypatch):
    import matplotlib.figure

    from ratt.report.render import plot_curves

    runs = [_fake_run(tmp_path, f"r{i}", "trades", i, 0.9, 0.5, 1.0) for i in range(12)]
    groups = {f"g{i}": [load_run(run)] for i, run in enumerate(runs)}
    styles = []

    def keep_styles(figure, *args, **kwargs):
        styles.extend((line.get_color(), line.get_linestyle()) for line in figure.axes[0].lines)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep_styles)
    plot_curves(groups, tmp_path / "curves.png")
    assert len(styles) == 12
    assert len(set(styles)) == 12  # the 11th group is not drawn like the 1st
    assert {style for _, style in styles[:10]} == {"-"}  # up to 10 groups: solid, as before


def test_rat_effects_pair_only_runs_whose_settings_differ_in_the_method(tmp_path):
    """An ablation folder holds rat_trades variants (taylor=none, alpha=0.4) and TRADES with label
    smoothing beside the plain pair: RAT's effect pairs rat_trades with trades only where nothing
    but the method differs, one row per setting, and never lets one variant overwrite another."""

    def run(sweep, method, seed, clean, **method_keys):
        path = _fake_run(tmp_path, f"{sweep}-{method}-{seed}", method, seed, clean, 0.5, 1.0)
        config = yaml.safe_load((path / "config.yaml").read_text())
        config["method"].update(method_keys)
        (path / "config.yaml").write_text(yaml.safe_dump(config))
        # the sweep layout OUT/DATASET/METHOD/seed-N, so the sweep folder names the setting
        target = tmp_path / sweep / "digits" / method / f"seed-{seed}"
        target.parent.mkdir(parents=True, exist_ok=True)
        return load_run(path.rename(target))

    records = [
        *(run("base", "trades", s, 0.90) for s in (0, 1)),
        *(run("base", "rat_trades", s, 0.80 + s / 100) for s in (0, 1)),  # RAT 10 and 9 points behind
        *(run("taylor-none", "rat_trades", s, 0.99, taylor="none") for s in (0, 1)),
        *(run("smoothing", "trades", s, 0.50, label_smoothing=0.178) for s in (0, 1)),
        *(run("alpha", "trades", s, 0.70, alpha=0.4) for s in (0, 1)),
        *(run("alpha", "rat_trades", s, 0.75, alpha=0.4) for s in (0, 1)),  # 5 points ahead
    ]
    effects = rat_effects(records)
    assert [(e["method"], e["base"], e["seeds"]) for e in effects] == [("rat_trades", "trades", [0, 1])] * 2
    by_setting = {e["setting"]: e["clean"]["diffs"] for e in effects}
    assert by_setting["base"] == pytest.approx([-0.10, -0.09])
    assert by_setting["alpha"] == pytest.approx([0.05, 0.05])
    # a run repeated with the same setting makes its seed ambiguous: left out, not overwritten
    (effect,) = rat_effects([*records[:4], run("again", "rat_trades", 1, 0.5)])
    assert effect["seeds"] == [0] and effect["clean"]["diffs"] == pytest.approx([-0.10])
    assert "setting" not in effect
