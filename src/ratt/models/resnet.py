"""ResNet-18 and PreAct ResNet-18 in their CIFAR form (3x3 stem, no max-pool)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ratt.models.base import MODELS


class BasicBlock(nn.Module):
    """Post-activation residual block (He et al. 2016a)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016b)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class ResNet(nn.Module):
    """Four stages of ``blocks`` blocks (64, 128, 256, 512 channels), global average pool."""

    def __init__(
        self, block: type[nn.Module], blocks: list[int], num_classes: int, in_channels: int, preact: bool
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.preact = preact
        self.stem_bn = nn.Identity() if preact else nn.BatchNorm2d(64)
        stages, cin = [], 64
        for i, (width, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            for j in range(count):
                stages.append(block(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
        self.stages = nn.Sequential(*stages)
        self.final_bn = nn.BatchNorm2d(512) if preact else nn.Identity()
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.stem(x)
        if not self.preact:  # post-activation: BN + ReLU after the stem
            out = F.relu(self.stem_bn(out))
        out = self.stages(out)
        if self.preact:  # pre-activation: the last block's output still needs BN + ReLU
            out = F.relu(self.final_bn(out))
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register("resnet18")
def resnet18(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, preact=False)


@MODELS.register("preact_resnet18")
def preact_resnet18(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    return ResNet(PreActBlock, [2, 2, 2, 2], num_classes, in_channels, preact=True)
