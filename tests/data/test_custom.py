"""Your own data: ImageFolder trees and .npz files, read back equal to what was written,
and every malformed input refused with one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ratt.data.custom import (
    channel_stats,
    check_labels,
    image_folder_format,
    read_image_folder,
    read_npz_file,
)
from ratt.errors import UserError


def _write_tree(root, images: dict[str, dict[str, list[np.ndarray]]]) -> None:
    for split, classes in images.items():
        for name, arrays in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, array in enumerate(arrays):
                Image.fromarray(array).save(folder / f"{i}.png")


def _gray(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


def test_an_image_folder_reads_back_the_pixels_and_labels_it_was_made_from(tmp_path):
    tree = {
        "train": {"cat": [_gray(0), _gray(1)], "dog": [_gray(2)]},
        "test": {"cat": [_gray(3)], "dog": [_gray(4), _gray(5)]},
    }
    _write_tree(tmp_path, tree)
    classes, size, channels = image_folder_format(tmp_path, None, None)
    assert (classes, size, channels) == (["cat", "dog"], 8, 1)
    train = read_image_folder(tmp_path, "train", classes, size, channels)
    assert train.images.dtype == torch.uint8 and train.images.shape == (3, 1, 8, 8)
    assert train.labels.tolist() == [0, 0, 1]
    assert np.array_equal(train.images[2, 0].numpy(), tree["train"]["dog"][0])  # PNG is lossless
    rgb = read_image_folder(tmp_path, "test", classes, 4, 3)  # forced channels and size
    assert rgb.images.shape == (3, 3, 4, 4) and rgb.labels.tolist() == [0, 1, 1]
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 1])  # gray converted to RGB: equal planes


def test_bad_image_folders_are_one_line(tmp_path):
    with pytest.raises(UserError, match="no train/ folder"):
        image_folder_format(tmp_path, None, None)
    _write_tree(tmp_path, {"train": {"a": [_gray(0)]}})
    (tmp_path / "train" / "b").mkdir()
    classes, size, channels = image_folder_format(tmp_path, None, None)
    with pytest.raises(UserError, match=r"train/b: empty class folder"):
        read_image_folder(tmp_path, "train", classes, size, channels)
    (tmp_path / "train" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="broken.png: not a readable image"):
        read_image_folder(tmp_path, "train", classes, size, channels)
    with pytest.raises(UserError, match="no test/ folder"):
        read_image_folder(tmp_path, "test", classes, size, channels)


def test_npz_files_read_in_every_accepted_layout(tmp_path):
    rng = np.random.default_rng(0)
    hw = rng.integers(0, 256, (5, 6, 6), dtype=np.uint8)
    hwc = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    floats = rng.random((3, 3, 6, 6), dtype=np.float32)
    np.savez(tmp_path / "a.npz", x_train=hw, y_train=np.arange(5) % 2, x_test=hw[:2], y_test=np.array([1, 0]))
    splits = read_npz_file(tmp_path / "a.npz")
    assert torch.equal(splits["train"].images[:, 0], torch.from_numpy(hw)) and "val" not in splits
    np.savez(tmp_path / "b.npz", x_train=hwc, y_train=np.zeros(4, int), x_test=hwc, y_test=np.zeros(4, int))
    assert torch.equal(
        read_npz_file(tmp_path / "b.npz")["test"].images, torch.from_numpy(hwc).permute(0, 3, 1, 2)
    )
    np.savez(
        tmp_path / "c.npz", x_train=floats, y_train=np.zeros(3, int), x_test=floats, y_test=np.zeros(3, int)
    )
    assert read_npz_file(tmp_path / "c.npz")["train"].images.dtype == torch.float32


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"x_train": np.zeros((2, 4, 4), np.uint8), "y_train": np.zeros(2, int)}, "no x_test"),
        ({"x_train": np.full((2, 1, 4, 4), np.nan, np.float32), "y_train": np.zeros(2, int),
          "x_test": np.zeros((1, 1, 4, 4), np.float32), "y_test": np.zeros(1, int)}, "NaN"),
        ({"x_train": np.zeros((2, 4, 4), np.uint8), "y_train": np.zeros(3, int),
          "x_test": np.zeros((1, 4, 4), np.uint8), "y_test": np.zeros(1, int)}, "one label per image"),
        ({"x_train": np.zeros((2, 4, 4), np.uint8), "y_train": np.zeros(2),
          "x_test": np.zeros((1, 4, 4), np.uint8), "y_test": np.zeros(1, int)}, "must be integers"),
        ({"x_train": np.zeros((2, 4, 4), np.uint8), "y_train": np.zeros(2, int),
          "x_test": np.zeros((1, 5, 5), np.uint8), "y_test": np.zeros(1, int)}, "shapes differ"),
        ({"x_train": np.array([None, None]), "y_train": np.zeros(2, int),
          "x_test": np.zeros((1, 4, 4), np.uint8), "y_test": np.zeros(1, int)}, "unpickling"),
    ],
)  # fmt: skip
def test_bad_npz_files_are_one_line(tmp_path, arrays, needle):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError, match=needle):
        read_npz_file(tmp_path / "bad.npz")


def test_labels_out_of_range_and_channel_statistics(tmp_path):
    np.savez(tmp_path / "l.npz", x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 7]),
             x_test=np.zeros((1, 4, 4), np.uint8), y_test=np.array([0]))  # fmt: skip
    with pytest.raises(UserError, match="label 7, outside"):
        check_labels(read_npz_file(tmp_path / "l.npz"), 5, "l.npz")
    images = torch.randint(0, 256, (10, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats(images)
    x = images.double().numpy() / 255
    assert np.allclose(mean, x.mean(axis=(0, 2, 3))) and np.allclose(std, x.std(axis=(0, 2, 3), ddof=1))
