"""FLOPs of one forward pass (conv + linear layers, hooks) and per training step of each method.

Run: ``python docs/scaling_flops.py`` (prints the tables in docs/scaling.md).

The counter and the pass counts are the library's (:mod:`ratt.bench.flops`), the same ones
``ratt bench`` divides by to report achieved TFLOP/s, so the two cannot disagree.
"""

from __future__ import annotations

from ratt.bench.flops import model_forward_flops, step_passes

K = 10  # attack steps
METHODS = {  # ratt's own passes (method.numerics=paper); docs/scaling.md gives code's repeats
    name: step_passes(name, K, numerics="paper").units
    for name in ("trades", "rat_trades", "awp+trades", "awp+rat_trades", "pgd_at")
}

if __name__ == "__main__":
    steps = -(-50_000 // 128)
    for name in ("preact_resnet18", "wrn-34-10"):
        f = model_forward_flops(name, 10, (3, 32, 32))
        print(f"{name}: {f / 1e9:.3f} GFLOPs per image forward")
        for method, units in METHODS.items():
            step = units * f * 128
            print(
                f"  {method:<15} {units:>4.0f} F  {step / 1e12:8.2f} TFLOP/step  "
                f"{step * steps / 1e15:8.2f} PFLOP/epoch  "
                + "  ".join(f"{step * steps / (tput * 1e12):7.1f} s @{tput}" for tput in (989, 400, 312))
            )
