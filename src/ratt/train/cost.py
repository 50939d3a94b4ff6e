"""What a training run cost, for ``summary.json``'s ``cost``: forward units per step from the
pass-count model (:mod:`ratt.methods.cost`), steps taken, wall and device seconds."""

from __future__ import annotations

from typing import Any

from ratt.eval.overfitting import flagged_epoch
from ratt.methods.cost import has_flop_model, step_passes


def run_cost(
    method: Any, *, attack_steps: int, steps: int, batch_size: int, train_seconds: float,
    wall_seconds: float, devices: int,
) -> dict[str, Any]:  # fmt: skip
    """The cost record of a run of ``method`` (a ``MethodConfig``).

    Args:
        attack_steps: K of the training threat model (ignored by the single-step methods).
        steps: optimizer steps taken; batch_size: images per (global) step.
        train_seconds: wall time of the training steps (validation and test excluded), summed
            over the run's sessions when it was resumed.
        wall_seconds: wall time of this session from start to summary (validation and test
            included; a resumed run's earlier sessions are not in it).
        devices: processes (one device each) that trained in parallel.
    Returns:
        ``forward_units_per_step`` (None for a method without a cost model), ``forward_units``
        (per step times steps: forwards of one batch), ``image_forward_units`` (times the batch
        size), ``steps``, ``batch_size``, ``train_seconds``, ``wall_seconds``, ``devices`` and
        ``device_seconds`` (train_seconds x devices).
    """
    units = None
    if has_flop_model(method.name):
        passes = step_passes(
            method.name, attack_steps, method.mc_samples, numerics=method.numerics, taylor=method.taylor
        )
        units = passes.units
    return {
        "forward_units_per_step": units,
        "forward_units": None if units is None else units * steps,
        "image_forward_units": None if units is None else units * steps * batch_size,
        "steps": steps,
        "batch_size": batch_size,
        "train_seconds": train_seconds,
        "wall_seconds": wall_seconds,
        "devices": devices,
        "device_seconds": train_seconds * devices,
    }


def summary_fields(
    config: Any, metrics_lines: list[str] | None, *, epochs_done: int, steps_per_epoch: int,
    attack_steps: int, train_seconds: float, wall_seconds: float, devices: int,
) -> dict[str, Any]:  # fmt: skip
    """summary.json's ``catastrophic_overfitting`` (the flagged epoch, or None), ``stopped``
    (why the run ended before ``optim.epochs``, or None) and ``cost`` (:func:`run_cost`) for a
    run of ``config`` (a ``TrainConfig``) whose metrics rows are ``metrics_lines``."""
    epoch = flagged_epoch(metrics_lines)
    stopped = None
    if config.run.on_co == "stop" and epoch is not None and epochs_done < config.optim.epochs:
        stopped = f"catastrophic overfitting at epoch {epoch} (run.on_co=stop)"
    steps = epochs_done * steps_per_epoch
    if config.run.max_steps is not None:
        steps = min(steps, config.run.max_steps)
    cost = run_cost(
        config.method, attack_steps=attack_steps, steps=steps, batch_size=config.data.batch_size,
        train_seconds=train_seconds, wall_seconds=wall_seconds, devices=devices,
    )  # fmt: skip
    return {"catastrophic_overfitting": epoch, "stopped": stopped, "cost": cost}
