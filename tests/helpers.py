"""Small models and trained fixtures shared by tests."""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ratt import data


class Linear(nn.Module):
    """Logistic regression on flattened inputs, with a ``classifier`` like every ratt model."""

    def __init__(self, shape=(1, 8, 8), num_classes: int = 10) -> None:
        super().__init__()
        self.classifier = nn.Linear(int(torch.tensor(shape).prod()), num_classes)

    def forward(self, x):
        return self.classifier(x.flatten(1))


@functools.lru_cache(maxsize=1)
def trained_linear_digits() -> Linear:
    """Logistic regression fitted on digits (clean accuracy about 0.95); cached."""
    torch.manual_seed(0)
    train = data.load("digits", "train")
    model = Linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x, y = train.images.float(), train.labels
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzip-compressed when the name ends in ``.gz``
    (the (Fashion-)MNIST format ``ratt.data.idx`` reads)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(payload)
