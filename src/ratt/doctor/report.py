"""The doctor's one table (text or Markdown) and its JSON document."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch

from ratt.core.env import versions
from ratt.core.table import markdown_table, text_table
from ratt.doctor.result import STATUSES, CheckResult, Sizes

HEADER = [
    "section",
    "check",
    "status",
    "s/step",
    "img/s",
    "TFLOP/s",
    "step MiB",
    "× trades",
    "wall s",
    "detail",
]
RIGHT = [False, False, False, True, True, True, True, True, True, False]
FORMAT = "ratt-doctor-1"


def _bench_rows(result: CheckResult) -> list[list[str]]:
    """One line per method of a bench cell; the first carries status, wall time and detail."""
    rows = []
    timing, memory = result.data["time"], result.data.get("memory", {})
    for index, (method, row) in enumerate(timing.items()):
        mem = memory.get(method, {})
        first = index == 0
        rows.append([
            result.section, f"{result.name} {method}", result.status if first else "",
            f"{row['seconds']:.3f}", f"{row['images_per_second']:.0f}",
            f"{row['tflops_per_second']:.3g}" if "tflops_per_second" in row else "-",
            f"{mem['step_bytes'] / 2**20:.0f}" if "step_bytes" in mem else "-",
            f"{row['seconds_ratio']:.3f}" if "seconds_ratio" in row else "-",
            f"{result.seconds:.1f}" if first else "", result.detail if first else "",
        ])  # fmt: skip
    return rows


def table_rows(results: Sequence[CheckResult]) -> list[list[str]]:
    """The table's rows: bench cells expanded to one line per method, checks one line each."""
    rows = []
    for result in results:
        if result.section == "bench" and "time" in result.data:
            rows.extend(_bench_rows(result))
        else:
            blank = ["-"] * 5
            rows.append(
                [result.section, result.name, result.status, *blank, f"{result.seconds:.1f}", result.detail]
            )
    return rows


def format_table(results: Sequence[CheckResult]) -> str:
    """The plain-text table ``ratt doctor`` prints."""
    return text_table(HEADER, table_rows(results), right=RIGHT)


def format_markdown(results: Sequence[CheckResult]) -> str:
    """The same table in Markdown (for benchmarks/README.md)."""
    rows = [[cell.replace("|", "\\|") for cell in row] for row in table_rows(results)]
    return markdown_table(HEADER, rows)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and device facts that decide the numbers: torch, CUDA, cuDNN, NCCL, GPU, TF32."""
    env: dict[str, Any] = dict(versions(device))
    env["machine"] = platform.machine()
    env["cpu_threads"] = torch.get_num_threads()
    env["cuda_available"] = torch.cuda.is_available()
    env["cuda"] = torch.version.cuda
    env["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    env["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    env["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    env["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["gpu_capability"] = f"{props.major}.{props.minor}"
        env["gpu_count"] = torch.cuda.device_count()
        env["nccl"] = nccl_version()
    return env


def nccl_version() -> str | None:
    """The NCCL version torch was built with (None where it has none)."""
    try:
        version = torch.cuda.nccl.version()
    except Exception:  # no NCCL in this build
        return None
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def document(
    results: Sequence[CheckResult], sizes: Sizes, env: dict[str, Any], dry_run: bool, seconds: float
) -> dict[str, Any]:
    """The JSON document: format, verdict, counts per status, environment, sizes, every row
    (with its measured data) and the RAT/TRADES ratio of every bench cell."""
    counts = {status: sum(r.status == status for r in results) for status in STATUSES}
    bench = {
        r.name: r.data["ratios"] for r in results if r.section == "bench" and "ratios" in r.data
    }  # fmt: skip
    return {
        "format": FORMAT,
        "dry_run": dry_run,
        "ok": all(r.ok for r in results),
        "counts": counts,
        "seconds": seconds,
        "environment": env,
        "sizes": asdict(sizes),
        "results": [asdict(r) for r in results],
        "rat_trades_ratios": bench,
    }
