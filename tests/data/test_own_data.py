"""``data=imagefolder`` and ``data=npz`` end to end: the digits written out as files train to
the accuracy ``data=digits`` reaches, and a bad file stops the run in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ratt import data
from ratt.cli import main

# lr 0.02: with its own statistics the data is normalized (std 0.38 -> 1), which makes the
# default lr 0.1 too large for smallcnn on 8x8 images
TRAIN = ["--quiet", "method=natural", "epochs=6", "test_attacks=clean", "threads=1", "val_size=0", "lr=0.02"]


def _digits_uint8(split: str) -> tuple[np.ndarray, np.ndarray]:
    ds = data.load("digits", split, val_size=0)
    return (ds.images.numpy()[:, 0] * 255).round().astype(np.uint8), ds.labels.numpy()


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    (x_tr, y_tr), (x_te, y_te) = _digits_uint8("train"), _digits_uint8("test")
    np.savez(root / "digits.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    for split, xs, ys in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            folder = root / "tree" / split / f"class{y}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x).save(folder / f"{i}.png")
    return root


def _clean(run) -> float:
    return json.loads((run / "summary.json").read_text())["test"]["accuracy"]["clean"]


def test_own_data_trains_like_the_registered_digits(digits_files, tmp_path):
    assert main(["train", "--out", str(tmp_path / "digits"), *TRAIN]) == 0
    npz = ["data=npz", f"data.root={digits_files / 'digits.npz'}"]
    tree = ["data=imagefolder", f"data.root={digits_files / 'tree'}"]
    assert main(["train", "--out", str(tmp_path / "npz"), *TRAIN, *npz]) == 0
    assert main(["train", "--out", str(tmp_path / "tree"), *TRAIN, *tree]) == 0
    reference = _clean(tmp_path / "digits")
    assert reference > 0.85
    for name in ("npz", "tree"):  # the same images, normalized by their own statistics
        assert abs(_clean(tmp_path / name) - reference) < 0.06, name
    folder_info = data.info("imagefolder", digits_files / "tree")
    assert folder_info.shape == (1, 8, 8) and folder_info.num_classes == 10
    assert main(["eval", str(tmp_path / "tree"), "--attacks", "clean", "--quiet"]) == 0  # loads again


def test_a_bad_own_data_file_stops_before_any_work(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.array([0, 1, 2, -1]),
             x_test=np.zeros((2, 8, 8), np.uint8), y_test=np.array([0, 1]))  # fmt: skip
    assert main(["train", "--out", str(tmp_path / "run"), "data=npz", f"data.root={bad}", "--quiet"]) == 2
    assert "label -1, outside" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
