"""``ratt export RUN --robustbench DIR``: a run's model and its accuracies in RobustBench's layout."""

from __future__ import annotations

import argparse

from ratt import data
from ratt.cli.common import add_trust_code
from ratt.report.export import export_robustbench
from ratt.runs import load_checkpoint


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's model and accuracies for RobustBench")
    p.add_argument("run", help="run directory (with eval.json holding clean and aa)")
    p.add_argument(
        "--robustbench", required=True, metavar="DIR", help="RobustBench's model folder to write into"
    )
    p.add_argument("--name", help="the model's name (default: the run directory's name)")
    p.add_argument("--venue", default="", help="where the model was published")
    add_trust_code(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, config = load_checkpoint(args.run, trust_code=args.trust_code)
    test_size = len(data.load_for(config.data, "test"))
    result = export_robustbench(
        args.run, args.robustbench, args.name, args.venue, test_size, trust_code=args.trust_code
    )
    print(f"wrote {result.weights} and {result.info}")
    fields = result.fields
    print(f"clean {fields['clean_acc']}%, AutoAttack {fields['autoattack_acc']}% ({fields['footnote']})")
    return 0
