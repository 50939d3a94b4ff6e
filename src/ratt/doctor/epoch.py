"""The ``epoch`` section: one whole training epoch through the real trainer, against the
benchmark's step time.

One epoch of ``epoch_steps`` steps (391 on the GPU: CIFAR-10's 50,000 images at batch 128,
from ``synthetic-cifar10-50k``) of ``epoch_method`` on ``epoch_model`` in bf16 +
channels_last, validation and checkpoints included, timed in parts: the optimizer steps, the
validation, the checkpoint writes, and the rest (batch slicing and augmentation, host-device
copies, logging). The overhead is the epoch's wall time over ``steps x`` the median step of
``ratt bench`` on the same model, batch and method, measured in the same process just before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ratt.bench import BenchConfig, benchmark
from ratt.doctor.result import Sizes
from ratt.doctor.runs import run_config
from ratt.train import Trainer
from ratt.train.checkpointing import run_lock

OVERHEAD_LIMIT = 0.05  # the goal: an epoch within 5 % of its steps


def _timed(parts: dict[str, float], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, adding its wall seconds to ``parts[name]`` and its calls to
    ``parts[name + " calls"]``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - start
            parts[f"{name} calls"] = parts.get(f"{name} calls", 0) + 1

    return wrapper


def _bench_step(sizes: Sizes) -> float:
    """Median seconds of one benchmark step of the epoch's method, model and batch."""
    config = BenchConfig(
        methods=[sizes.epoch_method], model=sizes.epoch_model, batch=sizes.epoch_batch,
        steps=sizes.epoch_attack_steps, device=sizes.device, repeats=sizes.bench_repeats,
        warmup=sizes.bench_warmup, precision="bf16", channels_last=True,
    )  # fmt: skip
    return benchmark(config, memory=False, progress=False)["time"][sizes.epoch_method]["seconds"]


def time_epoch(sizes: Sizes, work: Path) -> dict[str, Any]:
    """Train one epoch and split its wall time (seconds): steps, validation, checkpoints, rest."""
    config = run_config(
        sizes, sizes.device, sizes.epoch_steps, 1, f"data.name={sizes.epoch_data}",
        f"model.name={sizes.epoch_model}", f"method.name={sizes.epoch_method}",
        f"data.batch_size={sizes.epoch_batch}", f"data.train_limit={sizes.epoch_batch * sizes.epoch_steps}",
        f"attack.steps={sizes.epoch_attack_steps}", "run.precision=bf16", "run.channels_last=true",
        "run.deterministic=false", "run.val_every=1",
    )  # fmt: skip
    trainer = Trainer(config, work / "epoch")
    parts: dict[str, float] = {}
    for name, attribute in (("steps", "step"), ("validation", "validate"), ("checkpoints", "save_last"),
                            ("checkpoints", "_save_weights"), ("final test", "finish")):  # fmt: skip
        owner = trainer.setup if attribute == "step" else trainer
        setattr(owner, attribute, _timed(parts, name, getattr(owner, attribute)))
    try:
        with run_lock(work / "epoch"):
            start = time.perf_counter()
            trainer.train_and_test()
            total = time.perf_counter() - start
    finally:
        trainer.close()
    calls = {name: int(parts.pop(name)) for name in [k for k in parts if k.endswith(" calls")]}
    wall = total - parts.pop("final test")  # the epoch: everything but the run's final test
    parts["rest"] = wall - sum(parts.values())
    return {"wall": wall, "parts": parts, "steps": calls["steps calls"]}


def check_epoch(sizes: Sizes, work: Path) -> tuple[str, dict[str, Any]]:
    """One row: the epoch's overhead over its steps at the benchmark's speed, and its parts."""
    step = _bench_step(sizes)
    epoch = time_epoch(sizes, work)
    ideal = epoch["steps"] * step
    overhead = epoch["wall"] / ideal - 1
    data = {**epoch, "bench_step": step, "ideal": ideal, "overhead": overhead,
            "model": sizes.epoch_model, "method": sizes.epoch_method, "batch": sizes.epoch_batch}  # fmt: skip
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in epoch["parts"].items())
    detail = (
        f"{epoch['steps']} steps in {epoch['wall']:.1f} s ({parts}); {overhead:+.1%} over "
        f"{epoch['steps']} x the bench step ({step * 1e3:.0f} ms)"
    )
    return detail, data
