"""The ``profile`` section: where a training step's time goes, under ``torch.profiler``.

For each method (TRADES and RAT-TRADES) a few warm steps of the benchmark's step
(:func:`ratt.bench.steps.make_step`, the trainer's ``TrainStep``) are profiled and the wall
time of the profiled steps is split into:

- ``matmul/conv``: GEMM and convolution kernels (cuBLAS, cuDNN, CUTLASS; on the CPU the
  ``aten`` convolution and matrix-product ops);
- ``norm/elementwise``: normalization, activations, reductions, copies and the other
  memory-bound kernels;
- ``other``: kernels of neither kind;
- ``idle``: the rest of the wall time, when the device ran no kernel (launch overhead,
  Python, synchronization; on the CPU: time outside ``aten`` ops).

These four add up to the wall time. ``optimizer`` is reported beside them (its kernels are
counted in their categories above): the device time under ``Optimizer.step``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from ratt.bench import BenchConfig
from ratt.bench.steps import make_step
from ratt.core.env import synchronize
from ratt.doctor.result import Sizes

CATEGORIES = ("matmul/conv", "norm/elementwise", "other", "idle")
METHODS = ("trades", "rat_trades")
_NORM = ("norm", "bn_fw", "bn_bw", "batch_norm")
_MATMUL = ("gemm", "conv", "xmma", "cutlass", "addmm", "aten::mm", "aten::bmm", "matmul", "dgrad", "wgrad",
           "fprop", "implicit", "cudnn", "sm80_", "sm90_", "cublas")  # fmt: skip
_ELEMENTWISE = ("elementwise", "vectorized", "reduce", "add", "mul", "copy", "fill", "relu", "threshold",
                "clamp", "sign", "softmax", "nll", "where", "foreach", "multi_tensor", "index", "cat", "sub",
                "div", "neg", "exp", "log", "sum", "mean", "max", "min", "pow", "sqrt", "zero", "uniform",
                "normal", "random", "bernoulli", "transpose", "permute", "contiguous", "nchw",
                "nhwc")  # fmt: skip


def kernel_category(name: str) -> str:
    """``matmul/conv``, ``norm/elementwise`` or ``other`` for a kernel (or ``aten`` op) name;
    normalization first, since cuDNN's BatchNorm kernels carry ``cudnn`` in their names."""
    lowered = name.lower()
    if any(key in lowered for key in _NORM):
        return "norm/elementwise"
    if any(key in lowered for key in _MATMUL):
        return "matmul/conv"
    if any(key in lowered for key in _ELEMENTWISE):
        return "norm/elementwise"
    return "other"


def _busy(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals."""
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi <= end:
            continue
        total += hi - max(lo, end)
        end = hi
    return total


def split_time(events: list[Any], wall_us: float, device: torch.device) -> dict[str, float]:
    """Microseconds per :data:`CATEGORIES` (summing to ``wall_us``) and ``optimizer``.

    On CUDA the work is the device's events (kernels, copies): categories by kernel name,
    busy time as the union of their intervals (scaled onto the categories when streams
    overlap); on the CPU the work is every ``aten`` op's self time.
    """
    spent = dict.fromkeys(CATEGORIES, 0.0)
    if device.type == "cuda":
        work = [e for e in events if e.device_type == DeviceType.CUDA]
        for event in work:
            spent[kernel_category(event.name)] += event.time_range.elapsed_us()
        busy = _busy([(e.time_range.start, e.time_range.end) for e in work])
        optimizer = sum(e.device_time_total for e in events if e.name.startswith("Optimizer.step"))
    else:
        for event in events:
            if event.device_type == DeviceType.CPU and event.name.startswith("aten::"):
                spent[kernel_category(event.name)] += event.self_cpu_time_total
        busy = sum(spent.values())
        optimizer = sum(e.cpu_time_total for e in events if e.name.startswith("Optimizer.step"))
    busy = min(busy, wall_us)
    counted = sum(spent.values())
    scale = busy / counted if counted else 0.0  # overlapping streams: kernel time > busy time
    out = {name: spent[name] * scale for name in CATEGORIES[:-1]}
    out["idle"] = wall_us - busy
    out["optimizer"] = min(optimizer, wall_us)
    return out


def profile_method(sizes: Sizes, method: str) -> dict[str, Any]:
    """Profile ``sizes.profile_steps`` steps of ``method`` after warm-up: fractions of the
    wall time per category, the optimizer's share, seconds per step."""
    device = torch.device(sizes.device)
    config = BenchConfig(
        methods=[method], model=sizes.profile_model, batch=sizes.profile_batch, steps=sizes.bench_steps,
        device=sizes.device, precision="bf16", channels_last=True,
    )  # fmt: skip
    step, x, y = make_step(config, method, device)
    for _ in range(sizes.bench_warmup):
        step(x, y)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(sizes.profile_steps):
            step(x, y)
        synchronize(device)
        wall_us = (time.perf_counter() - start) * 1e6
    split = split_time(list(prof.events()), wall_us, device)
    fractions = {name: value / wall_us for name, value in split.items()}
    return {"method": method, "seconds_per_step": wall_us / 1e6 / sizes.profile_steps, "fraction": fractions}


def check_profile(sizes: Sizes, method: str) -> tuple[str, dict[str, Any]]:
    """One row: the split of one method's step (fractions add up to 1)."""
    data = profile_method(sizes, method)
    parts = data["fraction"]
    total = sum(parts[name] for name in CATEGORIES)
    assert abs(total - 1) < 1e-6 and all(0 <= parts[n] <= 1 for n in parts), f"fractions {parts}"
    detail = ", ".join(f"{name} {parts[name]:.0%}" for name in CATEGORIES)
    data.update(model=sizes.profile_model, batch=sizes.profile_batch, precision="bf16+cl")
    return (
        f"{detail} (optimizer {parts['optimizer']:.0%}); {data['seconds_per_step'] * 1e3:.0f} ms/step",
        data,
    )
