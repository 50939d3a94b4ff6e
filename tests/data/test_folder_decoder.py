"""``data.decoder``: streamed image folders decoded by PIL (the default, unchanged) or by
``torchvision.io`` into tensors. The torchvision decoder's evaluation images are torchvision's
own decode + Resize + CenterCrop, bit for bit; its training crops do not depend on the worker
count and take the same crop box and flip as PIL's; a corrupt file meets
``data.on_bad_image``; data that decodes no files refuses the option in one line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ratt import data
from ratt.cli import main
from ratt.config import DataConfig
from ratt.config.sections import CHOICES, DECODERS
from ratt.data.splits import folder_source
from ratt.errors import UserError
from tests.data.test_folder_stream import ARGS, _feed_batches, _section, make_tree

TV = "torchvision"


@pytest.fixture
def tree(tmp_path):
    make_tree(tmp_path / "inet")
    return tmp_path / "inet"


def _torchvision_eval(path, channels: int) -> torch.Tensor:
    """torchvision's own pipeline, written out: read the file, decode, Resize(18), CenterCrop(16)."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2 import functional as F

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (for TorchCodec)
        warnings.simplefilter("ignore", DeprecationWarning)
        image = decode_image(read_file(str(path)), mode=mode)
    return F.center_crop(F.resize(image, 18, antialias=True), 16)


def test_the_decoder_is_one_registered_choice_and_pil_by_default(tree, capsys):
    assert CHOICES["data.decoder"] is DECODERS and DECODERS == ("pil", TV)
    assert DataConfig().decoder == "pil" and folder_source(_section(tree), "train").decoder == "pil"
    assert folder_source(_section(tree, decoder=TV), "train").decoder == TV
    assert main(["train", "--out", "/tmp/never", "data.decoder=nvjpeg"]) == 2
    assert "data.decoder must be pil or torchvision" in capsys.readouterr().err


@pytest.mark.parametrize("channels", [3, 1])
def test_torchvision_evaluation_images_are_torchvision_decode_resize_and_center_crop(tree, channels):
    test = data.load_for(_section(tree, decoder=TV, channels=channels), "test")
    assert tuple(test.images.shape) == (6, channels, 16, 16) and test.images.dtype == torch.uint8
    files = sorted((tree / "val").rglob("*.*"))
    assert {p.suffix for p in files} == {".png", ".JPEG"}
    for k, path in enumerate(files):
        assert torch.equal(test.images[k], _torchvision_eval(path, channels)), path
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_the_pil_decoders_training_crop_is_torchvisions_transform_of_the_pil_image(tree):
    from torchvision import transforms as T

    source = folder_source(_section(tree), "train")
    seeds = np.array([3, 2**63 + 5], dtype=np.uint64)
    images, _ = source.fetch(np.array([0, 1]), seeds)
    crop = T.Compose([T.RandomResizedCrop(16, antialias=True), T.RandomHorizontalFlip(), T.PILToTensor()])
    for k, seed in enumerate(seeds):
        with Image.open(source.files[k]) as image:
            torch.manual_seed(int(seed) & ((1 << 63) - 1))
            assert torch.equal(images[k], crop(image.convert("RGB")))


