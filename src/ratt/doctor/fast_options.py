"""Are the speed options exact? Fused SGD (``optim.fused``) and CUDA-graph compilation
(``run.compile_mode=reduce-overhead``) against the eager step: the weights after a few
seeded TRADES steps in bf16 + channels_last, deterministic kernels, relative to the largest
weight. An option may become a CUDA default only if it stays within :data:`BF16_RTOL` here
and is faster in the ``bench`` section (``bf16+cl+fused``, ``bf16+cl+compile-ro``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ratt.bench import BenchConfig
from ratt.bench.steps import make_step
from ratt.core.env import configure_runtime
from ratt.doctor.result import Sizes, compile_backend

STEPS = 3
BF16_RTOL = 2.0**-8  # bf16's relative precision: one rounding step of the largest weight
OPTIONS = {"fused SGD": {"fused": True}, "compile reduce-overhead": {"compile": True,
           "compile_mode": "reduce-overhead"}}  # fmt: skip


def weights_after(sizes: Sizes, **options: Any) -> dict[str, torch.Tensor]:
    """The check model's weights after :data:`STEPS` seeded TRADES steps with ``options``
    (:class:`~ratt.bench.BenchConfig` fields), on the CPU."""
    config = BenchConfig(
        methods=["trades"], model=sizes.check_model, batch=sizes.check_batch, steps=sizes.check_steps,
        device=sizes.device, precision="bf16", channels_last=True, **options,
    )  # fmt: skip
    backend = compile_backend(sizes.compile_backend) if options.get("compile") else contextlib.nullcontext()
    with backend:
        step, x, y = make_step(config, "trades", torch.device(sizes.device))
        torch.manual_seed(1)
        for _ in range(STEPS):
            assert step(x, y).finite, f"{options}: non-finite loss"
    return {k: v.detach().float().cpu().clone() for k, v in step.model.state_dict().items()}


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """max |a - b| over every floating tensor, over the largest |a|."""
    keys = [k for k in a if a[k].is_floating_point() and a[k].numel()]
    scale = max(float(a[k].abs().max()) for k in keys)
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in keys) / scale


def check_fast_options(sizes: Sizes) -> tuple[str, dict[str, Any]]:
    """One row: each option's relative weight difference to eager, within :data:`BF16_RTOL`."""
    configure_runtime(deterministic=True)
    eager = weights_after(sizes)
    data = {
        name: relative_difference(eager, weights_after(sizes, **options)) for name, options in OPTIONS.items()
    }
    data["tolerance"] = BF16_RTOL
    over = [f"{name} {diff:.2g}" for name, diff in data.items() if name != "tolerance" and diff > BF16_RTOL]
    assert not over, f"differ from eager by more than {BF16_RTOL:.2g} (relative): {', '.join(over)}"
    detail = ", ".join(f"{name} {data[name]:.2g}" for name in OPTIONS)
    return f"{STEPS} TRADES steps vs eager, relative to the largest weight: {detail}", data
