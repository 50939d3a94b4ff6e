"""Training images read on demand: a lazy dataset, per-sample random numbers, per-sample
augmentation, and the map-style dataset a ``DataLoader``'s workers call once per batch.

Reproducibility does not depend on the workers: every batch is a pure function of its
indices, and every random number of an image's augmentation is a hash of (run seed, epoch,
stream, image index) (:func:`sample_seeds`), so ``data.workers=0`` and ``data.workers=4`` give
the same batches, in the same order, and a resumed run continues exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ratt.data.base import DatasetInfo, TensorDataset, to_float
from ratt.errors import UserError

MASK64 = (1 << 64) - 1


class ImageSource(Protocol):
    """Anything that gives images by index: ``fetch(index, seeds)`` -> (images, labels).

    ``seeds`` (one uint64 per image, or None for no augmentation) is for sources that
    augment while decoding (image files); arrays ignore it."""

    def __len__(self) -> int: ...

    def fetch(self, index: np.ndarray, seeds: np.ndarray | None) -> tuple[Tensor, Tensor]: ...

    def all_labels(self) -> np.ndarray: ...


@dataclass
class ArraySource:
    """Images held in memory or memory-mapped: (N, C, H, W) uint8/float tensor or a
    ``fetch(index) -> (ndarray, ndarray)`` object such as :class:`ratt.data.packed.PackedSplit`."""

    images: Tensor | None = None
    labels: Tensor | None = None
    arrays: object | None = None  # a PackedSplit

    def __len__(self) -> int:
        return len(self.arrays) if self.arrays is not None else int(self.labels.shape[0])

    def all_labels(self) -> np.ndarray:
        """Every label (n,) int64, without reading an image."""
        if self.arrays is not None:
            return self.arrays.all_labels()
        return self.labels.numpy().astype(np.int64)

    def fetch(self, index: np.ndarray, seeds: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        if self.arrays is not None:
            images, labels = self.arrays.fetch(index)
            return torch.from_numpy(images), torch.from_numpy(labels)
        where = torch.from_numpy(np.asarray(index, dtype=np.int64))
        return self.images[where], self.labels[where]


@dataclass
class LazyDataset:
    """A split read on demand (packed shards, image files, or arrays streamed): trained on
    batch by batch, evaluated chunk by chunk (:func:`ratt.eval.evaluate`).

    Attributes:
        source: where the images come from.
        info: the dataset's description.
        positions: the source indices this dataset holds (None: all of them, in order).
        augments_itself: the source applies its own augmentation from the seeds (image files).
    """

    source: ImageSource
    info: DatasetInfo
    positions: np.ndarray | None = None
    augments_itself: bool = False

    def __len__(self) -> int:
        return len(self.source) if self.positions is None else len(self.positions)

    def _where(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        return index if self.positions is None else self.positions[index]

    def fetch(self, index: np.ndarray, seeds: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """Images and labels at ``index`` (positions in this dataset)."""
        return self.source.fetch(self._where(index), seeds)

    def subset(self, index: Tensor | np.ndarray) -> LazyDataset:
        """A view of the images at ``index`` (nothing is read)."""
        index = np.asarray(index, dtype=np.int64)
        return LazyDataset(self.source, self.info, self._where(index), self.augments_itself)

    @property
    def labels(self) -> Tensor:
        """The labels (n,) int64, read without decoding an image."""
        labels = self.source.all_labels()
        return torch.from_numpy(labels if self.positions is None else labels[self.positions])

    @property
    def may_skip(self) -> bool:
        """Reading it may leave out bad images (``data.on_bad_image=skip``), so a batch can
        come back shorter than its index."""
        return getattr(self.source, "on_bad_image", "fail") == "skip"

    def batches(self, index_batches: list[np.ndarray]) -> Iterator[tuple[Tensor, Tensor]]:
        """(images, labels) of each index array in turn, without augmentation; image files
        are decoded ahead by :func:`default_workers` processes (arrays are read in place).

        Raises:
            UserError: a bad image (``data.on_bad_image=fail``), in one line.
        """
        workers = default_workers(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        if workers == 0 or len(index_batches) <= 1 or isinstance(self.source, ArraySource):
            yield from (self.fetch(index, None) for index in index_batches)
            return
        loader = torch.utils.data.DataLoader(
            _Chunks(self), batch_sampler=[[np.asarray(index)] for index in index_batches],
            num_workers=workers, collate_fn=_first, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        for part in loader:
            if isinstance(part, str):
                raise UserError(part)
            yield part

    def in_memory(self, chunk: int = 256) -> TensorDataset:
        """Every image of this dataset read into memory (without augmentation), ``chunk``
        images per read (:meth:`batches`)."""
        n = len(self)
        if n <= chunk or isinstance(self.source, ArraySource):
            images, labels = self.fetch(np.arange(n), None)
        else:
            parts = list(self.batches([np.arange(i, min(i + chunk, n)) for i in range(0, n, chunk)]))
            images, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return TensorDataset(images, labels.long(), self.info)


def held(dataset: TensorDataset | LazyDataset) -> TensorDataset:
    """``dataset`` in memory (a lazy one read whole)."""
    return dataset.in_memory() if isinstance(dataset, LazyDataset) else dataset


def read_in_batches(dataset: TensorDataset | LazyDataset) -> bool:
    """Whether an evaluation can read ``dataset`` batch by batch, never holding it whole: a
    lazy split that cannot leave out bad images (with ``data.on_bad_image=skip`` the point
    count is known only once the split is read)."""
    return isinstance(dataset, LazyDataset) and not dataset.may_skip


def for_evaluation(dataset: TensorDataset | LazyDataset) -> TensorDataset | LazyDataset:
    """``dataset`` as an evaluation reads it: as it is if :func:`read_in_batches`, else in
    memory (a lazy split that may skip bad images read once, whole)."""
    return dataset if read_in_batches(dataset) else held(dataset)


@dataclass
class _Chunks(torch.utils.data.Dataset):
    """``self[[index]]``: one chunk of a lazy dataset, or a bad image's one line."""

    data: LazyDataset

    def __getitem__(self, index: np.ndarray):
        try:
            return self.data.fetch(index, None)
        except UserError as exc:
            return str(exc)

    def __len__(self) -> int:
        return len(self.data)