def test_torchvision_training_crops_are_the_same_for_0_and_2_workers_and_for_a_rerun(tree):
    section = _section(tree, decoder=TV)
    alone, pooled, again = _feed_batches(section, 0), _feed_batches(section, 2), _feed_batches(section, 0)
    assert len(alone) == 5 and alone[0][0].shape == (4, 3, 16, 16)
    for (xa, ya), (xb, yb), (xc, _) in zip(alone, pooled, again, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(xa, xc)
    other_epoch = _feed_batches(section, 0, epoch=1)
    assert not torch.equal(torch.cat([x for x, _ in alone]), torch.cat([x for x, _ in other_epoch]))


@pytest.mark.parametrize("channels", [3, 1])
def test_both_decoders_take_the_same_crop_box_and_flip(tree, channels):
    """The images are random noise, so another crop box or flip would differ by tens of grey
    levels (the other epoch's crops show it); the two decoders differ by at most a resampler's
    or a colour conversion's rounding: under 2 grey levels per image on average."""
    pil = torch.cat([x for x, _ in _feed_batches(_section(tree, channels=channels), 0)]).float()
    tv = torch.cat([x for x, _ in _feed_batches(_section(tree, channels=channels, decoder=TV), 0)]).float()
    other = torch.cat([x for x, _ in _feed_batches(_section(tree, channels=channels), 0, epoch=1)]).float()
    assert pil.shape == tv.shape == (18, channels, 16, 16)
    grey_levels = (tv - pil).abs().mean(dim=(1, 2, 3)) * 255  # the feed gives floats in [0, 1]
    assert grey_levels.max() < 2
    assert (other - pil).abs().mean(dim=(1, 2, 3)).min() * 255 > 10


def test_formats_torchvision_does_not_read_are_read_by_pil_then_the_same_tensor_transforms(tree):
    from torchvision.transforms.v2 import functional as F

    bmp = tree / "val" / "n01" / "0.png"
    with Image.open(bmp) as image:
        rgb = image.convert("RGB")
    rgb.save(bmp.with_suffix(".bmp"))
    bmp.unlink()
    test = data.load_for(_section(tree, decoder=TV), "test")
    want = F.center_crop(F.resize(F.pil_to_tensor(rgb), 18, antialias=True), 16)
    assert torch.equal(test.images[0], want)


def test_a_corrupt_jpeg_under_torchvision_fails_in_one_line_or_is_skipped_and_counted(tree, tmp_path):
    bad = tree / "train" / "n02" / "9.JPEG"
    good = (tree / "train" / "n02" / "1.JPEG").read_bytes()
    bad.write_bytes(good[: len(good) // 3])  # truncated: torchvision raises RuntimeError
    for workers in (0, 2):  # met by a worker mid-epoch: the same one line in the training process
        with pytest.raises(UserError, match=r"9.JPEG: not a readable image \(RuntimeError\)") as caught:
            _feed_batches(_section(tree, decoder=TV), workers)
        assert "\n" not in str(caught.value) and "data.on_bad_image=skip" in str(caught.value)
    (tree / "train" / "n01" / "3.JPEG").write_bytes(b"")  # empty: read by neither decoder
    source = folder_source(_section(tree, decoder=TV, on_bad_image="skip"), "train")
    images, labels = source.fetch(np.arange(len(source)), np.arange(len(source), dtype=np.uint64))
    assert len(images) == len(labels) == len(source) - 2 == 17 and source.skipped == 2
    skip = tmp_path / "skip"
    argv = ["train", "--out", str(skip), f"data.root={tree}", *ARGS, "data.on_bad_image=skip"]
    assert main([*argv, f"data.decoder={TV}"]) == 0
    row = json.loads((skip / "metrics.jsonl").read_text().splitlines()[0])
    assert row["skipped_images"] == 2


def test_data_that_decodes_no_files_refuses_the_torchvision_decoder_in_one_line(tmp_path, capsys):
    with pytest.raises(UserError, match="data=digits decodes no files: leave data.decoder=pil"):
        data.info_for(DataConfig(decoder=TV))
    make_tree(tmp_path / "f")
    (tmp_path / "f" / "val").rename(tmp_path / "f" / "test")
    held = DataConfig(name="imagefolder", root=str(tmp_path / "f"), image_size=16, decoder=TV)
    with pytest.raises(UserError, match="data=imagefolder is held in memory"):
        data.info_for(held)
    streamed = DataConfig(
        name="imagefolder", root=str(tmp_path / "f"), image_size=16, stream="true", decoder=TV
    )
    assert data.info_for(streamed).shape == (3, 16, 16)
    run = tmp_path / "r"
    assert main(["train", "--out", str(run), "data=digits", f"data.decoder={TV}", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.decoder=torchvision applies to image folders" in err and "\n" not in err
    assert not run.exists()
