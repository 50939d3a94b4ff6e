"""Loading a registered dataset's splits: into memory, or lazily for packed and streamed data.

Example:
    >>> from ratt.data.loading import load
    >>> train = load("digits", "train")
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from ratt.config import DataConfig
from ratt.data.base import DATASETS, SPLITS, VAL_SEED, DatasetInfo, TensorDataset
from ratt.data.own import LAZY_SOURCES, own_data
from ratt.data.splits import lazy_info, lazy_kind, lazy_split
from ratt.data.stream import LazyDataset
from ratt.errors import UserError


def info(
    name: str,
    root: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    layout: str = "auto",
) -> DatasetInfo:
    """Defaults (shape, classes, threat model, augmentation, normalization) of dataset ``name``;
    for your own data (``imagefolder``, ``npz``) read from the files at ``root``."""
    source = DATASETS.get(name)
    if not source.custom:
        return source.info
    where = str(root) if root else None
    section = DataConfig(name=name, root=where, image_size=image_size, channels=channels)
    if lazy_kind(section):
        return lazy_info(section)
    return own_data(name, root, image_size, channels, layout)[1]


def info_for(data: DataConfig) -> DatasetInfo:
    """:func:`info` of a run's data section."""
    if lazy_kind(data):
        return lazy_info(data)
    return info(data.name, data.root, data.image_size, data.channels, data.layout)


@functools.lru_cache(maxsize=4)
def _read(name: str, root: str | None, download: bool):
    return DATASETS.get(name).read(Path(root) if root else None, download)


def _splits(
    name: str, root: str | None, download: bool, image_size: int | None, channels: int | None, layout: str
):
    """((train), (test), (val) or None) arrays and the info of any registered dataset."""
    source = DATASETS.get(name)
    if not source.custom:
        (x_train, y_train), (x_test, y_test) = _read(name, root, download)
        return (x_train, y_train), (x_test, y_test), None, source.info
    splits, described = own_data(name, root, image_size, channels, layout)
    val = splits.get("val")
    return (
        (splits["train"].images, splits["train"].labels),
        (splits["test"].images, splits["test"].labels),
        (val.images, val.labels) if val is not None else None,
        described,
    )


def load(
    name: str,
    split: str,
    data_root: str | Path | None = None,
    *,
    val_size: int | None = None,
    download: bool = True,
    image_size: int | None = None,
    channels: int | None = None,
    layout: str = "auto",
) -> TensorDataset:
    """Load one split of a registered dataset into memory.

    Args:
        name: registry name (``ratt list datasets``).
        split: ``train`` (training images minus the validation hold-out), ``val`` (the
            hold-out, ``val_size`` images chosen with a fixed seed) or ``test``.
        data_root: folder searched for files / used for downloads.
        val_size: images held out for validation; the dataset's default when None,
            0 to train on everything.
        download: let torchvision download missing files into ``data_root``.
        image_size, channels: for ``imagefolder``: resize to this square size, force 1 or 3
            channels (None: from the files); ``channels`` for ``npz``: the channel count.
        layout: for ``npz``: ``auto`` (the axis order read from the shape), ``nchw``, ``nhwc``.
    Raises:
        UserError: unknown name or split, or the data cannot be found or is malformed.

    Your own data with a ``val`` split of its own uses it (``val_size`` is then ignored).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    root = str(data_root) if data_root else None
    if name in LAZY_SOURCES:
        section = DataConfig(name=name, root=root, val_size=val_size, image_size=image_size)
        return load_for(dataclasses.replace(section, channels=channels), split)
    (x_train, y_train), (x_test, y_test), val, described = _splits(
        name, root, download, image_size, channels, layout
    )
    if split == "test":
        return TensorDataset(x_test, y_test, described)
    if val is not None:
        x, y = val if split == "val" else (x_train, y_train)
        return TensorDataset(x, y, described)
    n_val = described.val_size if val_size is None else int(val_size)
    if not 0 <= n_val < len(y_train):
        raise UserError(f"val_size={n_val} must be in [0, {len(y_train)})")
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(VAL_SEED))
    index = order[:n_val] if split == "val" else order[n_val:].sort().values
    return TensorDataset(x_train[index], y_train[index], described)


def load_for(
    data: DataConfig, split: str, root: str | Path | None = None, *, lazy: bool = False
) -> TensorDataset | LazyDataset:
    """:func:`load` of one split of a run's data section (``root`` overrides ``data.root``);
    packed data and streamed folders (:mod:`ratt.data.splits`) give any split as a
    :class:`LazyDataset`, nothing read yet, with ``lazy`` (else read into memory)."""
    if root:
        data = dataclasses.replace(data, root=str(root))
    if lazy_kind(data):
        loaded = lazy_split(data, split)
        return loaded if lazy else loaded.in_memory()
    return load(
        data.name, split, root or data.root, val_size=data.val_size, download=data.download,
        image_size=data.image_size, channels=data.channels, layout=data.layout,
    )  # fmt: skip
