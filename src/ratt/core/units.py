"""Radii and step sizes in [0, 1] pixel units, written as ``8/255`` or ``0.031``."""

from __future__ import annotations

import math
from fractions import Fraction

from ratt.errors import UserError


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


def magnitude_note(value: float | int | str, name: str = "eps") -> str:
    """How ``value`` was read, in both units: ``eps=8/255 -> 0.0313725 (8/255)``,
    ``eps=0.031 -> 0.031 (7.9/255)``."""
    number = parse_magnitude(value, name)
    return f"{name}={value} -> {number:.6g} ({pixels(number)})"


def pixels(value: float) -> str:
    """``value`` in 1/255 units: ``8/255`` or ``7.9/255``."""
    count = value * 255
    if abs(count - round(count)) < 1e-6:
        return f"{round(count)}/255"
    return f"{count:.3g}/255"


def as_fraction(value: float) -> str:
    """``8/255 (0.0314)`` for whole pixel counts, else the decimal (``0.2``)."""
    count = value * 255
    if abs(count - round(count)) < 1e-6 and value > 0:
        return f"{round(count)}/255 ({value:.4f})"
    return f"{value:g}"
