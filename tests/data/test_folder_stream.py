"""Image folders streamed at native resolution (``data=imagenet``, ``data=imagefolder`` with
``data.stream=true``): evaluation images are torchvision's Resize + CenterCrop of the file,
training crops do not depend on the worker count, a bad file mid-epoch is one line (or
skipped and counted), and train/val class folders that differ are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ratt import data
from ratt.cli import main
from ratt.config import DataConfig
from ratt.data.splits import folder_source
from ratt.data.stream import LazyDataset, StreamBatches
from ratt.errors import UserError
from ratt.train.batches import BatchPlan
from ratt.train.feed import StreamFeed

CLASSES = ("n01", "n02", "n03")


def make_tree(root, per_class=(6, 2)) -> None:
    """ILSVRC's layout in miniature: train/<wnid>/ and val/<wnid>/, JPEGs and PNGs of varied sizes."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), per_class, strict=True):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for k in range(n):
                h, w = rng.integers(14, 30, 2)
                image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                image.save(root / split / name / (f"{k}.JPEG" if k % 2 else f"{k}.png"))


@pytest.fixture
def tree(tmp_path):
    make_tree(tmp_path / "inet")
    return tmp_path / "inet"


def _section(root, **kw) -> DataConfig:
    return DataConfig(name="imagenet", root=str(root), image_size=16, resize=18, **kw)


def test_evaluation_images_are_resize_then_center_crop_of_the_file(tree):
    from torchvision.transforms import functional as TF

    test = data.load_for(_section(tree), "test")
    assert tuple(test.images.shape) == (6, 3, 16, 16) and test.images.dtype == torch.uint8
    files = sorted((tree / "val").rglob("*.*"))
    for k, path in enumerate(files):
        with Image.open(path) as image:
            want = TF.pil_to_tensor(TF.center_crop(TF.resize(image.convert("RGB"), 18), 16))
        assert torch.equal(test.images[k], want), path
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    lazy = LazyDataset(folder_source(_section(tree), "test"), test.info)
    in_chunks = lazy.in_memory(chunk=2)  # decoded by worker processes, 2 images a call
    assert torch.equal(in_chunks.images, test.images) and torch.equal(in_chunks.labels, test.labels)


def _feed_batches(section: DataConfig, workers: int, epoch: int = 0) -> list:
    train = folder_source(section, "train")
    info = data.info_for(section)
    lazy = LazyDataset(train, info, augments_itself=True)
    plan = BatchPlan(n_train=len(train), batch=4, seed=1)
    feed = StreamFeed(StreamBatches(lazy, None, "none", 1), plan, (0, 1), torch.device("cpu"), workers, 2)
    return list(feed.epoch(epoch, 0, plan.epoch_orders(epoch)))


def test_training_crops_are_the_same_for_0_and_2_workers(tree):
    alone, pooled = _feed_batches(_section(tree), 0), _feed_batches(_section(tree), 2)
    assert len(alone) == 5 and alone[0][0].shape == (4, 3, 16, 16)
    for (xa, ya), (xb, yb) in zip(alone, pooled, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    again = _feed_batches(_section(tree), 0, epoch=1)
    assert not torch.equal(torch.cat([x for x, _ in alone]), torch.cat([x for x, _ in again]))


ARGS = ["data=imagenet", "data.image_size=16", "data.resize=18", "batch_size=6", "epochs=1", "steps=1",
        "val_attack_steps=1", "test_attacks=clean", "threads=1", "data.workers=0", "data.val_size=0",
        "--quiet"]  # fmt: skip


def test_a_bad_image_mid_epoch_fails_in_one_line_or_is_skipped_and_counted(tree, tmp_path, capsys):
    bad = tree / "train" / "n02" / "9.JPEG"
    good = (tree / "train" / "n02" / "1.JPEG").read_bytes()
    bad.write_bytes(good[: len(good) // 3])  # truncated
    for workers in (0, 2):  # met by a worker mid-epoch: the same one line in the training process
        with pytest.raises(UserError, match="9.JPEG: not a readable image") as caught:
            _feed_batches(_section(tree), workers)
        assert "\n" not in str(caught.value)
    run = tmp_path / "fail"
    assert main(["train", "--out", str(run), f"data.root={tree}", *ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and "data.on_bad_image=skip" in err and "\n" not in err
    skip = tmp_path / "skip"
    assert main(["train", "--out", str(skip), f"data.root={tree}", *ARGS, "data.on_bad_image=skip"]) == 0
    row = json.loads((skip / "metrics.jsonl").read_text().splitlines()[0])
    assert row["skipped_images"] == 1


def test_train_and_val_class_folders_that_differ_are_one_line_and_exit_2(tree, tmp_path, capsys):
    (tree / "val" / "n04").mkdir()
    Image.new("RGB", (20, 20)).save(tree / "val" / "n04" / "0.png")
    assert main(["train", "--out", str(tmp_path / "r"), f"data.root={tree}", *ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert "class folders differ" in err and "n04" in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_an_imagefolder_streams_with_native_resolution_transforms(tmp_path):
    make_tree(tmp_path / "f")
    (tmp_path / "f" / "val").rename(tmp_path / "f" / "test")
    section = DataConfig(name="imagefolder", root=str(tmp_path / "f"), image_size=16, stream="true")
    info = data.info_for(section)
    assert info.shape == (3, 16, 16) and info.num_classes == 3
    train = data.load_for(section, "train", lazy=True)
    assert isinstance(train, LazyDataset) and len(train) + info.val_size == 18
    assert tuple(data.load_for(section, "test").images.shape) == (6, 3, 16, 16)
