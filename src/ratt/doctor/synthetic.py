"""CIFAR-shaped synthetic data: no download, no files, the same bytes on every machine.

Each class ``c`` has a fixed template ``T_c`` of random signs (3 x 32 x 32); an image of class
``c`` is ``clip(0.5 + 0.05 T_c + 0.15 noise, 0, 1)`` stored as uint8, as CIFAR is. The task
is learnable (a linear read-out of the templates separates the classes), so a training run
on it moves the loss like a real one, and :func:`template_classifier` gives a model with high
clean accuracy whose robustness at ``eps = 0.05`` is partial (AutoAttack has work to do).

The data itself is the registered dataset ``synthetic-cifar10`` (:mod:`ratt.data.synthetic`);
this module adds batches for the checks and the template read-out model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ratt.data.synthetic import CLASSES, NAME, SEED, SHAPE, make_split, templates

__all__ = [
    "CLASSES",
    "NAME",
    "SHAPE",
    "TemplateClassifier",
    "make_split",
    "synthetic_batch",
    "template_classifier",
    "templates",
]


def synthetic_batch(n: int, device: torch.device | str = "cpu", seed: int = 0) -> tuple[Tensor, Tensor]:
    """A float batch in [0, 1]: (n, 3, 32, 32) images and (n,) labels on ``device``."""
    images, labels = make_split(n, SEED + 100 + seed)
    return images.float().div_(255).to(device), labels.to(device)


class TemplateClassifier(nn.Module):
    """Linear read-out ``z_c = <T_c, x - 0.5>`` of the class templates (a ``classifier`` like
    every ratt model). Clean accuracy on :func:`synthetic_batch` is about 100 %."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(SHAPE[0] * SHAPE[1] * SHAPE[2], CLASSES)
        with torch.no_grad():
            t = templates().flatten(1)
            self.classifier.weight.copy_(t / t.shape[1] * 100)
            self.classifier.bias.copy_(-0.5 * self.classifier.weight.sum(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(x.flatten(1))


def template_classifier(device: torch.device | str = "cpu") -> TemplateClassifier:
    """:class:`TemplateClassifier` on ``device`` in eval mode."""
    return TemplateClassifier().to(device).eval()
