"""``ratt bench`` over the issue's matrix: each model x {fp32, bf16, bf16 + channels_last,
bf16 + channels_last + fused SGD, bf16 + channels_last + compile, the same compiled with
CUDA graphs (``reduce-overhead``)}, the four methods interleaved in each cell."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from ratt.bench import BenchConfig, benchmark
from ratt.doctor.result import CheckResult, CheckWarning, Sizes, compile_backend, run_check

# (label, precision, channels_last, compile, compile mode, fused SGD)
VARIANTS = (
    ("fp32", "fp32", False, False, "default", False),
    ("bf16", "bf16", False, False, "default", False),
    ("bf16+cl", "bf16", True, False, "default", False),
    ("bf16+cl+fused", "bf16", True, False, "default", True),
    ("bf16+cl+compile", "bf16", True, True, "default", False),
    ("bf16+cl+compile-ro", "bf16", True, True, "reduce-overhead", False),
)
RATIOS = (("rat_trades", "trades"), ("awp+rat_trades", "awp+trades"))


def ratios(timing: dict[str, dict[str, float]]) -> dict[str, float]:
    """``A/B`` seconds-per-step ratios of :data:`RATIOS` present in ``timing``."""
    return {
        f"{a}/{b}": timing[a]["seconds"] / timing[b]["seconds"]
        for a, b in RATIOS
        if a in timing and b in timing
    }


def bench_cell(
    sizes: Sizes, model: str, batch: int, variant: tuple[str, str, bool, bool, str, bool]
) -> tuple[str, dict]:
    """Benchmark one (model, variant) cell; a compile fallback is a warning."""
    label, precision, channels_last, compiled, mode, fused = variant
    config = BenchConfig(
        methods=list(sizes.bench_methods), model=model, batch=batch, steps=sizes.bench_steps,
        device=sizes.device, repeats=sizes.bench_repeats, warmup=sizes.bench_warmup + (1 if compiled else 0),
        precision=precision, channels_last=channels_last, compile=compiled, compile_mode=mode, fused=fused,
    )  # fmt: skip
    backend = compile_backend(sizes.compile_backend) if compiled else contextlib.nullcontext()
    with backend:
        out = benchmark(config, memory=sizes.device != "cpu", progress=False)
    data: dict[str, Any] = {
        "model": model, "batch": batch, "variant": label, "precision": precision,
        "channels_last": channels_last, "compile": compiled, "compile_mode": mode, "fused": fused,
        "time": out["time"], "memory": out["memory"],
        "ratios": ratios(out["time"]),
    }  # fmt: skip
    detail = ", ".join(f"{k} {v:.3f}" for k, v in data["ratios"].items())
    if compiled:
        fell_back = [name for name, row in out["time"].items() if not row.get("compiled", False)]
        data["compile_backend"] = sizes.compile_backend
        if fell_back:
            raise CheckWarning(f"{detail}; torch.compile fell back to eager for {', '.join(fell_back)}", data)
        detail += f"; compiled ({sizes.compile_backend})"
    return detail, data


def bench_matrix(sizes: Sizes, on_row: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """One row per (model, variant) with the four methods' numbers in its data; ``on_row`` is
    called with each row as soon as it is measured. The eager cells of every model come before
    the compiled ones, so a time limit cuts the slow compiles first."""
    rows = []
    cells = [(model, batch, v) for compiled in (False, True) for model, batch in sizes.bench_models
             for v in VARIANTS if v[3] == compiled]  # fmt: skip
    for model, batch, variant in cells:
        name = f"{model} b{batch} {variant[0]}"
        row = run_check("bench", name, lambda m=model, b=batch, v=variant: bench_cell(sizes, m, b, v))
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
