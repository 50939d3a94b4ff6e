"""``ratt list``: the registered datasets, models, methods and attacks."""

from __future__ import annotations

import argparse

from ratt.attacks import ATTACKS
from ratt.data import DATASETS
from ratt.methods import METHODS
from ratt.models import MODELS

REGISTRIES = {"datasets": DATASETS, "models": MODELS, "methods": METHODS, "attacks": ATTACKS}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="registered datasets, models, methods and attacks")
    p.add_argument("kind", nargs="?", choices=list(REGISTRIES))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for kind in [args.kind] if args.kind else list(REGISTRIES):
        print(f"{kind}: {', '.join(REGISTRIES[kind].names())}")
    return 0
