"""The wrapper every model shares: input normalization as buffers, an exposed classifier."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ratt.registry import Registry


class NormalizedClassifier(nn.Module):
    """``net((x - mean) / std)`` for inputs in [0, 1].

    The normalization lives inside the model (RobustBench's convention), so attacks and
    the threat model always work in [0, 1] pixel units.

    Attributes:
        net: the architecture; must have a final ``nn.Linear`` named ``classifier``.
        classifier: ``net.classifier``, the last linear layer (C x d) whose input features
            the RAT statistics read.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if not isinstance(getattr(net, "classifier", None), nn.Linear):
            raise TypeError(f"{type(net).__name__} must expose its last nn.Linear as .classifier")
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def classifier(self) -> nn.Linear:
        return self.net.classifier

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> logits (B, num_classes)."""
        return self.net((x - self.mean) / self.std)


ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")


def feature_size(body: nn.Module, in_channels: int, input_size: int) -> int:
    """Number of features ``body`` produces for one (in_channels, input_size, input_size) input."""
    with torch.no_grad():
        was_training = body.training
        body.eval()
        out = body(torch.zeros(1, in_channels, input_size, input_size))
        body.train(was_training)
    return int(out.numel())
