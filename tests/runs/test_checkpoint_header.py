"""Checkpoints from outside: a header that names another (huge) model is refused before anything
is built, malformed metadata is one line, and no link inside a run directory is followed."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from ratt import data
from ratt.errors import UserError
from ratt.runs import RunFiles, build, build_config, build_model, load_checkpoint, save_weights
from ratt.runs.checkpoint import read_header


def _smallcnn_file(tmp_path, **meta):
    config = build_config()
    torch.manual_seed(0)
    model = build_model(config, data.info("digits"))
    path = tmp_path / "model.safetensors"
    save_weights(model, path, {"config": config.to_dict(), **meta})
    return path, model, config


def test_the_header_gives_every_shape_without_reading_weights(tmp_path):
    path, model, _ = _smallcnn_file(tmp_path)
    shapes, meta = read_header(path)
    assert shapes == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert meta["config"]["model"]["name"] == "smallcnn"


def test_a_header_naming_a_huge_model_is_refused_before_the_model_is_built(tmp_path, monkeypatch):
    path, _, config = _smallcnn_file(tmp_path)
    tensors = safetensors.torch.load_file(path)
    claimed = config.to_dict()
    claimed["model"]["name"] = "wrn-400-10"  # 390M parameters: 1.5 GB if it were built for real
    safetensors.torch.save_file(tensors, path, metadata={"config": json.dumps(claimed)})
    devices = []
    real = build.create_model

    def spy(*args, **kwargs):
        devices.append(torch.empty(0).device.type)  # the default device the model is built on
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "create_model", spy)
    with pytest.raises(UserError, match=r"does not match wrn-400-10: it lacks") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert devices == ["meta"]  # built once, on the meta device, and never for real


def test_a_wrong_shape_names_the_tensor(tmp_path):
    path, _, _ = _smallcnn_file(tmp_path)
    tensors = safetensors.torch.load_file(path)
    _, meta = read_header(path)
    key = next(k for k, v in tensors.items() if v.dim() == 4 and k.endswith("weight"))
    tensors[key] = torch.zeros(1, *tensors[key].shape[1:])
    safetensors.torch.save_file(tensors, path, metadata={k: json.dumps(v) for k, v in meta.items()})
    with pytest.raises(UserError, match=rf"{key} is \[1, "):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [({"config": "[1, 2]"}, "not a mapping"), ({"config": "3"}, "not a mapping"),
     ({"config": "{oops"}, "metadata 'config' is not valid JSON"), ({"epoch": "1"}, "no config")],
)  # fmt: skip
def test_malformed_metadata_is_one_line(tmp_path, metadata, needle):
    path, _, _ = _smallcnn_file(tmp_path)
    tensors = safetensors.torch.load_file(path)
    safetensors.torch.save_file(tensors, path, metadata=metadata)
    with pytest.raises(UserError, match=needle) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["checkpoints", "eval_partial"])
def test_a_run_subdirectory_that_is_a_symlink_is_refused(tmp_path, name):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / name).symlink_to(outside)
    files = RunFiles(run)
    with pytest.raises(UserError, match=f"{name} is a symbolic link"):
        files.weights("last") if name == "checkpoints" else files.eval_partial  # noqa: B018
    assert list(outside.iterdir()) == []