def _first(batch: list):
    return batch[0]


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer (Steele et al. 2014) on uint64 values: a fixed bijection whose
    outputs look independent for consecutive inputs."""
    z = (values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(MASK64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_seeds(seed: int, epoch: int, stream: int, index: np.ndarray) -> np.ndarray:
    """One uint64 per image: a hash of (run seed, epoch, stream: 0 own / 1 extra, image index)."""
    key = splitmix64(np.array([seed * 1_000_003 + epoch * 7 + stream], dtype=np.uint64))
    with np.errstate(over="ignore"):
        return splitmix64(np.asarray(index, dtype=np.uint64) ^ key)


def crop_flip(images: Tensor, kind: str, seeds: np.ndarray, padding: int = 4) -> Tensor:
    """Per-image ``crop`` (zero-pad by ``padding``, crop back at an offset in
    [-padding, padding]^2) and ``crop_flip`` (also mirror with probability 1/2), every choice
    taken from that image's seed. (B, C, H, W), any dtype -> same."""
    if kind == "none":
        return images
    b, _, h, w = images.shape
    span = 2 * padding + 1
    top = torch.from_numpy((seeds % np.uint64(span)).astype(np.int64))
    left = torch.from_numpy(((seeds >> np.uint64(8)) % np.uint64(span)).astype(np.int64))
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    rows = (top[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = (left[:, None] + torch.arange(w)[None, :])[:, None, None, :]
    batch = torch.arange(b)[:, None, None, None]
    out = padded[batch, torch.arange(images.shape[1])[None, :, None, None], rows, cols]
    if kind == "crop_flip":
        flip = torch.from_numpy(((seeds >> np.uint64(16)) & np.uint64(1)).astype(bool))
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    return out


@dataclass(frozen=True)
class BatchKey:
    """What one worker call reads: this rank's original and extra indices of one global batch."""

    epoch: int
    own: np.ndarray
    extra: np.ndarray | None


@dataclass
class StreamBatches(torch.utils.data.Dataset):
    """The map-style dataset behind the training ``DataLoader``: ``self[BatchKey]`` is one
    batch (images (b, C, H, W) as stored, labels (b,) int64), originals then extras."""

    train: LazyDataset
    extra: LazyDataset | None
    augment: str
    seed: int

    def _part(self, data: LazyDataset, index: np.ndarray, epoch: int, stream: int) -> tuple[Tensor, Tensor]:
        seeds = sample_seeds(self.seed, epoch, stream, index)
        if data.augments_itself:
            return data.fetch(index, seeds)
        images, labels = data.fetch(index, None)
        return crop_flip(images, self.augment, seeds), labels

    def __getitem__(self, key: BatchKey) -> dict:
        """``{"x", "y", "skipped": images left out, "error": a bad image's one line or None}``."""
        sources = [getattr(d.source, "skipped", 0) for d in (self.train, self.extra) if d is not None]
        try:
            x, y = self._part(self.train, key.own, key.epoch, 0)
            if key.extra is not None and self.extra is not None:
                ex, ey = self._part(self.extra, key.extra, key.epoch, 1)
                if ex.dtype != x.dtype:  # uint8 and float parts: both as floats in [0, 1]
                    x, ex = to_float(x), to_float(ex)
                x, y = torch.cat([x, ex]), torch.cat([y, ey])
        except UserError as exc:  # a bad image: said in one line by the main process
            return {"x": None, "y": None, "skipped": 0, "error": str(exc)}
        after = [getattr(d.source, "skipped", 0) for d in (self.train, self.extra) if d is not None]
        return {"x": x, "y": y.long(), "skipped": sum(after) - sum(sources), "error": None}

    def __len__(self) -> int:  # a batch sampler drives it; the length is not used
        return len(self.train)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(local_world: int = 1) -> int:
    """Loader worker processes per training process: the cores left over, at most 8."""
    return max(0, min(8, available_cores() // max(1, local_world) - 1))
