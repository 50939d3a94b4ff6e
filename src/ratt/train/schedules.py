"""Learning-rate schedules as per-iteration multipliers of the base rate."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from ratt.config.sections import SCHEDULES


def lr_multiplier(
    schedule: str, epochs: int, steps_per_epoch: int, milestones: list[float], gamma: float
) -> Callable[[int], float]:
    """A function ``step -> factor`` for ``torch.optim.lr_scheduler.LambdaLR``.

    - ``piecewise``: ``gamma ** k`` once ``k`` milestones (fractions of ``epochs``) have passed,
      changing at epoch boundaries (the paper: 0.1 -> 0.01 -> 0.001 at epochs 100 and 150).
    - ``cosine``: half a cosine from 1 to 0 over all steps.
    - ``onecycle``: linear 0 -> 1 over the first 40% of steps, then linear 1 -> 0.
    - ``constant``: 1.
    """
    total = max(epochs * steps_per_epoch, 1)
    boundaries = sorted(round(m * epochs) for m in milestones)

    def piecewise(step: int) -> float:
        epoch = step // max(steps_per_epoch, 1)
        return gamma ** bisect.bisect_right(boundaries, epoch)

    def cosine(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    def onecycle(step: int) -> float:
        peak = 0.4 * total
        return step / peak if step < peak else max(0.0, (total - step) / (total - peak))

    if schedule == "piecewise":
        return piecewise
    if schedule == "cosine":
        return cosine
    if schedule == "onecycle":
        return onecycle
    if schedule == "constant":
        return lambda step: 1.0
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def with_warmup(multiplier: Callable[[int], float], warmup_steps: int) -> Callable[[int], float]:
    """``multiplier`` times a linear rise ``(step + 1) / warmup_steps`` over the first
    ``warmup_steps`` steps (``multiplier`` itself when 0): the first step trains at a small
    rate, step ``warmup_steps - 1`` and later at the schedule's."""
    if warmup_steps <= 0:
        return multiplier
    return lambda step: multiplier(step) * min(1.0, (step + 1) / warmup_steps)
