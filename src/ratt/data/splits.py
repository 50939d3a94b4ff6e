"""Splits that are not read whole: packed directories and image folders at native resolution.

- ``data=packed data.root=DIR``: a directory written by ``ratt data pack`` (checked at start:
  every shard present, whole, with its sha256), memory-mapped.
- ``data=imagenet data.root=DIR``: ILSVRC-2012 as ``train/<wnid>/*.JPEG`` and
  ``val/<wnid>/*.JPEG`` (``val/`` is the test split); ``data=imagefolder`` when it streams.

The training split is a :class:`ratt.data.stream.LazyDataset`; validation (held out of the
training images with the same fixed seed as every data set) and test splits are read into
memory, folders at the evaluation transform (``Resize(data.resize)``, ``CenterCrop``).
Whether a run streams (:func:`streams`): ``data.stream=true``, or ``auto`` and the decoded
training images (with ``data.extra``) above ``data.in_memory_max`` GiB.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch

from ratt.config import DataConfig
from ratt.core.files import read_regular_text
from ratt.data.base import VAL_SEED, DatasetInfo, TensorDataset
from ratt.data.custom import channel_stats, image_folder_format
from ratt.data.folder import FolderSource, class_files
from ratt.data.packed import PackedSplit, check_packed, decoded_bytes, is_packed
from ratt.data.stream import ArraySource, LazyDataset
from ratt.errors import UserError

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGENET_RESIZE, IMAGENET_SIZE = 256, 224
FOLDER_VAL_SIZE = 1000
GIB = 1 << 30


def _need_root(data: DataConfig) -> Path:
    if not data.root:
        raise UserError(f"data={data.name} needs data.root (a folder)")
    return Path(data.root)


def first_local_process() -> bool:
    """Whether this is the first process of its node (``LOCAL_RANK`` 0 or unset): it alone
    hashes the shards, the others check their sizes and headers."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


@functools.lru_cache(maxsize=8)
def _checked_index(root: str) -> dict:
    return check_packed(root, hashes=first_local_process())


