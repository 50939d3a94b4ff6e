"""`ratt eval` says which weights it evaluated, and never silently evaluates other ones."""

from __future__ import annotations

import json

import pytest
import torch

from ratt import data
from ratt.cli import main
from ratt.config import TrainConfig
from ratt.data import info as dataset_info
from ratt.eval import EvalOptions, eval_done
from ratt.runs import build_model, save_weights

N = 60


def _save(path, label: int) -> None:
    """A digits model that predicts ``label`` for every input (accuracy: that label's share)."""
    config = TrainConfig()
    model = build_model(config, dataset_info("digits"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.classifier.bias[label] = 1.0
    meta = {"config": config.to_dict(), "epoch": 0, "ratt_version": "0", "format": "ratt-checkpoint-1"}
    save_weights(model, path, meta)


def _share(label: int) -> float:
    """Independent: the share of ``label`` among the first N test labels."""
    return (data.load("digits", "test").labels[:N] == label).float().mean().item()


@pytest.fixture()
def run_dir(tmp_path):
    """best predicts 0 and last predicts 1 (their accuracies differ on the first N points)."""
    run = tmp_path / "run"
    _save(run / "checkpoints" / "best.safetensors", 0)
    _save(run / "checkpoints" / "last.safetensors", 1)
    assert _share(0) != _share(1)
    return run


def _eval(run, *args: str) -> int:
    code = main(["eval", str(run), "--attacks", "clean", "--n", str(N), "--quiet", *args])
    return code


def test_the_best_checkpoint_is_evaluated_and_named(run_dir, capsys):
    assert _eval(run_dir) == 0
    header = capsys.readouterr().out.splitlines()[0]
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved["weights"] == "best" and saved["weights_fallback"] is False
    assert saved["weights_file"] == str(run_dir / "checkpoints" / "best.safetensors")
    assert saved["accuracy"]["clean"] == pytest.approx(_share(0))
    assert header.startswith(saved["weights_file"]) and "(best checkpoint)" in header


def test_checkpoint_last_evaluates_the_last_weights(run_dir, capsys):
    assert _eval(run_dir, "--checkpoint", "last") == 0
    assert "(last checkpoint)" in capsys.readouterr().out.splitlines()[0]
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved["weights"] == "last" and saved["accuracy"]["clean"] == pytest.approx(_share(1))


def test_a_run_without_best_falls_back_to_last_and_says_so(run_dir, capsys, caplog):
    (run_dir / "checkpoints" / "best.safetensors").unlink()
    assert _eval(run_dir) == 0
    out = capsys.readouterr()
    assert "the run has no best checkpoint" in out.out.splitlines()[0]
    assert "has no best checkpoint" in caplog.text  # a warning, shown even with --quiet
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved["weights"] == "last" and saved["weights_fallback"] is True
    assert saved["accuracy"]["clean"] == pytest.approx(_share(1))


@pytest.mark.parametrize("damage", ["corrupt", "dangling-link", "directory", "asked-but-missing"])
def test_a_broken_or_missing_requested_checkpoint_is_an_error_not_a_fallback(run_dir, capsys, damage):
    best = run_dir / "checkpoints" / "best.safetensors"
    args: tuple[str, ...] = ()
    best.unlink()
    if damage == "corrupt":
        best.write_bytes(b"\x00" * 100)
    elif damage == "dangling-link":
        best.symlink_to(run_dir / "nowhere.safetensors")
    elif damage == "directory":
        best.mkdir()
    else:
        args = ("--checkpoint", "best")
    assert _eval(run_dir, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best" in err
    assert not (run_dir / "eval.json").exists()


def test_checkpoint_needs_a_run_directory(run_dir, capsys):
    file = run_dir / "checkpoints" / "last.safetensors"
    assert _eval(file, "--checkpoint", "last") == 2
    assert "needs a run directory" in capsys.readouterr().err
    assert _eval(file) == 0  # a weights file given directly is evaluated as it is
    assert "(best" not in capsys.readouterr().out.splitlines()[0]


def test_eval_done_only_for_the_same_points_weights_and_attacks(run_dir):
    assert _eval(run_dir) == 0  # clean on N points, default checkpoint
    assert eval_done(run_dir, EvalOptions(attacks=["clean"], n=N))
    assert not eval_done(run_dir, EvalOptions(attacks=["clean"], n=10 * N))  # more points asked
    assert not eval_done(run_dir, EvalOptions(attacks=["clean"], n=N // 2))
    assert not eval_done(run_dir, EvalOptions(attacks=["clean", "pgd5"], n=N))
    assert not eval_done(run_dir, EvalOptions(attacks=["clean"], n=N, checkpoint="last"))
    assert not eval_done(run_dir, EvalOptions(attacks=["clean"], n=N, eps="0.1"))
