"""End to end: `ratt train` on a tiny budget, then `ratt eval` reproduces its numbers."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest
import torch

import ratt
from ratt import data
from ratt.cli import main
from ratt.eval import evaluate
from ratt.runs import read_weights, threat_model

TINY = [
    "epochs=2",
    "batch_size=64",
    "steps=2",
    "val_attack_steps=3",
    "test_attacks=clean,pgd5,fgsm",
    "run.progress=false",
    "run.keep_every=1",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", "--quiet", "--out", str(out), *TINY]) == 0
    return out


def test_run_directory_holds_config_metrics_checkpoints_and_summary(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "versions.json"} <= names
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in (
        "lr",
        "train_loss",
        "train_clean_acc",
        "train_robust_acc",
        "val_clean_acc",
        "val_robust_acc",
        "seconds",
    ):
        assert key in rows[0]
    ckpts = {p.name for p in (tiny_run / "checkpoints").iterdir()}
    assert {"last.safetensors", "best.safetensors", "last_state.pt"} <= ckpts
    assert {"epoch-0001.safetensors", "epoch-0002.safetensors"} <= ckpts  # run.keep_every=1
    _, meta = read_weights(tiny_run / "checkpoints" / "best.safetensors")
    assert meta["config"]["optim"]["epochs"] == 2


def test_best_checkpoint_has_the_highest_validation_robust_accuracy(tiny_run):
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["val_robust_acc"])
    _, meta = read_weights(tiny_run / "checkpoints" / "best.safetensors")
    assert meta["epoch"] == best["epoch"]


def test_eval_json_reproduces_the_runs_test_accuracies(tiny_run, capsys):
    summary = json.loads((tiny_run / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(tiny_run), "--attacks", "clean,pgd5,fgsm", "--json", "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads(last)
    assert report["accuracy"] == summary["test"]["accuracy"]
    assert report["robust"] == summary["test"]["robust"]


def test_load_checkpoint_gives_an_eval_mode_model_matching_the_summary(tiny_run):
    model, config = ratt.load_checkpoint(tiny_run)
    assert not model.training and config.optim.epochs == 2
    test = data.load("digits", "test")
    clean = evaluate(model, test, ["clean"], threat_model(config, test.info))
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert clean.accuracy["clean"] == summary["test"]["accuracy"]["clean"]


def test_train_refuses_to_overwrite_a_run(tiny_run, capsys):
    assert main(["train", "--quiet", "--out", str(tiny_run), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_continues_to_more_epochs(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    assert main(["train", "--quiet", "--resume", "--out", str(copy), *TINY[1:], "epochs=3"]) == 0
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_resume_with_a_changed_hyperparameter_is_refused(tiny_run, capsys):
    assert main(["train", "--quiet", "--resume", "--out", str(tiny_run), *TINY, "lr=0.3"]) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_cli_user_errors_exit_2_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ratt", "train", "--out", str(tmp_path / "x"), "epocs=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "did you mean 'epochs'" in proc.stderr


def test_eval_of_a_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(torch.randint(0, 255, (100,), dtype=torch.uint8).numpy().tobytes())
    assert main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and err.count("\n") == 1


# --- resuming from the run directory alone (issue 13) ---------------------------------------


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _copy(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize(
    "form",
    [
        ["--resume", "{}", "epochs=3"],
        ["--resume", "--out", "{}", "epochs=3"],
        ["--resume", "epochs=3", "--out", "{}"],
    ],
)
def test_resume_dir_alone_applies_a_resumable_change_and_logs_it(tiny_run, tmp_path, caplog, form):
    copy = _copy(tiny_run, tmp_path)
    with caplog.at_level("INFO"):
        assert main(["train", *(a.format(copy) for a in form)]) == 0
    assert "changing optim.epochs 2 -> 3" in caplog.text
    assert [r["epoch"] for r in _rows(copy)] == [1, 2, 3]
    assert "epochs: 3" in (copy / "config.yaml").read_text()


def test_repeating_only_some_overrides_at_resume_keeps_the_saved_config(tiny_run, tmp_path, caplog):
    copy = _copy(tiny_run, tmp_path)
    with caplog.at_level("INFO"):
        assert main(["train", "--quiet", "--resume", "--out", str(copy), "seed=0"]) == 0
    assert "changing optim" not in caplog.text
    assert [r["epoch"] for r in _rows(copy)] == [1, 2]  # not the default 50 epochs
    assert (copy / "config.yaml").read_text().count("epochs: 2") == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["lr=0.3"], r"cannot change optim.lr \(0.1 -> 0.3\) when resuming"),
     (["method=pgd_at"], "cannot change method.name"),
     (["--config", "configs/small/digits-rat_trades.yaml"], "--config cannot be combined with --resume"),
     (["epochs=0"], "optim.epochs must be >= 1"),
     (["epocs=3"], "did you mean 'epochs'")],
)  # fmt: skip
def test_resume_refuses_what_would_make_it_another_run_in_one_line(tiny_run, capsys, args, needle):
    before = (tiny_run / "config.yaml").read_text()
    assert main(["train", "--resume", str(tiny_run), *args]) == 2
    err = capsys.readouterr().err
    assert re.search(needle, err) and err.count("\n") == 1
    assert (tiny_run / "config.yaml").read_text() == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["train", "--resume"], "--resume needs the run directory"),
     (["train", "--resume", "nowhere/at/all"], "does not exist"),
     (["train", "epochs=1"], "--out is required")],
)  # fmt: skip
def test_resume_and_out_mistakes_are_one_line(capsys, args, needle):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["train", "--out", str(afile / "run"), "epochs=1"]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_a_damaged_metrics_file_is_rebuilt_from_the_checkpoint_and_said(tiny_run, tmp_path, caplog):
    copy = _copy(tiny_run, tmp_path)
    rows = (copy / "metrics.jsonl").read_text().splitlines()
    (copy / "metrics.jsonl").write_text(rows[0][: len(rows[0]) // 2] + "\n\x00garbage\n")
    assert main(["train", "--quiet", "--resume", "--out", str(copy), *TINY]) == 0
    assert (copy / "metrics.jsonl").read_text().splitlines() == rows  # every row, timing included
    assert "restored 2 missing or damaged row(s)" in caplog.text
    assert "dropped 2 unreadable or foreign line(s)" in caplog.text


def test_every_run_file_has_one_mode(tiny_run):
    mask = os.umask(0)
    os.umask(mask)
    modes = {
        str(p.relative_to(tiny_run)): stat.S_IMODE(p.stat().st_mode)
        for p in tiny_run.rglob("*")
        if p.is_file()
    }
    assert "summary.json" in modes and "checkpoints/last_state.pt" in modes
    assert set(modes.values()) == {0o666 & ~mask}, modes


def test_eval_never_writes_through_a_planted_symlink(tiny_run, tmp_path, capsys):
    copy = _copy(tiny_run, tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_text("precious")
    (copy / "eval.json").unlink(missing_ok=True)
    (copy / "eval.json").symlink_to(outside)
    assert main(["eval", str(copy), "--attacks", "clean", "--quiet"]) == 0
    assert outside.read_text() == "precious" and not (copy / "eval.json").is_symlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if (copy / "eval_partial").exists():
        shutil.rmtree(copy / "eval_partial")
    (copy / "eval_partial").symlink_to(elsewhere)
    capsys.readouterr()
    assert main(["eval", str(copy), "--attacks", "clean,fgsm", "--quiet"]) == 2
    assert "eval_partial is a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_resume_and_eval_of_a_directory_another_process_writes_exit_2_naming_it(tiny_run, capsys):
    from tests.core.test_files_lock import _hold

    holder = _hold(tiny_run / ".lock")
    try:
        for args in (["train", "--resume", str(tiny_run)], ["eval", str(tiny_run), "--attacks", "clean"]):
            capsys.readouterr()
            assert main(args) == 2
            err = capsys.readouterr().err
            assert f"is in use by pid {holder.pid} (ratt train)" in err and err.count("\n") == 1
    finally:
        holder.kill()
        holder.wait(timeout=30)
