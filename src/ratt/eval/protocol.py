"""The published papers' evaluation protocol (``ratt eval --protocol paper``).

TRADES, AWP and RAT report PGD-20 and CW-20 (the CW-inf margin loss, confidence 50, as in
their scripts: maximizing ``min(max_{j!=y} z_j - z_y, 50)``, which is ratt's ``cwN``) at
L-inf eps = 0.031 with step 0.003 on CIFAR-10/100, and eps = 4/255 with step 1/255 on
SVHN; AutoAttack (standard) at eps = 8/255. Both white-box attacks start from a uniform
random point of the ball. The worst case is over all four (clean, PGD-20, CW-20, AutoAttack)
per point, across the two radii, and is labelled so.
"""

from __future__ import annotations

from ratt.attacks import ThreatModel
from ratt.errors import UserError

WHITE_BOX = ("clean", "pgd20", "cw20")
AUTOATTACK = ("aa",)
RADII = {  # dataset -> (eps, step) of PGD-20 / CW-20
    "cifar10": (0.031, 0.003),
    "cifar100": (0.031, 0.003),
    "svhn": (4 / 255, 1 / 255),
}
AA_EPS = 8 / 255


def paper_threats(dataset: str) -> tuple[ThreatModel, ThreatModel]:
    """(the white-box attacks' threat model, AutoAttack's) for ``dataset``."""
    if dataset not in RADII:
        raise UserError(
            f"--protocol paper is defined for {', '.join(RADII)} (the published tables); "
            f"{dataset} has no published protocol: choose --attacks and --eps yourself"
        )
    eps, step = RADII[dataset]
    return ThreatModel("linf", eps, step, 20), ThreatModel("linf", AA_EPS, AA_EPS / 4, 20)


def describe(dataset: str) -> str:
    """One line naming the protocol's attacks and radii."""
    white, aa = paper_threats(dataset)
    return (
        f"paper protocol: PGD-20, CW-20 at eps {white.eps:.4g} step {white.step:.4g}; "
        f"AutoAttack at eps {aa.eps:.4g} (8/255); worst case over all"
    )
