"""ratt export --robustbench: RobustBench's layout, fields from one evaluation, weights that
load into the architecture and give the run's outputs."""

from __future__ import annotations

import json

import torch

from ratt import data, load_checkpoint
from ratt.cli import main
from ratt.runs import build_model


def test_export_writes_robustbench_weights_and_model_info(tmp_path, capsys):
    run = tmp_path / "my-run"
    tiny = ["epochs=1", "train_limit=128", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]
    assert main(["train", "--quiet", "--out", str(run), *tiny]) == 0
    assert main(["export", str(run), "--robustbench", str(tmp_path / "rb")]) == 2  # no eval.json yet
    assert "run `ratt eval" in capsys.readouterr().err
    assert main(["eval", str(run), "--attacks", "clean,aa", "--n", "20", "--quiet"]) == 0
    assert main(["export", str(run), "--robustbench", str(tmp_path / "rb"), "--venue", "nowhere"]) == 0
    info = json.loads((tmp_path / "rb" / "model_info" / "digits" / "Linf" / "my-run.json").read_text())
    evaluation = json.loads((run / "eval.json").read_text())
    assert info["clean_acc"] == f"{100 * evaluation['accuracy']['clean']:.2f}"
    assert info["autoattack_acc"] == info["reported"] == f"{100 * evaluation['accuracy']['aa']:.2f}"
    assert info["architecture"] == "SmallCNN" and info["eps"] == "51/255" and info["venue"] == "nowhere"
    assert "20 test points" in info["footnote"] and "not comparable" in info["footnote"]
    saved = torch.load(tmp_path / "rb" / "digits" / "Linf" / "my-run.pt", weights_only=True)["state_dict"]
    model, config = load_checkpoint(run)
    fresh = build_model(config, data.info("digits")).eval()
    fresh.load_state_dict(saved)  # the normalization is inside: inputs in [0, 1]
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(fresh(x), model(x))
