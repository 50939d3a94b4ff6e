"""Datasets: a registry of sources, splits held in memory, batched augmentation.

Example:
    >>> from ratt import data
    >>> train = data.load("digits", "train")
    >>> train.images.shape, train.info.eps
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ratt.data import sources  # noqa: F401  (fills the registry)
from ratt.data.augment import augment
from ratt.data.base import DATASETS, SPLITS, DatasetInfo, TensorDataset, to_float
from ratt.errors import UserError

VAL_SEED = 20230317  # fixed so every run of a dataset holds out the same validation images

__all__ = ["DATASETS", "DatasetInfo", "TensorDataset", "augment", "info", "load", "to_float"]


def info(name: str) -> DatasetInfo:
    """Defaults (shape, classes, threat model, augmentation) of dataset ``name``."""
    return DATASETS.get(name).info


@functools.lru_cache(maxsize=4)
def _read(name: str, root: str | None, download: bool):
    return DATASETS.get(name).read(Path(root) if root else None, download)


def load(
    name: str,
    split: str,
    data_root: str | Path | None = None,
    val_size: int | None = None,
    download: bool = True,
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
    Raises:
        UserError: unknown name or split, or the data cannot be found.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    source = DATASETS.get(name)
    (x_train, y_train), (x_test, y_test) = _read(name, str(data_root) if data_root else None, download)
    if split == "test":
        return TensorDataset(x_test, y_test, source.info)
    n_val = source.info.val_size if val_size is None else int(val_size)
    if not 0 <= n_val < len(y_train):
        raise UserError(f"val_size={n_val} must be in [0, {len(y_train)})")
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(VAL_SEED))
    index = order[:n_val] if split == "val" else order[n_val:].sort().values
    return TensorDataset(x_train[index], y_train[index], source.info)