def packed_info(root: str | Path) -> DatasetInfo:
    """The description of a packed directory, from its index (nothing else is read)."""
    index = _checked_index(str(root))
    train = int(index["splits"]["train"]["count"])
    val_size = 0 if "val" in index["splits"] else min(1000, train // 10)
    shape = tuple(int(v) for v in index["shape"])
    return DatasetInfo("packed", shape, int(index["classes"]), 8 / 255, 2 / 255, 10, "none",
                       tuple(index["mean"]), tuple(index["std"]), val_size)  # fmt: skip


def folder_sizes(data: DataConfig) -> tuple[int, int]:
    """(image side, resize side) of a folder data set: ``data.image_size`` (imagenet: 224;
    imagefolder: the first image's size) and ``data.resize`` (imagenet: 256; else side * 8/7)."""
    root = _need_root(data)
    if data.name == "imagenet":
        size = data.image_size or IMAGENET_SIZE
        return size, data.resize or (IMAGENET_RESIZE if size == IMAGENET_SIZE else round(size * 8 / 7))
    _, size, _ = image_folder_format(root, data.image_size, data.channels)
    return size, data.resize or round(size * 8 / 7)


@functools.lru_cache(maxsize=8)
def _folder(name: str, root: str, split: str, classes: tuple[str, ...] | None) -> tuple:
    names, files = class_files(Path(root), split, list(classes) if classes else None)
    return tuple(names), tuple(f for f, _ in files), np.array([label for _, label in files], dtype=np.int64)


def _folder_split_name(data: DataConfig, split: str) -> str:
    return "val" if data.name == "imagenet" and split == "test" else split


def _class_names(data: DataConfig) -> tuple[str, ...]:
    """The class folders of ``train/`` (ImageNet without ``train/``: of ``val/``, the same 1,000
    WNIDs, so a validation folder alone can be evaluated)."""
    root = _need_root(data)
    split = "val" if data.name == "imagenet" and not (root / "train").is_dir() else "train"
    return _folder(data.name, str(root), split, None)[0]


def folder_source(data: DataConfig, split: str) -> FolderSource | None:
    """The files of one split of a folder data set (None: a ``val/`` split it does not have)."""
    root = _need_root(data)
    classes = _class_names(data)
    name = _folder_split_name(data, split)
    if split == "val" and (data.name == "imagenet" or not (root / "val").is_dir()):
        return None
    _, files, labels = _folder(data.name, str(root), name, classes)
    channels = data.channels or (3 if data.name == "imagenet" else image_folder_format(root, None, None)[2])
    size, resize = folder_sizes(data)
    return FolderSource(
        list(files), labels, channels, size, resize, on_bad_image=data.on_bad_image, decoder=data.decoder
    )


def folder_info(data: DataConfig) -> DatasetInfo:
    """The description of a streamed folder data set (imagenet: ImageNet's statistics; else
    the statistics of up to 512 training images, a fixed sample, at the evaluation transform)."""
    if data.name == "imagenet":
        size, _ = folder_sizes(data)
        return DatasetInfo("imagenet", (data.channels or 3, size, size), len(_class_names(data)), 4 / 255,
                           1 / 255, 5, "none", *IMAGENET_MEAN_STD, FOLDER_VAL_SIZE)  # fmt: skip
    train = folder_source(data, "train")
    size, classes = train.image_size, int(train.labels.max()) + 1
    shape = (train.channels, size, size)
    sample = torch.randperm(len(train), generator=torch.Generator().manual_seed(VAL_SEED))[:512].numpy()
    mean, std = channel_stats(train.fetch(np.sort(sample), None)[0])
    val = 0 if folder_source(data, "val") is not None else min(FOLDER_VAL_SIZE, len(train) // 10)
    return DatasetInfo("imagefolder", shape, classes, 8 / 255, 2 / 255, 10, "none", mean, std, val)


def listed_test_images(data: DataConfig, listing: Path, *, lazy: bool = False) -> TensorDataset | LazyDataset:
    """The test images that ``listing`` names, in its order, at the evaluation transform, read
    into memory (with ``lazy``: a :class:`LazyDataset`, nothing decoded yet): one ``CLASS/FILE``
    per line, relative to the test folder (``val/`` for ImageNet; RobustBench's ImageNet list
    is such a file), each named once. A line that names no image of that folder is a one-line
    ``UserError`` with its line number."""
    text = read_regular_text(listing)
    if text is None:
        raise UserError(f"{listing}: no such file (a list of CLASS/FILE lines)")
    folder = _need_root(data) / _folder_split_name(data, "test")
    classes = {name: label for label, name in enumerate(_class_names(data))}
    files, labels, seen = [], [], set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        name, _, file = entry.partition("/")
        where = f"{listing}:{number}: {entry!r}"
        if name not in classes or not file or "/" in file or file in (".", ".."):
            raise UserError(f"{where} is not CLASS/FILE with CLASS one of the {len(classes)} class folders")
        if entry in seen:
            raise UserError(f"{where} is listed twice")
        if not (folder / entry).is_file():
            raise UserError(f"{where}: {folder / entry} is not a file")
        seen.add(entry)
        files.append(str(folder / entry))
        labels.append(classes[name])
    if not files:
        raise UserError(f"{listing}: lists no images")
    size, resize = folder_sizes(data)
    labels = np.array(labels, dtype=np.int64)
    source = FolderSource(files, labels, data.channels or 3, size, resize, decoder=data.decoder)
    listed = LazyDataset(source, lazy_info(data))
    return listed if lazy else listed.in_memory()


def streams(data: DataConfig, train_bytes: int) -> bool:
    """Whether training images stream (``data.stream``; ``auto``: above ``data.in_memory_max`` GiB)."""
    if data.stream != "auto":
        return data.stream == "true"
    return train_bytes > data.in_memory_max * GIB


def folder_bytes(data: DataConfig) -> int:
    """Decoded size of a folder data set's training images at its image size (uint8)."""
    train = folder_source(data, "train")
    return len(train) * train.channels * train.image_size**2


def lazy_kind(data: DataConfig) -> str | None:
    """``packed`` or ``folder`` when this data section's training split is read lazily
    (:func:`_check_decoder`: a ``data.decoder`` that would decode nothing is refused)."""
    kind = None
    if data.name == "packed":
        kind = "packed"
    elif data.name == "imagenet":
        kind = "folder"
    elif data.name == "imagefolder" and data.stream != "false" and data.root:
        kind = "folder" if streams(data, folder_bytes(data)) else None
    _check_decoder(data, kind)
    return kind


def _check_decoder(data: DataConfig, kind: str | None) -> None:
    """``data.decoder`` other than ``pil`` only where image folders stream (``kind`` ``folder``):
    anywhere else no file is decoded by it, so it is refused rather than ignored."""
    if data.decoder == "pil" or kind == "folder":
        return
    held = "is held in memory, read at one size by PIL" if data.name == "imagefolder" else "decodes no files"
    raise UserError(
        f"data.decoder={data.decoder} applies to image folders streamed at native resolution "
        f"(data=imagenet, or imagefolder with data.stream=true); data={data.name} {held}: "
        "leave data.decoder=pil"
    )


def lazy_info(data: DataConfig) -> DatasetInfo:
    """:func:`packed_info` or :func:`folder_info` of a lazily read data section."""
    return packed_info(_need_root(data)) if lazy_kind(data) == "packed" else folder_info(data)


def _whole(data: DataConfig, split: str, info: DatasetInfo, *, augment: bool) -> LazyDataset | None:
    """Split ``split`` as stored (None: no such split)."""
    if lazy_kind(data) == "packed":
        index = _checked_index(str(_need_root(data)))
        if split not in index["splits"]:
            return None
        return LazyDataset(ArraySource(arrays=PackedSplit.open(data.root, split, index)), info)
    source = folder_source(data, split)
    return None if source is None else LazyDataset(source, info, augments_itself=augment)


def lazy_split(data: DataConfig, split: str) -> LazyDataset:
    """One split, nothing read yet: train (minus the validation hold-out) augmented, val and
    test without augmentation (the caller reads them into memory when it evaluates)."""
    info = lazy_info(data)
    own_val = _whole(data, "val", info, augment=False)
    if split == "test":
        return _whole(data, "test", info, augment=False)
    if own_val is not None:
        return own_val if split == "val" else _whole(data, "train", info, augment=True)
    train = _whole(data, "train", info, augment=True)
    n_val = info.val_size if data.val_size is None else int(data.val_size)
    if not 0 <= n_val < len(train):
        raise UserError(f"val_size={n_val} must be in [0, {len(train)})")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(VAL_SEED))
    if split == "val":
        held = _whole(data, "train", info, augment=False)
        return held.subset(order[:n_val].numpy())
    return train.subset(order[n_val:].sort().values.numpy())


def extra_bytes(extra: object) -> int:
    """Decoded bytes of extra images (a Split in memory or a lazy dataset)."""
    if isinstance(extra, LazyDataset):
        return len(extra) * math.prod(extra.info.shape)
    return extra.images.numel() * extra.images.element_size()


def packed_extra(root: Path, info: DatasetInfo) -> LazyDataset:
    """``data.extra=DIR`` (a packed directory): its ``train`` split, checked against the
    training images' shape and classes."""
    index = check_packed(root, hashes=first_local_process())
    if tuple(index["shape"]) != tuple(info.shape):
        raise UserError(f"{root}: extra images are {index['shape']}, the training images {list(info.shape)}")
    if int(index["classes"]) > info.num_classes:
        raise UserError(f"{root}: extra labels reach {index['classes'] - 1}, outside [0, {info.num_classes})")
    return LazyDataset(ArraySource(arrays=PackedSplit.open(root, "train", index)), info)


def train_bytes(data: DataConfig, train: LazyDataset | TensorDataset) -> int:
    """Decoded bytes of the training split (uint8 for lazy data, as stored in memory)."""
    if isinstance(train, LazyDataset):
        return len(train) * math.prod(train.info.shape)
    return train.images.numel() * train.images.element_size()


__all__ = [
    "decoded_bytes", "is_packed", "lazy_info", "lazy_kind", "lazy_split", "listed_test_images",
    "packed_extra", "streams",
]  # fmt: skip
