"""The catastrophic-overfitting guard: single-step training can collapse within an epoch, FGSM
accuracy staying high (or rising) while PGD accuracy falls to near 0 (Wong et al. 2020).

At every validation the trainer measures FGSM and PGD accuracy on the validation split
(``val_fgsm_acc``, ``val_robust_acc`` in metrics.jsonl); :func:`collapse_epoch` flags the
first validation at which either

- ``fall``: PGD accuracy is more than ``run.co_drop`` points below its best so far while FGSM
  accuracy is not below its value at that best epoch, or
- ``gap``: FGSM accuracy is more than ``run.co_drop`` points above PGD accuracy: the
  single-step attack no longer finds what PGD finds. This also flags a run that collapses
  before it was ever robust, which has no best to fall from. On Fashion-MNIST
  (``docs/results/fast/``) runs at eps 0.1 keep the gap under 4 points; at eps 0.2 it widens
  as a run nears its collapse (up to 19 points the epoch before) and the one run that trained
  through ended at 15.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Collapse:
    """A flagged collapse at ``epoch`` (1-based), accuracies as fractions in [0, 1].

    ``rule="fall"``: PGD accuracy ``pgd`` is ``drop`` points below ``best_pgd`` (reached at
    ``best_epoch``) while FGSM accuracy went from ``fgsm_at_best`` to ``fgsm``. ``rule="gap"``:
    FGSM accuracy ``fgsm`` is ``gap`` points above PGD accuracy ``pgd``."""

    epoch: int
    pgd: float
    best_pgd: float
    best_epoch: int
    fgsm: float
    fgsm_at_best: float
    rule: str = "fall"

    @property
    def drop(self) -> float:
        return 100 * (self.best_pgd - self.pgd)

    @property
    def gap(self) -> float:
        return 100 * (self.fgsm - self.pgd)

    def describe(self) -> str:
        """One line for the log and the summary."""
        if self.rule == "gap":
            return (
                f"catastrophic overfitting at epoch {self.epoch}: validation FGSM accuracy "
                f"{100 * self.fgsm:.2f}% is {self.gap:.1f} points above PGD accuracy {100 * self.pgd:.2f}% "
                "(the single-step attack no longer finds what PGD finds)"
            )
        return (
            f"catastrophic overfitting at epoch {self.epoch}: validation PGD accuracy "
            f"{100 * self.pgd:.2f}% is {self.drop:.1f} points below its best ({100 * self.best_pgd:.2f}% "
            f"at epoch {self.best_epoch}) while FGSM accuracy is {100 * self.fgsm:.2f}% "
            f"(was {100 * self.fgsm_at_best:.2f}%)"
        )


def collapse_epoch(history: Sequence[tuple[int, float, float]], drop_points: float) -> Collapse | None:
    """The first collapse in ``history``, or None.

    Args:
        history: ``(epoch, fgsm_acc, pgd_acc)`` per validation in order, accuracies in [0, 1].
        drop_points: the PGD drop (accuracy points, percent) that flags a collapse, > 0.
    Returns:
        the first validation whose PGD accuracy is below ``best - drop_points / 100`` (best:
        the highest PGD accuracy of the earlier validations) while its FGSM accuracy is at
        least the FGSM accuracy of that best validation (rule ``fall``), or whose FGSM
        accuracy is above its PGD accuracy by more than ``drop_points / 100`` (rule ``gap``);
        ``fall`` is reported when both hold.
    """
    best: tuple[int, float, float] | None = None
    for epoch, fgsm, pgd in history:
        if best is not None and pgd < best[2] - drop_points / 100 and fgsm >= best[1]:
            return Collapse(epoch, pgd, best[2], best[0], fgsm, best[1])
        if fgsm - pgd > drop_points / 100:
            at_best = best if best is not None else (epoch, fgsm, pgd)
            return Collapse(epoch, pgd, at_best[2], at_best[0], fgsm, at_best[1], rule="gap")
        if best is None or pgd > best[2]:
            best = (epoch, fgsm, pgd)
    return None


def history_of(rows: Iterable[dict[str, Any]]) -> list[tuple[int, float, float]]:
    """``(epoch, val_fgsm_acc, val_robust_acc)`` of the metrics rows that have both."""
    return [
        (int(row["epoch"]), float(row["val_fgsm_acc"]), float(row["val_robust_acc"]))
        for row in rows
        if row.get("val_fgsm_acc") is not None and row.get("val_robust_acc") is not None
    ]


def flagged_epoch(lines: Iterable[str] | None) -> int | None:
    """The epoch a run flagged (``catastrophic_overfitting`` in its metrics.jsonl lines), or None."""
    for line in lines or []:
        epoch = json.loads(line).get("catastrophic_overfitting")
        if epoch is not None:
            return int(epoch)
    return None


def new_collapse(previous: list[str] | None, row: dict[str, Any], drop_points: float) -> Collapse | None:
    """The collapse ``row`` (this epoch's metrics) flags, given the earlier rows ``previous``
    (JSON lines; None: none kept); None when there is none or one was flagged before."""
    if flagged_epoch(previous) is not None:
        return None
    rows = [json.loads(line) for line in previous or []] + [row]
    found = collapse_epoch(history_of(rows), drop_points)
    return found if found is not None and found.epoch == row["epoch"] else None
