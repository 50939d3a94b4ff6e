"""A run trained on any kind of data is evaluated again in a fresh process: ImageFolder,
``.npz`` and extra training data (the shape check builds the model on the meta device; the
data's description must be read before, never computed there)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ratt import data
from ratt.cli import main
from ratt.data import own

TRAIN = ["--quiet", "method=natural", "epochs=1", "test_attacks=clean", "threads=1", "val_size=0"]


def _fresh_process() -> None:
    """Forget every file read so far, as a new ``ratt eval`` process would."""
    own.own_data.cache_clear()
    data.loading._read.cache_clear()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    rng = np.random.default_rng(0)
    x = {s: rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8) for s, n in (("train", 12), ("test", 6))}
    y = {s: np.arange(len(x[s])) % 2 for s in x}
    np.savez(root / "own.npz", x_train=x["train"], y_train=y["train"], x_test=x["test"], y_test=y["test"])
    np.savez(root / "extra.npz", x=x["train"][:4, :, :, 0], y=y["train"][:4])  # digits' 8x8x1
    for split in x:
        for i, (image, label) in enumerate(zip(x[split], y[split], strict=True)):
            folder = root / "tree" / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(lambda r: ["data=imagefolder", f"data.root={r / 'tree'}"], id="imagefolder"),
        pytest.param(lambda r: ["data=npz", f"data.root={r / 'own.npz'}"], id="npz"),
        pytest.param(lambda r: [f"data.extra={r / 'extra.npz'}"], id="extra"),
    ],
)
def test_a_run_of_every_data_kind_evaluates_in_a_fresh_process(files, tmp_path, kind, capsys):
    settings = kind(files)
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TRAIN, *settings]) == 0
    trained = json.loads((run / "summary.json").read_text())["test"]["accuracy"]["clean"]
    _fresh_process()
    capsys.readouterr()
    assert main(["eval", str(run), "--attacks", "clean", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["accuracy"]["clean"] == pytest.approx(trained)
