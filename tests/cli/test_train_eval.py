"""End to end: `ratt train` on a tiny budget, then `ratt eval` reproduces its numbers."""

from __future__ import annotations

import json
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
