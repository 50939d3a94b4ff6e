"""Weights from outside ratt: a model from the user's own file, trained with rat_trades, saved
with torch.save and evaluated with --model/--data gives the run's own numbers; mismatches name
the key."""

from __future__ import annotations

import json
import textwrap

import torch

from ratt import load_checkpoint
from ratt.cli import main

USER_MODEL = textwrap.dedent(
    """
    import torch.nn as nn

    def build(width=16):
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(width * 64, 10),
        )
    """
)
TINY = [
    "epochs=2",
    "train_limit=256",
    "steps=2",
    "val_attack_steps=2",
    "test_attacks=clean,pgd5",
    "threads=1",
]


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_user_model_trained_with_rat_then_saved_with_torch_save_evaluates_the_same(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(USER_MODEL)
    spec = f"{tmp_path / 'nets.py'}:build"
    run = tmp_path / "run"
    args = [
        "train",
        "--quiet",
        "--out",
        str(run),
        f"model={spec}",
        "model.kwargs.width=8",
        "method=rat_trades",
    ]
    assert main([*args, *TINY]) == 0
    capsys.readouterr()
    # the run reloads its user model from the recorded spec, trusted on request (a file is data)
    model, config = load_checkpoint(run, trust_code=True)
    assert config.model.kwargs == {"width": 8}
    saved = tmp_path / "weights.pt"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, saved)
    attacks = ["--attacks", "clean,pgd5,cw5", "--json", "--quiet"]
    assert main(["eval", str(run), *attacks, "--trust-code"]) == 0
    ours = _json(capsys)
    foreign = ["eval", str(saved), "--model", spec, "--data", "digits", "model.kwargs.width=8"]
    assert main([*foreign, *attacks]) == 0
    theirs = _json(capsys)
    assert ours["accuracy"] == theirs["accuracy"] and ours["robust"] == theirs["robust"]


def test_weights_that_do_not_fit_name_the_first_mismatch(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(USER_MODEL)
    spec = f"{tmp_path / 'nets.py'}:build"
    from tests.eval.test_foreign_weights import USER_MODEL as _  # noqa: F401  (the same file)

    wrong = {"0.weight": torch.zeros(4, 1, 3, 3), "0.bias": torch.zeros(4), "3.weight": torch.zeros(10, 256),
             "3.bias": torch.zeros(10)}  # fmt: skip
    torch.save(wrong, tmp_path / "w.pt")
    assert main(["eval", str(tmp_path / "w.pt"), "--model", spec, "--data", "digits", "--quiet"]) == 2
    assert "0.weight has shape (4, 1, 3, 3), the model's is (16, 1, 3, 3)" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "w.pt"), "--model", spec, "--quiet"]) == 2  # --data missing
    assert "--model and --data go together" in capsys.readouterr().err


def test_landscape_measures_weights_from_outside_ratt_like_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(run), *TINY]) == 0
    model, _ = load_checkpoint(run)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    common = ["--what", "hessian", "--n", "32", "--samples", "2", "--lanczos-iters", "3", "--quiet"]
    assert main(["landscape", str(run), *common]) == 0
    foreign = [
        str(tmp_path / "w.pt"),
        "--model",
        "smallcnn",
        "--data",
        "digits",
        "attack.steps=2",
    ]  # as trained
    assert main(["landscape", *foreign, *common]) == 0
    ours = json.loads((run / "landscape.json").read_text())["summary"]
    theirs = json.loads((tmp_path / "w.pt.landscape" / "landscape.json").read_text())["summary"]
    assert ours == theirs
