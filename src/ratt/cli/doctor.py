"""``ratt doctor --gpu``: CUDA checks, the GPU benchmark matrix and an interrupted training run,
as one table and one JSON file (``--dry-run``: the same on the CPU with tiny sizes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ratt.cli.common import comma_list
from ratt.doctor import SECTIONS, DoctorOptions, format_table, run_doctor
from ratt.doctor.run import DEFAULT_OUT
from ratt.errors import UserError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check a CUDA machine: device checks, GPU benchmark, exact resume")
    p.add_argument("--gpu", action="store_true", help="check the GPU path (the one check so far)")
    p.add_argument("--dry-run", action="store_true", help="the same script on the CPU with tiny sizes")
    p.add_argument(
        "--quick", action="store_true", help="every check at smaller sizes (under 5 min on one H200)"
    )
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON file (a .md table beside it), or a folder")
    p.add_argument("--device", default="cuda", help="the CUDA device to check (default cuda)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    p.add_argument("--work-dir", help="keep the run directories here (default: a temporary folder)")
    p.add_argument("--quiet", action="store_true", help="no per-check log lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.gpu:
        raise UserError(
            "ratt doctor: say what to check; --gpu is the one check so far (add --dry-run on a CPU)"
        )
    options = DoctorOptions(
        dry_run=args.dry_run, quick=args.quick, device=args.device, sections=tuple(comma_list(args.only)),
        out=Path(args.out), work_dir=Path(args.work_dir) if args.work_dir else None,
    )  # fmt: skip
    report = run_doctor(options)
    counts = report.document["counts"]
    env = report.document["environment"]
    where = env.get("gpu", env["device"]) + (" (dry run)" if options.dry_run else "")
    print(f"ratt doctor --gpu on {where}, torch {env['torch']}, CUDA {env['cuda']}")
    print(format_table(report.results))
    print(", ".join(f"{n} {status}" for status, n in counts.items() if n) + f"; wrote {report.out}")
    return 0 if report.ok else 1
