"""SmallCNN: the 4-conv MNIST network of the TRADES paper (Zhang et al. 2019)."""

from __future__ import annotations

from torch import Tensor, nn

from ratt.models.base import MODELS, feature_size


class SmallCNN(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc(C), ReLU; dropout in the head.

    On inputs below 28 pixels the 3x3 convolutions are padded so 8x8 digits still work;
    at 28x28 with ``dropout=0.5`` it is exactly TRADES' network (unpadded, 1024 features).
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, dropout: float = 0.5
    ) -> None:
        super().__init__()
        pad = 0 if input_size >= 28 else 1

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=pad), nn.ReLU()]

        self.features = nn.Sequential(
            *conv(in_channels, 32),
            *conv(32, 32),
            nn.MaxPool2d(2),
            *conv(32, 64),
            *conv(64, 64),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        width = feature_size(self.features, in_channels, input_size)
        self.head = nn.Sequential(
            nn.Linear(width, 200), nn.ReLU(), nn.Dropout(dropout), nn.Linear(200, 200), nn.ReLU()
        )
        self.classifier = nn.Linear(200, num_classes)
        # TRADES' initialization: He-normal convolutions, zero biases, zero last layer. With
        # PyTorch's default init the signal shrinks ~3x per layer and training stalls for
        # epochs on small inputs.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.classifier.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.head(self.features(x)))


@MODELS.register("smallcnn")
def smallcnn(num_classes: int, in_channels: int, input_size: int, dropout: float = 0.0) -> nn.Module:
    return SmallCNN(num_classes, in_channels, input_size, dropout)
