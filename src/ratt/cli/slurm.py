"""The ``--launcher`` and ``--slurm-*`` options shared by ``ratt sweep`` (one job per cell) and
``ratt train`` (one job of ``--nodes`` nodes for one run)."""

from __future__ import annotations

import argparse
import re

from ratt.core.slurm import SlurmOptions
from ratt.errors import UserError

SLURM_FLAGS = ("slurm_partition", "slurm_time", "slurm_gpus", "slurm_cpus", "slurm_mem", "slurm_array",
               "slurm_parallel", "slurm_opt", "slurm_requeues", "slurm_cluster", "slurm_folder", "nodes",
               "gpus_per_node", "tasks_per_node")  # fmt: skip
DEFAULTS = {"slurm_time": "240", "slurm_gpus": 0, "slurm_opt": [], "slurm_requeues": 3,
            "slurm_cluster": "slurm", "slurm_array": False, "nodes": 1}  # fmt: skip


def add_slurm_arguments(p: argparse.ArgumentParser, *, unit: str) -> None:
    """``--launcher`` and the Slurm group; ``unit`` is what one job runs: ``cell`` (a sweep's,
    with job arrays) or ``run`` (``ratt train``: one job, ``--nodes`` x ``--gpus-per-node``)."""
    what = "one job per cell" if unit == "cell" else "one job of --nodes nodes for this run"
    p.add_argument("--launcher", default="local", choices=["local", "slurm"],
                   help=f"local (this machine) or slurm ({what}, through submitit)")  # fmt: skip
    s = p.add_argument_group("Slurm (--launcher slurm; needs pip install 'ratt[slurm]')")
    if unit == "run":
        s.add_argument("--nodes", type=int, default=1, metavar="N", help="nodes of the job (default 1)")
        s.add_argument("--gpus-per-node", type=int, metavar="G",
                       help="GPUs per node, one process each (default 0: CPU)")  # fmt: skip
        s.add_argument("--tasks-per-node", type=int, metavar="T",
                       help="processes per node (default: one per GPU, at least 1)")  # fmt: skip
    s.add_argument("--slurm-partition", metavar="NAME", help="partition (default: the cluster's)")
    s.add_argument("--slurm-time", default="240", metavar="TIME",
                   help="time limit per job: minutes, H:MM:SS or D-HH:MM:SS")  # fmt: skip
    if unit == "cell":
        s.add_argument("--slurm-gpus", type=int, default=0, metavar="N", help="GPUs per job (default 0)")
    per = "job" if unit == "cell" else "task"
    s.add_argument("--slurm-cpus", type=int, metavar="N",
                   help=f"CPU cores per {per} (also run.threads when unset)")  # fmt: skip
    s.add_argument("--slurm-mem", type=float, metavar="GB", help="memory per node in GB")
    if unit == "cell":
        s.add_argument("--slurm-array", action="store_true", help="one job array instead of one job per cell")
        s.add_argument("--slurm-parallel", type=int, metavar="N", help="at most N array tasks at once")
    s.add_argument("--slurm-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="more sbatch options, repeatable, e.g. --slurm-opt account=proj")  # fmt: skip
    s.add_argument(
        "--slurm-requeues", type=int, default=3, metavar="N",
        help="requeues after the time limit (default 3; a preemption is always requeued)",
    )  # fmt: skip
    s.add_argument("--slurm-cluster", default="slurm", choices=["slurm", "local"],
                   help="local: submitit's local executor, jobs as local processes")  # fmt: skip
    s.add_argument("--slurm-folder", metavar="DIR",
                   help="submitit's job files and logs (default OUT/slurm)")  # fmt: skip


def minutes(text: str) -> int:
    """``90``, ``1:30:00`` or ``1-06:00:00`` -> minutes (``UserError`` otherwise)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d):(\d\d)", text.strip())
    if match:
        days, hours, mins, secs = (int(g or 0) for g in match.groups())
        return days * 1440 + hours * 60 + mins + (secs > 0)
    if text.strip().isdigit():
        return int(text)
    raise UserError(f"--slurm-time {text!r}: write minutes (240), H:MM:SS (4:00:00) or D-HH:MM:SS")


def slurm_options(args: argparse.Namespace) -> SlurmOptions | None:
    """The options of ``--launcher slurm`` (None for ``local``, where a Slurm flag is an error)."""
    given = [f for f in SLURM_FLAGS if getattr(args, f, None) not in (None, DEFAULTS.get(f))]
    if args.launcher != "slurm":
        if given:
            raise UserError(f"--{given[0].replace('_', '-')} needs --launcher slurm")
        return None
    gpus = getattr(args, "gpus_per_node", None)
    return SlurmOptions(
        partition=args.slurm_partition, time=minutes(args.slurm_time),
        gpus=(gpus or 0) if hasattr(args, "gpus_per_node") else args.slurm_gpus, cpus=args.slurm_cpus,
        mem_gb=args.slurm_mem, array=getattr(args, "slurm_array", False),
        parallel=getattr(args, "slurm_parallel", None), sbatch=list(args.slurm_opt),
        requeues=args.slurm_requeues, cluster=args.slurm_cluster, folder=args.slurm_folder,
        nodes=getattr(args, "nodes", 1), tasks_per_node=getattr(args, "tasks_per_node", None),
    )  # fmt: skip
