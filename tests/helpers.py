"""Small models and trained fixtures shared by tests."""

from __future__ import annotations

import functools

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
