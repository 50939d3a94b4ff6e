"""Reader for the IDX format of (Fashion-)MNIST, plain or gzip-compressed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ratt.errors import UserError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> Tensor:
    """Read one IDX file (``.gz`` or raw) into a tensor of the stored shape.

    The header is two zero bytes, a type code, the number of dimensions, then each
    dimension as a big-endian uint32. Raises ``UserError`` on a malformed file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated (header)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - header != count * dtype.itemsize:
        raise UserError(
            f"{path} is truncated or corrupt: header says {dims}, found {len(raw) - header} data bytes"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("="), copy=True))


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def find_idx_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    """The four MNIST-layout files in ``folder`` (``.gz`` or not), or None if any is missing."""
    found: dict[str, tuple[Path, Path]] = {}
    for split, stems in MNIST_FILES.items():
        pair = []
        for stem in stems:
            candidates = [folder / f"{stem}.gz", folder / stem]
            hit = next((c for c in candidates if c.is_file()), None)
            if hit is None:
                return None
            pair.append(hit)
        found[split] = (pair[0], pair[1])
    return found


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[Tensor, Tensor]:
    """(N, 1, H, W) uint8 images and (N,) int64 labels from an images/labels IDX pair."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise UserError(
            f"{images_path} and {labels_path} do not match: {tuple(images.shape)} images, "
            f"{tuple(labels.shape)} labels"
        )
    return images.unsqueeze(1).to(torch.uint8), labels.long()
