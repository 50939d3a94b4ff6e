"""The ``ratt`` command. One module per sub-command, each with ``add_parser(subparsers)`` and
``run(args) -> exit code``: it parses, calls one library function, prints. Nothing below
``ratt.cli`` imports it."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ratt.errors import UserError

COMMANDS = ["train", "eval", "landscape", "report", "sweep", "bench", "doctor", "list"]


def build_parser() -> argparse.ArgumentParser:
    """The ``ratt`` parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="ratt", description=__doc__.split("\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"ratt.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ratt`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"ratt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ratt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
