"""Hold a run's training images in memory or stream them: the one decision, and ``data.extra``.

A run streams (:func:`ratt.data.splits.streams`) with ``data.stream=true``, or with ``auto``
when its decoded training images plus extra images exceed ``data.in_memory_max`` GiB. Held
in memory, every split is a :class:`ratt.data.TensorDataset` (the path small sets have always
taken); streamed, the training split and the extra images are
:class:`ratt.data.stream.LazyDataset` views read by the loader's workers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ratt.config import DataConfig
from ratt.data.base import DatasetInfo, TensorDataset
from ratt.data.custom import Split, read_extra
from ratt.data.packed import is_packed
from ratt.data.splits import extra_bytes, packed_extra, streams, train_bytes
from ratt.data.stream import ArraySource, LazyDataset

log = logging.getLogger(__name__)


def load_extra(data: DataConfig, info: DatasetInfo) -> Split | LazyDataset | None:
    """``data.extra``: an ``.npz`` file read into memory, or a packed directory mapped lazily."""
    if not data.extra:
        return None
    path = Path(data.extra)
    if is_packed(path):
        return packed_extra(path, info)
    return read_extra(path, info.shape, info.num_classes)


def _lazy(dataset, info: DatasetInfo) -> LazyDataset:
    if isinstance(dataset, LazyDataset):
        return dataset
    return LazyDataset(ArraySource(dataset.images, dataset.labels), info)


def stream_or_hold(
    data: DataConfig, train: TensorDataset | LazyDataset, extra: Split | LazyDataset | None
) -> tuple[TensorDataset | LazyDataset, Split | TensorDataset | LazyDataset | None]:
    """The training split and extra images as the run will read them: both lazy (streamed) or
    both in memory."""
    size = train_bytes(data, train) + (extra_bytes(extra) if extra is not None else 0)
    if streams(data, size) or (data.name == "imagenet" and data.stream == "auto"):
        log.info("streaming %.2f GiB of training images (data.stream=%s)", size / (1 << 30), data.stream)
        return _lazy(train, train.info), None if extra is None else _lazy(extra, train.info)
    if isinstance(train, LazyDataset):
        train = train.in_memory()
    if isinstance(extra, LazyDataset):
        extra = extra.in_memory()
    return train, extra
