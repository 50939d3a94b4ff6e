"""Run directories: file names, name checks, loading a run's model back."""

from __future__ import annotations

import pytest
import torch

from ratt import data
from ratt.errors import UserError
from ratt.runs import RunFiles, build_config, build_model, check_names, load_checkpoint, save_weights


def test_run_files_name_every_file_under_the_run_directory(tmp_path):
    files = RunFiles(tmp_path)
    assert files.weights("best") == tmp_path / "checkpoints" / "best.safetensors"
    assert files.last_state.parent == files.checkpoints
    assert {files.config.name, files.metrics.name, files.summary.name, files.eval.name} == {
        "config.yaml", "metrics.jsonl", "summary.json", "eval.json"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("override", "needle"),
    [("method=rat_trade", "did you mean 'rat_trades'"), ("data=cifar11", "dataset"),
     ("model=wrn-34", "model"), ("test_attacks=clean,pgdX", "attack"),
     ("test_attacks=pgd0", "at least one step")],
)  # fmt: skip
def test_names_are_checked_by_their_registries(override, needle):
    with pytest.raises(UserError, match=needle):
        build_config(overrides=[override])
    from ratt.config import parse_config

    config = parse_config(overrides=[override])  # the config layer alone knows no registry
    with pytest.raises(UserError, match=needle):
        check_names(config)


def test_a_saved_model_loads_back_equal(tmp_path):
    config = build_config(overrides=["method=trades"])
    torch.manual_seed(0)
    model = build_model(config, data.info("digits"))
    save_weights(model, RunFiles(tmp_path).weights("best"), {"config": config.to_dict()})
    loaded, loaded_config = load_checkpoint(tmp_path)
    assert loaded_config == config and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
