"""The wrapper every model shares: input normalization as buffers, an exposed classifier."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ratt.registry import Registry


class Normalized(nn.Module):
    """``net((x - mean) / std)``: any model taking normalized inputs, made to take [0, 1] ones.

    The normalization lives inside the model as buffers (RobustBench's convention), so the
    attacks and the threat model always work in [0, 1] pixel units.

    Args:
        net: the model (e.g. a timm or torchvision network trained on normalized inputs).
        mean, std: per-channel statistics (C values each).

    Example:
        >>> model = Normalized(torchvision.models.resnet18(num_classes=10), (0.49, 0.48, 0.45), (0.25,) * 3)
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> logits (B, num_classes)."""
        return self.net((x - self.mean) / self.std)


class NormalizedClassifier(Normalized):
    """A registry architecture with its normalization inside and its last layer exposed.

    Attributes:
        net: the architecture; must have a final ``nn.Linear`` named ``classifier``.
        classifier: ``net.classifier``, the last linear layer (C x d) whose input features
            the RAT statistics read.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        if not isinstance(getattr(net, "classifier", None), nn.Linear):
            raise TypeError(f"{type(net).__name__} must expose its last nn.Linear as .classifier")
        super().__init__(net, mean, std)

    @property
    def classifier(self) -> nn.Linear:
        return self.net.classifier


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
