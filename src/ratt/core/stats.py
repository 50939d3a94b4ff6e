"""Summary statistics of repeated measurements (seeds, draws)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float | None], single_std: float = math.nan) -> tuple[float, float]:
    """Mean and sample standard deviation, missing values (None, NaN) left out.

    Both NaN when nothing is left; the std of a single value is ``single_std`` (NaN by
    default: one measurement says nothing about spread). Computed with ``statistics.fmean``
    and ``statistics.stdev`` (correctly rounded).
    """
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not present:
        return math.nan, math.nan
    std = statistics.stdev(present) if len(present) > 1 else single_std
    return statistics.fmean(present), std
