"""Summary statistics of repeated measurements (seeds, draws)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any


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


ROUNDING = 1e-6
"""Spreads at or below this (relative to the values' size, at least 1) are rounding, not
measurement: accuracies stored as float32 (0.734 is 0.73400002...) leave differences that are
equal in counts of test points ~1e-8 apart, while a real spread of accuracies over even 100,000
test points is at least ~1e-5."""


def measured_spread(values: Sequence[float]) -> float:
    """The sample std of ``values``, or exactly 0.0 where it is only rounding (see
    :data:`ROUNDING`): values equal up to float error measured no spread. NaN for < 2 values."""
    if len(values) < 2:
        return math.nan
    std = statistics.stdev(float(v) for v in values)
    return std if std > ROUNDING * max(1.0, *(abs(float(v)) for v in values)) else 0.0


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with an integer number of degrees of freedom ``df >= 1``.

    The finite series of Abramowitz & Stegun 26.7.3-4 for A(t|df) = P(|T| < |t|), in
    theta = atan(|t| / sqrt(df)); exact up to rounding, no special functions needed.
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        series, term = 0.0, math.cos(theta)
        for k in range(1, (df - 1) // 2 + 1):
            series += term
            term *= c2 * (2 * k) / (2 * k + 1)
        inside = (2 / math.pi) * (theta + s * series) if df > 1 else 2 * theta / math.pi
    else:  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        series, term = 0.0, 1.0
        for k in range(1, df // 2 + 1):
            series += term
            term *= c2 * (2 * k - 1) / (2 * k)
        inside = s * series
    return 0.5 + 0.5 * inside if t >= 0 else 0.5 - 0.5 * inside


def student_t_quantile(probability: float, df: int) -> float:
    """The t with P(T <= t) = ``probability`` (0 < probability < 1), by bisection on the CDF."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability}")
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < probability:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if student_t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
        if high - low <= 1e-15 * high:
            break
    return 0.5 * (low + high)


def paired_t_test(differences: Iterable[float]) -> float:
    """Two-sided p of the paired t-test that the mean difference is 0 (NaN for < 2 pairs or no
    spread)."""
    values = [float(d) for d in differences]
    n = len(values)
    if n < 2:
        return math.nan
    std = measured_spread(values)
    if std == 0.0:
        return math.nan
    t = statistics.fmean(values) / (std / math.sqrt(n))
    return 2.0 * (1.0 - student_t_cdf(abs(t), n - 1))


def detectable_difference(std: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test at level ``alpha`` finds with
    probability ``power``, given ``n`` pairs whose differences spread with sample std ``std``:
    (t_{1-alpha/2, n-1} + t_{power, n-1}) * std / sqrt(n), in the units of ``std``.

    The usual approximation (it takes the spread as known and uses central t quantiles). NaN
    for fewer than 2 pairs, and for a sample std of 0: a few seeds whose differences came out
    equal (accuracies on 1,000 points move in steps of 0.1 points) measured no spread, which
    is not a spread of 0, and "any difference is detectable" would be a wrong number.
    """
    if n < 2 or not math.isfinite(std) or std == 0:
        return math.nan
    quantiles = student_t_quantile(1.0 - alpha / 2, n - 1) + student_t_quantile(power, n - 1)
    return quantiles * std / math.sqrt(n)


def sign_test(ahead: int, behind: int) -> float:
    """Two-sided exact sign test: the probability, if ahead and behind were equally likely, of a
    split at least this uneven (ties left out). 1.0 without any non-tied pair."""
    n = ahead + behind
    if n == 0:
        return 1.0
    k = min(ahead, behind)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_summary(differences: Sequence[float]) -> dict[str, Any]:
    """Everything a comparison paired by seed reports about its per-seed ``differences``:
    ``{"diffs", "mean", "std", "ahead", "behind", "p", "t_p", "detectable"}``, in the units
    of ``differences``; ``p`` the sign test's (:func:`sign_test`), ``t_p`` the paired t-test's
    (:func:`paired_t_test`), ``detectable`` :func:`detectable_difference` at 5 % and 80 %
    power (NaN where undefined); ``std`` is :func:`measured_spread`'s, 0.0 where the
    differences are equal up to rounding (then neither ``t_p`` nor ``detectable`` is defined)."""
    diffs = [float(d) for d in differences]
    mean, std = statistics.fmean(diffs) if diffs else math.nan, measured_spread(diffs)
    ahead, behind = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {"diffs": diffs, "mean": mean, "std": std, "ahead": ahead, "behind": behind,
            "p": sign_test(ahead, behind), "t_p": paired_t_test(diffs),
            "detectable": detectable_difference(std, len(diffs))}  # fmt: skip


def mid_ranks(values: Sequence[float]) -> list[float]:
    """Ranks of ``values`` from 1, tied values sharing the mean of their ranks (the ranks of
    Spearman's correlation and of rank tests)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks
