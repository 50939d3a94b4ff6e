"""Parsing helpers shared by the sub-commands."""

from __future__ import annotations

import argparse

from ratt.core.units import parse_magnitude
from ratt.errors import UserError


def comma_list(text: str) -> list[str]:
    """``"a,b,,c"`` -> ``["a", "b", "c"]`` (spaces stripped, empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def floats(text: str, option: str) -> list[float]:
    """A comma list of numbers; ``UserError`` naming ``option`` otherwise."""
    try:
        return [float(v) for v in comma_list(text)]
    except ValueError:
        raise UserError(f"{option} {text!r} must be a comma list of numbers, e.g. 0,0.01,0.05") from None


def magnitudes(text: str, option: str) -> list[float]:
    """A comma list of radii (``8/255`` or ``0.031`` each)."""
    return [parse_magnitude(v, option) for v in comma_list(text)]


TRUST_CODE_HELP = (
    "follow a model spec read from the file or run directory (file.py:fn, package.module:fn), "
    "which imports and runs that code; without it such a spec is refused (a checkpoint is data)"
)


def add_trust_code(parser: argparse.ArgumentParser) -> None:
    """``--trust-code``: run the code a checkpoint's or run directory's model spec names."""
    parser.add_argument("--trust-code", action="store_true", help=TRUST_CODE_HELP)


def add_quiet_json(
    parser: argparse.ArgumentParser, json_help: str = "print one JSON object as the last line"
) -> None:
    """``--quiet`` (no progress bars, warnings only) and ``--json``."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-step lines")
    parser.add_argument("--json", action="store_true", help=json_help)
