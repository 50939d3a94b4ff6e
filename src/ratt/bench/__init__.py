"""Per-step cost of training methods, side by side (``ratt bench``)."""

from __future__ import annotations

from ratt.bench.steps import BenchConfig, bench_methods, benchmark, measure_memory

__all__ = ["BenchConfig", "bench_methods", "benchmark", "measure_memory"]
