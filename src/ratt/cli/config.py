"""``ratt config``: every configuration key with its default and meaning, or the resolved
configuration of a ``--config`` file and ``key=value`` overrides, as YAML."""

from __future__ import annotations

import argparse

import yaml

from ratt.config import describe_keys
from ratt.runs import build_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="list the configuration keys, or show a resolved configuration")
    p.add_argument("--show", action="store_true", help="print the configuration these arguments resolve to")
    p.add_argument("--config", help="YAML file with the values that differ from the defaults")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.show and not args.config and not args.overrides:
        print(describe_keys())
        return 0
    config = build_config(args.config, list(args.overrides))
    print(yaml.safe_dump(config.to_dict(), sort_keys=False).rstrip())
    return 0
