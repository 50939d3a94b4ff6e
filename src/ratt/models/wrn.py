"""Wide ResNets, ``wrn-D-W`` (Zagoruyko & Komodakis 2016), as used by TRADES/AWP/RAT."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ratt.errors import UserError
from ratt.models.base import MODELS


class WideBlock(nn.Module):
    """Pre-activation wide block; the shortcut branches off the activated input on width change."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = dropout
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        skip = self.shortcut(act) if self.shortcut is not None else x
        out = F.relu(self.bn2(self.conv1(act)))
        if self.dropout > 0:
            out = F.dropout(out, self.dropout, self.training)
        out = self.conv2(out)
        return out + skip


class WideResNet(nn.Module):
    """WRN with depth ``D`` = 6n + 4 and widen factor ``W``: stages of 16W, 32W, 64W channels."""

    def __init__(
        self, depth: int, widen: int, num_classes: int, in_channels: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise UserError(f"wrn depth must be 6n+4 (10, 16, 28, 34, ...), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for stage, width in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(WideBlock(cin, width, 2 if (stage > 0 and j == 0) else 1, dropout))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = nn.BatchNorm2d(cin)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.final_bn(self.blocks(self.stem(x))))
        return self.classifier(F.adaptive_avg_pool2d(out, 1).flatten(1))


@MODELS.register_pattern(r"wrn-(\d+)-(\d+)", "wrn-D-W")
def wrn_family(depth: str, widen: str):
    def build(num_classes: int, in_channels: int, input_size: int, dropout: float = 0.0) -> nn.Module:
        return WideResNet(int(depth), int(widen), num_classes, in_channels, dropout)

    return build
