from __future__ import annotations

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ratt import data
from ratt.data.augment import random_crop, random_flip
from ratt.data.idx import read_idx, read_idx_pair
from ratt.data.sources import DEBIAN_FASHION_MNIST
from ratt.errors import UserError
from tests.helpers import write_idx


def test_digits_splits_are_disjoint_stratified_and_in_unit_range():
    train, val, test = (data.load("digits", s) for s in ("train", "val", "test"))
    assert len(train) + len(val) + len(test) == 1797
    assert len(val) == data.info("digits").val_size
    for split in (train, val, test):
        assert split.images.shape[1:] == (1, 8, 8)
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
    # stratified: every class keeps roughly its 10% share in the test split
    counts = torch.bincount(test.labels, minlength=10).float() / len(test)
    assert (counts - 0.1).abs().max() < 0.01
    # train and val come from the same pool without overlap: no duplicate rows between them
    flat_train = {tuple(r.tolist()) for r in train.images.flatten(1)}
    overlap = sum(tuple(r.tolist()) in flat_train for r in val.images.flatten(1))
    assert overlap <= 2  # digits has a handful of exact duplicate images


def test_val_size_zero_trains_on_everything():
    assert len(data.load("digits", "train", val_size=0)) == 1797 - 360


def test_idx_round_trip_on_a_written_file(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(5,), dtype=np.uint8)
    write_idx(tmp_path / "im.gz", images)
    write_idx(tmp_path / "lb", labels)
    # header by hand: magic 0x00000803, then dims, big-endian
    with gzip.open(tmp_path / "im.gz", "rb") as handle:
        raw = handle.read()
    assert raw[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(raw[4:8], "big") == 5
    x, y = read_idx_pair(tmp_path / "im.gz", tmp_path / "lb")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.uint8
    np.testing.assert_array_equal(x[:, 0].numpy(), images)
    np.testing.assert_array_equal(y.numpy(), labels)


def test_idx_reader_rejects_truncated_and_bad_files(tmp_path):
    write_idx(tmp_path / "ok", np.zeros((4, 3, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-5])
    (tmp_path / "junk").write_bytes(os.urandom(64))
    for name in ("short", "junk"):
        with pytest.raises(UserError, match=name):
            read_idx(tmp_path / name)


def _write_fake_fashion(folder, n_train=30, n_test=10):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8))


def test_fashion_mnist_reads_idx_files_from_data_root(tmp_path):
    _write_fake_fashion(tmp_path)
    train = data.load("fashion-mnist", "train", tmp_path, val_size=5)
    test = data.load("fashion-mnist", "test", tmp_path)
    assert len(train) == 25 and len(test) == 10
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 28, 28)
    x, _ = train[0]
    assert x.dtype == torch.float32 and x.max() <= 1.0


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package():
    x, y = read_idx_pair(
        DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz", DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz"
    )
    assert x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [1000] * 10  # the test set is balanced


def test_missing_dataset_is_one_line_exit_2_without_traceback(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ratt",
            "train",
            "--out",
            str(out),
            "data=mnist",
            f"data.root={tmp_path / 'nowhere'}",
            "data.download=false",
            "epochs=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "mnist" in lines[0] and "nowhere" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_random_crop_is_a_shift_within_the_padding():
    images = torch.rand(64, 3, 8, 8)
    cropped = random_crop(images, padding=2, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(images.shape[0]):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[i, :, dy : dy + 8, dx : dx + 8], cropped[i])
        ]
        assert matches, f"image {i} is not a crop of its padded version"


def test_random_flip_mirrors_about_half_the_batch():
    images = torch.rand(400, 1, 4, 4)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    same = (flipped == images).flatten(1).all(1)
    assert bool((mirrored | same).all())
    assert 150 < int(mirrored.sum()) < 250


def test_a_loaded_split_unpacks_as_images_and_labels():
    split = data.load("digits", "test")
    images, labels = data.load("digits", "test")  # what the README shows
    assert torch.equal(images, split.images) and torch.equal(labels, split.labels)
    assert images.shape == (len(split), 1, 8, 8) and labels.shape == (len(split),)
    x, y = split[3]  # one sample, as a DataLoader reads it
    assert torch.equal(x, split.images[3].float()) and int(y) == int(split.labels[3])
