"""DDP through ``torchrun`` at world size 1: NCCL on CUDA (gloo in the dry run).

At world size 1 ratt's trainer makes no process group (``init_distributed`` returns the
one-process context), so ``torchrun --nproc_per_node 1 -m ratt train`` never touches NCCL or
DDP. This worker does, with ratt's pieces: it joins the group ``torchrun`` describes, checks
an all-reduce, then runs the same seeded training steps twice: once plainly and once with the
model wrapped by :func:`ratt.core.distributed.wrap_ddp` (training forwards through DDP, whose
reducer all-reduces the gradients over the backend), and reports how far the weights differ.

Worker: ``python -m torch.distributed.run --standalone --nproc_per_node 1 -m ratt.doctor.ddp
--out RESULT.json --device cuda --backend nccl``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ratt.bench import BenchConfig
from ratt.bench.steps import make_step
from ratt.core.distributed import wrap_ddp
from ratt.core.env import configure_runtime, synchronize
from ratt.core.files import write_text
from ratt.doctor.report import nccl_version
from ratt.doctor.result import Sizes

METHOD = "rat_trades"
STEPS = 4  # the weights after all of them are compared; steps 2-4 are timed
DDP_RTOL = 1e-6  # relative to the largest weight; at world size 1 DDP should change nothing


def failure_line(stderr: str) -> str:
    """The line of a failed torchrun's stderr that names the error (at most 300 characters):
    the last ``...Error: message`` line (the worker's exception; torchrun's own
    ``ChildFailedError:`` carries no message), else the last line that is not one of torchrun's
    ``====`` / ``----`` banners, else ``no output``."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip().strip("=-")]
    errors = [line for line in lines if re.search(r"(Error|Exception):\s*\S", line)]
    return ((errors or lines) or ["no output"])[-1][:300]


def check_ddp(sizes: Sizes, work: Path) -> tuple[str, dict[str, Any]]:
    """Launch the worker through torchrun and check its report."""
    result = work / "ddp.json"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
        "-m", "ratt.doctor.ddp", "--out", str(result), "--device", sizes.device,
        "--backend", sizes.ddp_backend, "--model", sizes.check_model, "--batch", str(sizes.check_batch),
        "--attack-steps", str(sizes.check_steps),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"torchrun exited {proc.returncode}: {failure_line(proc.stderr)}")
    data = json.loads(result.read_text())
    assert data["backend"] == sizes.ddp_backend, f"backend {data['backend']}, expected {sizes.ddp_backend}"
    assert data["world"] == 1 and data["all_reduce"], "the all-reduce gave a wrong sum"
    assert data["relative_diff"] <= DDP_RTOL, f"DDP weights differ by {data['relative_diff']:.3g} (relative)"
    same = "bit-identical" if data["relative_diff"] == 0 else f"within {data['relative_diff']:.2g}"
    cost = f"DDP step {data['ddp_over_plain']:.2f}x plain ({data['ddp_step_s'] * 1e3:.0f} ms)"
    detail = f"torchrun world 1, {data['backend']}: all-reduce ok; {STEPS} DDP steps {same} to plain"
    return f"{detail}; {cost}", data


def _train(
    model: str, batch: int, steps: int, device: torch.device, ddp: bool
) -> tuple[dict[str, torch.Tensor], float]:
    """The weights after :data:`STEPS` seeded steps, and the mean seconds of the steps after
    the first (the first pays for allocation and the reducer's setup)."""
    config = BenchConfig(methods=[METHOD], model=model, batch=batch, steps=steps)
    step, x, y = make_step(config, METHOD, device)
    if ddp:
        wrapped = wrap_ddp(step.model, device)
        step.method.configure_parallel(wrapped, step.model, (0, 1))
        step.sync_buffers = True  # the trainer's DDP step: rank 0's buffers after each step
    torch.manual_seed(1)
    start = 0.0
    for index in range(STEPS):
        if index == 1:
            synchronize(device)
            start = time.perf_counter()
        assert step(x, y).finite
    synchronize(device)
    seconds = (time.perf_counter() - start) / (STEPS - 1)
    return {k: v.detach().cpu().clone() for k, v in step.model.state_dict().items()}, seconds


def worker(argv: list[str] | None = None) -> int:
    """The torchrun worker (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m ratt.doctor.ddp")
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", default="nccl")
    parser.add_argument("--model", default="preact_resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--attack-steps", type=int, default=2)
    args = parser.parse_args(argv)
    # deterministic kernels: on CUDA two plain runs already differ (about 2e-3 of the largest
    # weight after 3 steps on an H200) without them, which would hide what DDP changes
    configure_runtime(deterministic=True)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cpu")
    if args.device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    dist.init_process_group(args.backend, timeout=datetime.timedelta(minutes=5))
    try:
        world, rank = dist.get_world_size(), dist.get_rank()
        total = torch.tensor([float(rank + 1)], device=device)
        dist.all_reduce(total)
        plain, plain_s = _train(args.model, args.batch, args.attack_steps, device, ddp=False)
        wrapped, ddp_s = _train(args.model, args.batch, args.attack_steps, device, ddp=True)
        scale = max(float(v.abs().max()) for v in plain.values() if v.is_floating_point() and v.numel())
        diff = max(
            float((plain[k].double() - wrapped[k].double()).abs().max())
            for k in plain
            if plain[k].is_floating_point() and plain[k].numel()
        )
        result = {
            "backend": dist.get_backend(), "world": world, "device": str(device),
            "all_reduce": float(total) == world * (world + 1) / 2, "max_abs_diff": diff,
            "relative_diff": diff / scale, "method": METHOD, "steps": STEPS,
            "nccl": nccl_version() if device.type == "cuda" else None,
            "plain_step_s": plain_s, "ddp_step_s": ddp_s, "ddp_over_plain": ddp_s / plain_s,
        }  # fmt: skip
        if rank == 0:
            write_text(Path(args.out), json.dumps(result))
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(worker())
