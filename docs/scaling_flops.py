"""FLOPs of one forward pass (conv + linear layers, hooks) and per training step of each method.

Run: ``python docs/scaling_flops.py`` (prints the tables in docs/scaling.md).
"""

from __future__ import annotations

import torch
from torch import nn

from ratt.models import create_model


def forward_flops(model: nn.Module, shape: tuple[int, int, int]) -> int:
    """FLOPs (2 per multiply-add) of convolutions and linear layers for one input of ``shape``."""
    total = [0]

    def conv(mod: nn.Conv2d, inp, out) -> None:
        kh, kw = mod.kernel_size
        total[0] += 2 * out.numel() * (mod.in_channels // mod.groups) * kh * kw

    def linear(mod: nn.Linear, inp, out) -> None:
        total[0] += 2 * out.numel() * mod.in_features

    handles = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for handle in handles:
        handle.remove()
    return total[0]


def passes(method: str, k: int) -> float:
    """Cost of one step in forward-pass units F: a forward is 1F, an input-only backward
    (attack) 1F, a full backward (input + weight gradients) 2F."""
    attack = 2 * k
    if method in ("trades", "rat_trades"):  # p_clean forward + K fwd/bwd + 2 forwards + backward of both
        cost = 1 + attack + 2 + 4
    elif method == "pgd_at":  # K fwd/bwd + 1 forward + backward
        cost = attack + 1 + 2
    else:
        raise ValueError(method)
    return cost


METHODS = {
    "trades": passes("trades", 10),
    "rat_trades": passes("rat_trades", 10),
    "awp+trades": passes("trades", 10) + 2 + 4,  # proxy: 2 forwards (x, x_adv) + full backward
    "awp+rat_trades": passes("rat_trades", 10) + 2 + 4,
    "pgd_at": passes("pgd_at", 10),
}

if __name__ == "__main__":
    steps = -(-50_000 // 128)
    for name in ("preact_resnet18", "wrn-34-10"):
        f = forward_flops(create_model(name, 10, (3, 32, 32)), (3, 32, 32))
        print(f"{name}: {f / 1e9:.3f} GFLOPs per image forward")
        for method, units in METHODS.items():
            step = units * f * 128
            print(
                f"  {method:<15} {units:>4.0f} F  {step / 1e12:8.2f} TFLOP/step  "
                f"{step * steps / 1e15:8.2f} PFLOP/epoch  "
                + "  ".join(f"{step * steps / (tput * 1e12):7.1f} s @{tput}" for tput in (989, 400, 312))
            )
