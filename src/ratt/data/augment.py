"""Augmentations on batched tensors, run on the training device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop(images: Tensor, padding: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Pad each side by ``padding`` (zeros) and crop a random window of the original size.

    Args:
        images: (B, C, H, W) floats.
    Returns:
        (B, C, H, W); each image shifted by an independent offset in [-padding, padding]^2.
    """
    b, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dev = images.device
    top = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (b,), device=dev, generator=generator)
    rows = (top[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]
    cols = (left[:, None] + torch.arange(w, device=dev)[None, :])[:, None, None, :]
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chan = torch.arange(images.shape[1], device=dev)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def random_flip(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left-right with probability 1/2. (B, C, H, W) -> same."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(images: Tensor, kind: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply a dataset's augmentation: ``none``, ``crop`` or ``crop_flip``."""
    if kind == "none":
        return images
    if kind in ("crop", "crop_flip"):
        images = random_crop(images, 4, generator)
    if kind == "crop_flip":
        images = random_flip(images, generator)
    if kind not in ("crop", "crop_flip"):
        raise ValueError(f"unknown augmentation {kind!r}")
    return images
