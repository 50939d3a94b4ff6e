"""Flatness analysis: loss landscapes along filter-normalized directions, the Hessian
spectrum, loss under weight noise and adversarial weight sharpness, for clean and
adversarial losses.

Example:
    >>> from ratt.flatness import Objective, landscape_1d, hessian_eigenvalues
    >>> clean = Objective(model, x, y)
    >>> adv = Objective(model, x, y, adv="rerun", threat=threat)
    >>> curve = landscape_1d({"clean": clean, "adv": adv}, alphas=[-1, -0.5, 0, 0.5, 1])
    >>> hessian_eigenvalues(clean, k=3)["eigenvalues"]
"""

from __future__ import annotations

from ratt.flatness.cheap import cheap_measures
from ratt.flatness.directions import filter_normalize, random_direction, set_weights
from ratt.flatness.hessian import (
    hessian_eigenvalues,
    hessian_trace,
    hutchinson,
    hvp,
    lanczos,
    power_iteration,
)
from ratt.flatness.landscape import interpolate, landscape_1d, landscape_2d, mix_states
from ratt.flatness.measure import LandscapeOptions, describe, measure_runs, summary_scalars, table_rows
from ratt.flatness.noise import noise_curve, noise_loss
from ratt.flatness.objective import ADV_MODES, Objective
from ratt.flatness.sharpness import awp_sharpness

__all__ = [
    "ADV_MODES",
    "LandscapeOptions",
    "Objective",
    "awp_sharpness",
    "cheap_measures",
    "describe",
    "filter_normalize",
    "hessian_eigenvalues",
    "hessian_trace",
    "hutchinson",
    "hvp",
    "interpolate",
    "lanczos",
    "landscape_1d",
    "landscape_2d",
    "measure_runs",
    "mix_states",
    "noise_curve",
    "noise_loss",
    "power_iteration",
    "random_direction",
    "set_weights",
    "summary_scalars",
    "table_rows",
]
