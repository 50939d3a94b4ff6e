"""Datasets: a registry of sources, splits held in memory, batched augmentation.

Example:
    >>> from ratt import data
    >>> train = data.load("digits", "train")
    >>> train.images.shape, train.info.eps
"""

from __future__ import annotations

from ratt.data import own, sources, synthetic  # noqa: F401  (fill the registry)
from ratt.data.augment import augment
from ratt.data.base import DATASETS, VAL_SEED, DatasetInfo, TensorDataset, to_float
from ratt.data.loading import info, info_for, load, load_for
from ratt.data.splits import listed_test_images
from ratt.data.stream import LazyDataset

__all__ = [
    "DATASETS",
    "VAL_SEED",
    "DatasetInfo",
    "LazyDataset",
    "TensorDataset",
    "augment",
    "info",
    "info_for",
    "listed_test_images",
    "load",
    "load_for",
    "to_float",
]
