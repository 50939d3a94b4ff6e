"""Checks of ``ratt eval``'s options, each a one-line ``UserError`` (a ``ValueError``) that
names the option as the command line spells it."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from ratt.attacks import parse_attack
from ratt.core.units import parse_magnitude
from ratt.errors import UserError

MAX_SEED = 2**32 - 1
CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def whole_number(value: Any, option: str, low: int, what: str) -> int:
    """``value`` as an int >= ``low`` (bools and fractions refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{option}={value!r}: {what} must be a whole number >= {low}")
    return value


def attack_names(attacks: Any) -> list[str]:
    """The registered names of ``attacks`` (a list of names): at least one, none twice."""
    if isinstance(attacks, str) or not isinstance(attacks, Sequence):
        raise UserError(f"--attacks={attacks!r}: give a list of attack names, e.g. ['clean', 'pgd20']")
    names = [parse_attack(str(a)).name for a in attacks]
    if not names:
        raise UserError("--attacks is empty: name at least one attack, e.g. --attacks clean,pgd20")
    twice = sorted({a for a in names if names.count(a) > 1})
    if twice:
        raise UserError(f"--attacks names {', '.join(twice)} twice: name each attack once")
    return names


def step_size(value: Any) -> float:
    """An attack step, ``8/255`` or ``0.031``: finite, > 0 and <= 1."""
    step = parse_magnitude(value, "--step")
    if step == 0:
        raise UserError("--step=0: the attack would never move; give a step > 0 (e.g. 2/255)")
    return step


def sweep_radii(value: Any) -> str | list[float]:
    """``"auto"`` or a non-empty list of radii (``8/255`` or ``0.031`` each), none twice."""
    if value == "auto":
        return value
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise UserError(f"--eps-sweep={value!r}: give radii, e.g. --eps-sweep 2/255,4/255 (or no value)")
    radii = [parse_magnitude(v, "--eps-sweep") for v in value]
    if len(set(radii)) < len(radii):
        raise UserError(f"--eps-sweep={value!r} repeats a radius")
    return radii


def noise_sigmas(value: Any) -> list[float]:
    """Relative weight-noise sigmas: finite numbers >= 0, none twice (empty: no noise table)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise UserError(f"--weight-noise={value!r}: give a list of sigmas, e.g. --weight-noise 0.01,0.05")
    sigmas = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise UserError(f"--weight-noise: sigma {v!r} must be a finite number >= 0 (e.g. 0.01,0.05)")
        sigmas.append(float(v))
    if len(set(sigmas)) < len(sigmas):
        raise UserError(f"--weight-noise={list(value)!r} repeats a sigma")
    return sigmas


def checkpoint_name(value: Any) -> str | None:
    """None, or the name of a checkpoint in a run's ``checkpoints/`` (``best``, ``last``,
    ``epoch-0010``): letters, digits, ``_.-``, no path."""
    if value is None:
        return None
    if not isinstance(value, str) or not CHECKPOINT_NAME.fullmatch(value):
        raise UserError(f"--checkpoint={value!r}: give a checkpoint name such as best, last or epoch-0010")
    return value
