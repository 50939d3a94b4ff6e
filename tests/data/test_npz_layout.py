"""An ``.npz`` file's axis order comes from the shape, never the dtype: channels first or last,
uint8 or float; an ambiguous shape is refused in one line naming ``data.layout``, which then
decides; the run says the order it used and records it in config.yaml."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from ratt.cli import main
from ratt.config import describe_keys
from ratt.data.custom import read_npz_file
from ratt.errors import UserError


def _save(path, x, n_test=2):
    labels = np.arange(len(x)) % 2
    np.savez(path, x_train=x, y_train=labels, x_test=x[:n_test], y_test=labels[:n_test])
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize(("shape", "order"), [((6, 3, 8, 8), "nchw"), ((6, 1, 12, 12), "nchw"),
                                              ((6, 8, 8, 3), "nhwc"), ((6, 12, 12, 1), "nhwc"),
                                              ((6, 4, 5, 5), "nchw")])  # fmt: skip
def test_the_axis_order_is_read_from_the_shape_whatever_the_dtype(tmp_path, shape, order, dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    x = x if dtype == np.uint8 else (x / 255).astype(np.float32)
    splits = read_npz_file(_save(tmp_path / "f.npz", x))
    nchw = x if order == "nchw" else x.transpose(0, 3, 1, 2)  # the reference, by hand
    assert torch.equal(splits["train"].images, torch.from_numpy(np.ascontiguousarray(nchw)))
    assert splits["train"].layout == order


def test_an_ambiguous_shape_is_refused_and_data_layout_decides(tmp_path):
    from ratt.data.layout import image_layout

    x = np.random.default_rng(0).integers(0, 256, (6, 3, 8, 3), dtype=np.uint8)
    path = _save(tmp_path / "amb.npz", x)
    with pytest.raises(UserError, match=r"data\.layout=nchw\|nhwc") as info:
        read_npz_file(path)
    assert "\n" not in str(info.value)
    nhwc = read_npz_file(path, layout="nhwc")["train"].images
    assert torch.equal(nhwc, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert torch.equal(read_npz_file(path, layout="nchw")["train"].images, torch.from_numpy(x))
    with pytest.raises(UserError, match="data.layout"):
        image_layout((6, 5, 8, 7))  # no axis of 1, 3 or 4 channels at either end
    assert image_layout((6, 3, 8, 1), channels=1) == "nhwc"  # data.channels picks the axis
    assert image_layout((6, 1, 4, 4)) == "nchw"  # 4x4 grayscale, not 1x4 with 4 channels
    assert image_layout((6, 4, 4, 3)) == "nhwc"
    with pytest.raises(UserError, match="could be"):
        image_layout((6, 3, 3, 3))  # square either way


def test_a_channels_first_uint8_run_says_and_records_its_layout(tmp_path, caplog):
    x = np.random.default_rng(0).integers(0, 256, (12, 3, 8, 8), dtype=np.uint8)
    path = _save(tmp_path / "cf.npz", x, n_test=4)
    run = tmp_path / "run"
    with caplog.at_level("INFO"):
        args = ["data=npz", f"data.root={path}", "epochs=1", "method=natural", "test_attacks=clean"]
        code = main(["train", "--out", str(run), *args, "val_size=0", "threads=1", "--quiet"])
    assert code == 0
    assert "3x8x8 images (read as NCHW, data.layout=auto)" in caplog.text
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["layout"] == "nchw"


def test_an_ambiguous_file_stops_the_run_in_one_line_before_any_work(tmp_path, capsys):
    path = _save(tmp_path / "amb.npz", np.zeros((6, 3, 8, 3), np.uint8))
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "data=npz", f"data.root={path}", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.layout=nchw|nhwc" in err
    assert not run.exists()


def test_data_layout_is_one_choice_read_by_validation_and_the_help(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "data.layout=hwc", "--quiet"]) == 2
    assert "data.layout must be auto, nchw or nhwc" in capsys.readouterr().err
    assert "[auto|nchw|nhwc]" in next(line for line in describe_keys().splitlines() if "data.layout" in line)
