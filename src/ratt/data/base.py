"""Dataset descriptions and the in-memory tensor dataset every source returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ratt.registry import Registry

SPLITS = ("train", "val", "test")
VAL_SEED = 20230317  # fixed so every run of a dataset holds out the same validation images


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the library needs to know about a dataset.

    Attributes:
        name: registry name.
        shape: (channels, height, width) of one image.
        num_classes: number of labels.
        eps, step, steps: the default L-inf threat model in [0, 1] pixel units.
        augment: ``"none"`` or ``"crop_flip"`` (random crop with 4-pixel padding + flip)
            or ``"crop"`` (crop only: digits in SVHN must not be mirrored).
        mean, std: per-channel normalization applied inside the model.
        val_size: images held out of the training set for checkpoint selection.
        layout: the axis order an ``.npz`` file's images were read in (``nchw``, ``nhwc``,
            ``nhw``; None: not an ``.npz`` file).
    """

    name: str
    shape: tuple[int, int, int]
    num_classes: int
    eps: float
    step: float
    steps: int
    augment: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_size: int
    layout: str | None = None


@dataclass
class TensorDataset(torch.utils.data.Dataset):
    """Images and labels held in memory; unpacks as ``images, labels = data.load(...)``
    (one sample: ``dataset[i]``, floats in [0, 1]).

    Attributes:
        images: (N, C, H, W), uint8 in [0, 255] or float in [0, 1].
        labels: (N,) int64.
        info: the dataset's defaults.
    """

    images: Tensor
    labels: Tensor
    info: DatasetInfo

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return to_float(self.images[index]), self.labels[index]

    def __iter__(self) -> Iterator[Tensor]:
        """``images, labels = dataset``: the two tensors as stored (a DataLoader indexes instead)."""
        return iter((self.images, self.labels))

    def subset(self, index: Tensor) -> TensorDataset:
        """The images at ``index`` (a LongTensor) as a new dataset."""
        return TensorDataset(self.images[index], self.labels[index], self.info)


def to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] or float images -> float32 in [0, 1]."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: its info and ``read(root, download) -> (train, test)`` arrays.

    ``custom`` sources (your own files: ``imagefolder``, ``npz``) describe themselves from
    their files (:func:`ratt.data.info` with ``root``); their ``info`` is a placeholder.
    """

    info: DatasetInfo
    read: Callable[[Path | None, bool], tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]]
    custom: bool = False


DATASETS: Registry[DatasetSource] = Registry("dataset")
