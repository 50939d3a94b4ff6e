"""Attacks on [0, 1] inputs under one :class:`ThreatModel`; each runs in eval mode and
restores the caller's mode."""

from __future__ import annotations

from ratt.attacks.base import eval_mode, project
from ratt.attacks.pgd import fgsm, pgd
from ratt.attacks.threat import ThreatModel, parse_magnitude
from ratt.attacks.trades import trades_attack

__all__ = ["ThreatModel", "eval_mode", "fgsm", "parse_magnitude", "pgd", "project", "trades_attack"]
