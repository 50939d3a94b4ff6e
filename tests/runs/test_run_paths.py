"""A run does not depend on the directory it was started in: paths are stored absolute, the
model file's sha256 beside its path (a changed file is said in one line), and an error about
a path says where it was looked for and where the run was written."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import numpy as np
import yaml
from PIL import Image

from ratt import data
from ratt.cli import main
from ratt.data import own

MODEL = """
from torch import nn

def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
"""


def _fresh_process() -> None:
    own.own_data.cache_clear()
    data.loading._read.cache_clear()


def _make_project(root):
    (root / "my_nets.py").write_text(MODEL)
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for i in range(n):
            folder = root / "images" / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_a_run_evaluates_from_another_directory_and_says_a_changed_model_file(
    tmp_path, monkeypatch, capsys, caplog
):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    _make_project(work)
    monkeypatch.chdir(work)
    args = ["model=my_nets.py:build", "data=imagefolder", "data.root=images", "method=natural",
            "epochs=1", "test_attacks=clean", "val_size=0", "threads=1", "--quiet"]  # fmt: skip
    assert main(["train", "--out", "runs/seq", *args]) == 0
    saved = yaml.safe_load((work / "runs/seq/config.yaml").read_text())
    assert saved["data"]["root"] == str(work / "images")
    assert saved["model"]["name"] == f"{work / 'my_nets.py'}:build"
    assert saved["model"]["sha256"] == hashlib.sha256((work / "my_nets.py").read_bytes()).hexdigest()

    monkeypatch.chdir(elsewhere)
    _fresh_process()
    capsys.readouterr()  # the user's own run of their own model file: --trust-code
    run = str(work / "runs/seq")
    assert main(["eval", run, "--trust-code", "--attacks", "clean", "--json", "--quiet"]) == 0
    accuracy = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"]["clean"]
    trained = json.loads((work / "runs/seq/summary.json").read_text())["test"]["accuracy"]["clean"]
    assert accuracy == trained

    (work / "my_nets.py").write_text(MODEL + "\n# edited\n")
    with caplog.at_level(logging.WARNING):
        assert main(["eval", str(work / "runs/seq"), "--trust-code", "--attacks", "clean", "--quiet"]) == 0
    changed = [r.getMessage() for r in caplog.records if "changed since the run was made" in r.getMessage()]
    assert len(changed) == 1 and "my_nets.py" in changed[0] and "\n" not in changed[0]

    shutil.rmtree(work / "images")
    _fresh_process()
    capsys.readouterr()
    assert main(["eval", str(work / "runs/seq"), "--trust-code", "--attacks", "clean", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(work / "images") in err and f"read from {elsewhere}" in err and f"written in {work}" in err
