"""A checkpoint is data: a model spec that names code (``file.py:fn``, ``package.module:fn``)
read from a weights file's metadata, a run directory's ``config.yaml`` or behind ``eval.json``
is never imported without ``--trust-code``; each case plants code that would write a marker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import yaml

from ratt.cli import main
from ratt.runs import read_weights

TINY = ["epochs=1", "train_limit=64", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]

EVIL = """
from pathlib import Path
Path({marker!r}).write_text("imported")

def build(**kwargs):
    from ratt.models import create_model
    return create_model("smallcnn", 10, (1, 8, 8), mean=(0.5,), std=(0.5,))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trust") / "run"
    assert main(["train", "--quiet", "--out", str(out), *TINY]) == 0
    return out


def _plant(run: Path, where: Path, marker: Path, spec_kind: str) -> str:
    """Copy ``run`` to ``where`` with a model spec naming code in every file that holds the
    config; returns the spec."""
    shutil.copytree(run, where)
    if spec_kind == "file":
        evil = where.parent / "evil.py"
        evil.write_text(EVIL.format(marker=str(marker)))
        spec, kwargs = f"{evil}:build", {}
    else:  # any importable function, called with model.kwargs
        spec, kwargs = "os:system", {"command": f"touch {marker}"}
    for weights in (where / "checkpoints").glob("*.safetensors"):
        tensors, meta = read_weights(weights)
        meta["config"]["model"].update(name=spec, kwargs=kwargs)
        safetensors.torch.save_file(tensors, str(weights), {k: json.dumps(v) for k, v in meta.items()})
    config = yaml.safe_load((where / "config.yaml").read_text())
    config["model"].update(name=spec, kwargs=kwargs)
    (where / "config.yaml").write_text(yaml.safe_dump(config))
    return spec


def _refused(capsys, argv: list[str], spec: str, marker: Path) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert spec in err[0] and "--trust-code" in err[0], err[0]
    assert not marker.exists(), "the planted code ran"


@pytest.mark.parametrize("spec_kind", ["file", "module"])
def test_eval_and_landscape_of_a_shared_checkpoint_run_no_code(trained, tmp_path, capsys, spec_kind):
    marker = tmp_path / "ran"
    spec = _plant(trained, tmp_path / "shared", marker, spec_kind)
    weights = str(tmp_path / "shared" / "checkpoints" / "best.safetensors")
    _refused(capsys, ["eval", weights, "--attacks", "clean", "--n", "5"], spec, marker)
    _refused(capsys, ["eval", str(tmp_path / "shared"), "--attacks", "clean", "--n", "5"], spec, marker)
    _refused(capsys, ["landscape", weights, "--what", "1d", "--points", "3", "--n", "4"], spec, marker)
    assert not (tmp_path / "shared" / "eval.json").exists()


def test_resume_follows_neither_config_yaml_nor_the_checkpoint_metadata(trained, tmp_path, capsys):
    marker = tmp_path / "ran"
    run = tmp_path / "shared"
    spec = _plant(trained, run, marker, "module")
    _refused(capsys, ["train", "--resume", str(run), "epochs=2"], spec, marker)
    (run / "config.yaml").unlink()  # the config stored in last.safetensors is then used
    _refused(capsys, ["train", "--resume", str(run), "epochs=2"], spec, marker)


def test_export_follows_no_code_behind_eval_json(trained, tmp_path, capsys):
    marker = tmp_path / "ran"
    spec = _plant(trained, tmp_path / "planted", marker, "module")
    run = tmp_path / "clean_run"
    shutil.copytree(trained, run)  # a plain run whose eval.json points at the planted weights
    planted = tmp_path / "planted" / "checkpoints" / "best.safetensors"
    evaluation = {"accuracy": {"clean": 0.5, "aa": 0.25}, "n": 10, "weights_file": str(planted)}
    (run / "eval.json").write_text(json.dumps(evaluation))
    (tmp_path / "rb").mkdir()
    capsys.readouterr()
    assert main(["export", str(run), "--robustbench", str(tmp_path / "rb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and spec in err[0] and "--trust-code" in err[0], err
    assert not marker.exists()
    rb = str(tmp_path / "rb")
    _refused(capsys, ["export", str(tmp_path / "planted"), "--robustbench", rb], spec, marker)
    assert not list((tmp_path / "rb").rglob("*.pt"))


def test_report_over_a_planted_run_imports_nothing(trained, tmp_path):
    marker = tmp_path / "ran"
    _plant(trained, tmp_path / "shared", marker, "file")
    assert main(["report", str(tmp_path / "shared"), "--out", str(tmp_path / "report")]) == 0
    assert not marker.exists()


def test_trust_code_runs_the_named_code_on_request(trained, tmp_path, capsys):
    marker = tmp_path / "ran"
    _plant(trained, tmp_path / "shared", marker, "file")
    weights = str(tmp_path / "shared" / "checkpoints" / "best.safetensors")
    assert main(["eval", weights, "--attacks", "clean", "--n", "5", "--trust-code", "--quiet"]) == 0
    assert marker.exists()


def test_registry_and_timm_specs_need_no_flag():
    from ratt.models import runs_code

    assert not runs_code("smallcnn") and not runs_code("timm:resnet18")
    assert not runs_code("robustbench:Standard")
    assert runs_code("os:system") and runs_code("models/net.py:build") and runs_code("pkg.mod:fn")
