"""Published evaluation protocols (``ratt eval --protocol NAME``), one :class:`Protocol` each.

- ``paper``: TRADES, AWP and RAT report PGD-20 and CW-20 (the CW-inf margin loss,
  confidence 50, as in their scripts: maximizing ``min(max_{j!=y} z_j - z_y, 50)``, which is
  ratt's ``cwN``) at L-inf eps = 0.031 with step 0.003 on CIFAR-10/100, and eps = 4/255 with
  step 1/255 on SVHN; AutoAttack (standard) at eps = 8/255. Both white-box attacks start from
  a uniform random point of the ball. The worst case is over all four (clean, PGD-20, CW-20,
  AutoAttack) per point, across the two radii, and is labelled so.
- ``robustbench-imagenet``: RobustBench's ImageNet L-inf leaderboard: standard AutoAttack at
  eps = 4/255 on its 5,000 validation images (a list of ``WNID/FILE`` lines: ``--subset FILE``,
  else the list shipped in the installed ``robustbench`` package), each resized to 256 on its
  short side and center-cropped to 224 (RobustBench's ``Res256Crop224``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ratt.attacks import ThreatModel
from ratt.errors import UserError

AUTOATTACK = ("aa",)
RADII = {  # dataset -> (eps, step) of PGD-20 / CW-20 in the papers' tables
    "cifar10": (0.031, 0.003),
    "cifar100": (0.031, 0.003),
    "svhn": (4 / 255, 1 / 255),
}
AA_EPS = 8 / 255
ROBUSTBENCH_EPS = 4 / 255
ROBUSTBENCH_SIZES = (224, 256)  # (crop, resize): Res256Crop224
ROBUSTBENCH_LIST = "helper_files/imagenet_test_image_ids.txt"  # inside the robustbench package
ROBUSTBENCH_POINTS = 5000


@dataclass(frozen=True)
class Protocol:
    """One published protocol (a subclass says which threats, for which datasets).

    Attributes:
        name: what ``--protocol`` takes.
        white_box: attacks run at the white-box threat (AutoAttack follows at its own).
        help: one line for ``--help``.
    """

    name: str
    white_box: tuple[str, ...]
    help: str

    def datasets(self) -> tuple[str, ...]:
        """The datasets it is defined for."""
        raise NotImplementedError

    def radii(self, dataset: str) -> tuple[ThreatModel, ThreatModel]:
        """(white-box threat, AutoAttack's threat) for a dataset it is defined for."""
        raise NotImplementedError

    def describe(self, dataset: str) -> str:
        """One line naming the protocol's attacks, radii and points."""
        raise NotImplementedError

    def attacks(self) -> tuple[str, ...]:
        """Every attack it runs, AutoAttack last."""
        return (*self.white_box, *AUTOATTACK)

    def threats(self, dataset: str) -> tuple[ThreatModel, ThreatModel]:
        """(the white-box attacks' threat model, AutoAttack's) for ``dataset``; ``UserError``
        when the protocol is not defined for it."""
        if dataset not in self.datasets():
            raise UserError(
                f"--protocol {self.name} is defined for {', '.join(self.datasets())} (the published "
                f"tables); {dataset} has no published protocol: choose --attacks and --eps yourself"
            )
        return self.radii(dataset)


class PaperProtocol(Protocol):
    """The TRADES/AWP/RAT tables (module docstring)."""

    def datasets(self) -> tuple[str, ...]:
        return tuple(RADII)

    def radii(self, dataset: str) -> tuple[ThreatModel, ThreatModel]:
        eps, step = RADII[dataset]
        return ThreatModel("linf", eps, step, 20), ThreatModel("linf", AA_EPS, AA_EPS / 4, 20)

    def describe(self, dataset: str) -> str:
        white, aa = self.threats(dataset)
        return (
            f"paper protocol: PGD-20, CW-20 at eps {white.eps:.4g} step {white.step:.4g}; "
            f"AutoAttack at eps {aa.eps:.4g} (8/255); worst case over all"
        )


class RobustBenchImageNet(Protocol):
    """RobustBench's ImageNet L-inf board (module docstring)."""

    def datasets(self) -> tuple[str, ...]:
        return ("imagenet",)

    def radii(self, dataset: str) -> tuple[ThreatModel, ThreatModel]:
        threat = ThreatModel("linf", ROBUSTBENCH_EPS, ROBUSTBENCH_EPS / 4, 20)
        return threat, threat

    def describe(self, dataset: str) -> str:
        _, aa = self.threats(dataset)
        return (
            f"robustbench-imagenet protocol: standard AutoAttack at eps {aa.eps:.4g} (4/255) on "
            "RobustBench's validation subset, Resize 256 + CenterCrop 224"
        )


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        PaperProtocol("paper", ("clean", "pgd20", "cw20"),
                      "the TRADES/AWP/RAT tables: PGD-20/CW-20 at 0.031 (SVHN 4/255), AutoAttack at 8/255"),
        RobustBenchImageNet("robustbench-imagenet", ("clean",),
                            "RobustBench's ImageNet board: AutoAttack at 4/255 on 5,000 images (--subset)"),
    )
}  # fmt: skip


def get(name: str) -> Protocol:
    """The protocol called ``name``; ``UserError`` naming the known ones otherwise."""
    if name not in PROTOCOLS:
        raise UserError(f"--protocol={name!r}: use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def paper_threats(dataset: str) -> tuple[ThreatModel, ThreatModel]:
    """The ``paper`` protocol's (white-box threat, AutoAttack threat) for ``dataset``."""
    return PROTOCOLS["paper"].threats(dataset)


def subset_listing(subset: str | Path | None) -> Path:
    """The file of ``WNID/FILE`` lines RobustBench evaluates: ``subset``, else the list in the
    installed ``robustbench`` package (found without importing it)."""
    if subset is not None:
        path = Path(subset)
        if not path.is_file():
            raise UserError(f"--subset {subset}: no such file")
        return path
    spec = importlib.util.find_spec("robustbench")
    shipped = Path(spec.origin).parent / ROBUSTBENCH_LIST if spec and spec.origin else None
    if shipped is None or not shipped.is_file():
        raise UserError(
            "--protocol robustbench-imagenet needs --subset FILE: RobustBench's "
            f"{ROBUSTBENCH_LIST} ({ROBUSTBENCH_POINTS:,} lines WNID/FILE), or pip install 'ratt[robustbench]'"
        )
    return shipped
