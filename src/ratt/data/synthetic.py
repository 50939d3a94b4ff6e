"""``synthetic-cifar10``: CIFAR-shaped data made from a seed — no download, no files, the same
bytes on every machine (``ratt doctor`` trains and benchmarks on it).

Each class ``c`` has a fixed template ``T_c`` of random signs (3 x 32 x 32); an image of class
``c`` is ``clip(0.5 + 0.05 T_c + 0.15 noise, 0, 1)`` stored as uint8, as CIFAR is. The task is
learnable (a linear read-out of the templates separates the classes).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ratt.data.base import DATASETS, DatasetInfo, DatasetSource

NAME = "synthetic-cifar10"
SHAPE = (3, 32, 32)
CLASSES = 10
TRAIN, TEST, VAL = 12_800 + 512, 512, 512
AMPLITUDE, NOISE = 0.05, 0.15
SEED = 20_240_617
INFO = DatasetInfo(NAME, SHAPE, CLASSES, 8 / 255, 2 / 255, 10, "crop_flip", (0.5,) * 3, (0.25,) * 3, VAL)


def templates() -> Tensor:
    """(10, 3, 32, 32) float32 class templates with entries +-1."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.randint(0, 2, (CLASSES, *SHAPE), generator=generator).float().mul_(2).sub_(1)


def make_split(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` images (N, 3, 32, 32) uint8 and labels (N,) int64, balanced-ish, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    images = torch.randn(n, *SHAPE, generator=generator).mul_(NOISE)
    images.add_(templates()[labels], alpha=AMPLITUDE).add_(0.5)
    return images.clamp_(0, 1).mul_(255).round_().to(torch.uint8), labels


def _read(root, download: bool = True):
    return make_split(TRAIN, SEED + 1), make_split(TEST, SEED + 2)


def _read_large(root, download: bool = True):
    return make_split(LARGE_TRAIN, SEED + 3), make_split(TEST, SEED + 2)


DATASETS.register(NAME)(DatasetSource(INFO, _read))
# CIFAR-10's size (50,000 training images: 391 steps at batch 128), for `ratt doctor`'s epoch
LARGE_NAME, LARGE_TRAIN = f"{NAME}-50k", 50_000 + 512
DATASETS.register(LARGE_NAME)(DatasetSource(dataclasses.replace(INFO, name=LARGE_NAME), _read_large))
