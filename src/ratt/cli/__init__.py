"""The ``ratt`` command. One module per sub-command, each with ``add_parser(subparsers)`` and
``run(args) -> exit code``: it parses, calls one library function, prints. Nothing below
``ratt.cli`` imports it."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from ratt.errors import UserError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions kept as written, every option's default shown (unless unset or already
    in its help), and no reStructuredText double backticks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").replace("``", "")
        default = action.default
        unset = default is None or default is False or default == "" or default is argparse.SUPPRESS
        if unset or not action.option_strings or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"

    def _format_text(self, text: str) -> str:
        return super()._format_text(text.replace("``", ""))


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with :class:`HelpFormatter` (every sub-command uses it), whose
    errors are one line pointing at ``--help`` (not the whole usage block), exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


MODULES = {"list": "listing"}  # sub-commands whose module has another name (`list` is a builtin)
COMMANDS = [
    "train", "config", "eval", "landscape", "report", "export", "sweep", "bench", "doctor", "data", "list",
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``ratt`` parser with every sub-command registered."""
    parser = Parser(prog="ratt", description="ratt: adversarial training with randomized weights (RAT)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"ratt.cli.{MODULES.get(name, name)}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ratt`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value settings may follow options (`ratt eval W --model M key=value`): argparse
    # leaves a second run of positionals unparsed, so they are joined to the command's list
    listed = next(
        (name for name in ("overrides", "settings") if isinstance(getattr(args, name, None), list)), None
    )
    loose = [item for item in extra if "=" in item and not item.startswith("-")]
    if extra and (listed is None or len(loose) != len(extra)):
        unknown = " ".join(i for i in extra if i not in loose or listed is None)
        command = f"{parser.prog} {args.command}"
        parser.exit(2, f"{command}: error: unrecognized arguments: {unknown} (see {command} --help)\n")
    if listed is not None:
        getattr(args, listed).extend(loose)
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
    except Exception as exc:
        from ratt.core.distributed import process_label

        label = process_label()
        if args.debug or not label:  # one process: the traceback is the report
            raise
        # one of several processes: one line naming it (torchrun stops the others)
        print(f"ratt: error: {label} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
