from __future__ import annotations

import json

import pytest

from ratt.cli import main

TINY = ["epochs=1", "train_limit=64", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]


def _stamps(root, name):
    return {p: p.stat().st_mtime_ns for p in root.rglob(name)}


def test_sweep_trains_each_cell_once_and_tabulates(tmp_path, capsys):
    args = [
        "sweep",
        "--quiet",
        "--out",
        str(tmp_path),
        "--methods",
        "natural,trades",
        "--seeds",
        "0,1",
        *TINY,
    ]
    assert main(args) == 0
    cells = sorted(p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("summary.json"))
    assert cells == [f"digits/{m}/seed-{s}" for m in ("natural", "trades") for s in (0, 1)]
    stamps = _stamps(tmp_path, "summary.json")
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {(r["group"], r["runs"]) for r in rows} == {("digits / natural", 2), ("digits / trades", 2)}
    assert main(args) == 0  # a second call finds everything done
    assert _stamps(tmp_path, "summary.json") == stamps
    assert "| digits / trades | 2 | 360 |" in (tmp_path / "results.md").read_text()


def test_sweep_then_evaluates_measures_and_reports_each_once(tmp_path, capsys):
    root, report = tmp_path / "study", tmp_path / "report"
    eval_options = "--attacks clean,fgsm,pgd2 --n 40"
    args = ["sweep", "--quiet", "--out", str(root), "--methods", "trades,rat_trades", "--seeds", "0,1",
            "--eval", eval_options, "--landscape", "--what noise --sigmas 0,0.2 --draws 2 --n 40",
            "--report", str(report), *TINY]  # fmt: skip
    assert main(args) == 0
    runs = sorted(p.parent for p in root.rglob("summary.json"))
    assert len(runs) == 4
    assert all((r / "eval.json").exists() and (r / "landscape.json").exists() for r in runs)
    stamps = {name: _stamps(root, name) for name in ("summary.json", "eval.json", "landscape.json")}
    capsys.readouterr()

    # The sweep's eval.json is what `ratt eval` itself computes for that run.
    run = root / "digits" / "rat_trades" / "seed-1"
    assert main(["eval", str(run), *eval_options.split(), "--fresh", "--quiet", "--json"]) == 0
    direct = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((run / "eval.json").read_text())["accuracy"] == direct["accuracy"]
    stamps["eval.json"][run / "eval.json"] = (run / "eval.json").stat().st_mtime_ns

    assert main(args) == 0  # everything done: nothing trained, evaluated or measured again
    assert {name: _stamps(root, name) for name in stamps} == stamps
    summary = json.loads((report / "report.json").read_text())
    assert [g["group"] for g in summary["groups"]] == ["digits / trades", "digits / rat_trades"]
    assert "fgsm" in summary["groups"][0] and (report / "noise.png").exists()
    assert [e["method"] for e in summary["rat_effects"]] == ["rat_trades"]


def test_sweep_rejects_bad_stage_options_before_training(tmp_path, capsys):
    code = main(["sweep", "--out", str(tmp_path / "s"), "--eval", "--attacks clean --bogus 3", *TINY])
    assert code == 2
    assert "not valid options of `ratt eval`" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("bad", ["--what nothing", "--draws 0"])
def test_sweep_rejects_bad_landscape_options_before_training(tmp_path, capsys, bad):
    code = main(["sweep", "--out", str(tmp_path / "s"), "--landscape", f"{bad} --n 8", *TINY])
    assert code == 2
    assert not (tmp_path / "s").exists()


def test_an_interrupted_sweep_says_how_to_continue(tmp_path, capsys, monkeypatch):
    import signal

    from ratt.sweep import cell
    from ratt.train import TrainingInterrupted

    def interrupted(config, out, resume):
        raise TrainingInterrupted(signal.SIGTERM, out, 0, 3)

    monkeypatch.setattr(cell, "train", interrupted)
    assert main(["sweep", "--quiet", "--out", str(tmp_path), *TINY]) == 128 + signal.SIGTERM
    assert "re-run the same `ratt sweep` command" in capsys.readouterr().err
