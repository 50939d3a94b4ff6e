"""RobustBench in: a zoo model loaded offline from the file robustbench.load_model looks for,
then attacked by ratt eval (on CIFAR-shaped synthetic data: no CIFAR here)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from ratt.cli import main
from ratt.models.external import _robustbench

if importlib.util.find_spec("robustbench") is None:  # the optional extra (CI installs it)
    pytest.skip("robustbench is not installed", allow_module_level=True)


def test_a_zoo_model_loads_offline_and_is_evaluated(tmp_path, capsys):
    _robustbench()  # aliases the reference AutoAttack robustbench imports
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    torch.manual_seed(0)
    zoo = model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf]["Wong2020Fast"]["model"]()
    target = tmp_path / "models" / "cifar10" / "Linf" / "Wong2020Fast.pt"
    target.parent.mkdir(parents=True)
    torch.save({"state_dict": zoo.state_dict()}, target)  # where load_model looks: no download
    spec = [
        "--data",
        "synthetic-cifar10",
        "model.kwargs.dataset=cifar10",
        f"model.kwargs.model_dir={tmp_path / 'models'}",
    ]
    argv = [
        "eval",
        "robustbench:Wong2020Fast",
        *spec,
        "--attacks",
        "clean,pgd2",
        "--n",
        "8",
        "--json",
        "--quiet",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["n"] == 8 and set(report["accuracy"]) == {"clean", "pgd2"}
    x = torch.rand(2, 3, 32, 32)
    from ratt.data import info
    from ratt.runs import build_config, build_model

    config = build_config(
        None,
        [
            "model.name=robustbench:Wong2020Fast",
            "data.name=synthetic-cifar10",
            "model.kwargs.dataset=cifar10",
            f"model.kwargs.model_dir={tmp_path / 'models'}",
        ],
    )
    loaded = build_model(config, info("synthetic-cifar10")).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), zoo.eval()(x))  # the weights of the file


def test_a_zoo_model_missing_offline_is_one_line(tmp_path, capsys, monkeypatch):
    import robustbench.utils as rb

    def no_network(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(rb, "download_gdrive_new", no_network)
    argv = ["eval", "robustbench:Wong2020Fast", "--data", "synthetic-cifar10", "model.kwargs.dataset=cifar10",
            f"model.kwargs.model_dir={tmp_path}", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "robustbench:Wong2020Fast" in capsys.readouterr().err
