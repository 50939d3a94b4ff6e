"""The threat model shared by training attacks and evaluation."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from fractions import Fraction

from ratt.errors import UserError

log = logging.getLogger(__name__)


def parse_magnitude(value: float | int | str, name: str = "eps") -> float:
    """Turn ``8/255``, ``"0.031"`` or ``0.2`` into a float in input units ([0, 1] pixels).

    Values above 1 on a [0, 1] image are almost always pixel units (``8`` meaning 8/255):
    those raise a ``UserError`` that says so instead of silently attacking the whole image.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise UserError(f"{name}={value!r} is not a number (write e.g. 8/255 or 0.031)") from None
    else:
        number = float(value)
    if not math.isfinite(number) or number < 0:
        raise UserError(f"{name}={value!r} must be a finite number >= 0")
    if number > 1:
        raise UserError(
            f"{name}={value!r} is larger than the [0, 1] pixel range; for pixel units write {value}/255"
        )
    return number


@dataclass(frozen=True)
class ThreatModel:
    """An L-p ball around each input and the attack budget used to search it.

    Attributes:
        norm: ``"linf"`` or ``"l2"``.
        eps: radius in [0, 1] pixel units (8/255 = 0.0314 for CIFAR).
        step: step size of iterative attacks, same units.
        steps: number of iterations.
        random_start: start from a uniform point in the ball (PGD) instead of x.
        restarts: independent restarts; the per-point worst case is kept.
    """

    norm: str = "linf"
    eps: float = 8 / 255
    step: float = 2 / 255
    steps: int = 10
    random_start: bool = True
    restarts: int = 1

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise UserError(f"norm={self.norm!r}: use 'linf' or 'l2'")
        if self.eps < 0 or self.step < 0:
            raise UserError(f"eps and step must be >= 0, got eps={self.eps}, step={self.step}")
        if self.steps < 0 or self.restarts < 1:
            raise UserError(f"steps must be >= 0 and restarts >= 1 (got {self.steps}, {self.restarts})")

    def with_steps(self, steps: int) -> ThreatModel:
        """The same ball searched with ``steps`` iterations."""
        return replace(self, steps=steps)

    def describe(self) -> str:
        """Short human form, e.g. ``linf eps=8/255 (0.0314) step=2/255 x10``."""
        return f"{self.norm} eps={_as_fraction(self.eps)} step={_as_fraction(self.step)} x{self.steps}"


def _as_fraction(value: float) -> str:
    pixels = value * 255
    if abs(pixels - round(pixels)) < 1e-6 and value > 0:
        return f"{round(pixels)}/255 ({value:.4f})"
    return f"{value:g}"
