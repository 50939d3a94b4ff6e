"""Attacks on [0, 1] inputs under one :class:`ThreatModel`; each runs in eval mode and
restores the caller's mode.

One file per attack: ``fgsm``, ``pgd`` (CE, L-inf/L2, restarts), ``cw`` (PGD on the CW
margin), ``autoattack`` (AutoAttack through the reference pyautoattack), ``trades_attack`` (the
TRADES training attack). The evaluation attacks are registered by name in ``ATTACKS``
(``clean``, ``fgsm``, ``pgdN``, ``cwN``, ``aa``; see :mod:`ratt.attacks.registry`).
"""

from __future__ import annotations

from ratt.attacks.autoattack import autoattack, reference_autoattack, run_autoattack
from ratt.attacks.base import eval_mode, project
from ratt.attacks.cw import cw
from ratt.attacks.fgsm import fgsm
from ratt.attacks.pgd import pgd
from ratt.attacks.registry import ATTACKS, Attack, parse_attack
from ratt.attacks.threat import ThreatModel, check_eps_matches, reference_norm
from ratt.attacks.trades import gaussian_start, trades_attack

__all__ = [
    "ATTACKS",
    "Attack",
    "ThreatModel",
    "autoattack",
    "check_eps_matches",
    "cw",
    "eval_mode",
    "fgsm",
    "gaussian_start",
    "parse_attack",
    "pgd",
    "project",
    "reference_norm",
    "run_autoattack",
    "reference_autoattack",
    "trades_attack",
]
