"""The ``aa`` section: evaluation throughput on the GPU, in images per second.

- Standard AutoAttack (the reference package, ratt's stage-by-stage runner), each stage
  timed on every point: the model is ``aa_model`` at its initialization and the labels are
  its own predictions, so every point is correctly classified and every stage runs on all
  of them. A stage that stops early on a broken point (Square) is faster here than on a
  robust model: its rate is an upper bound. The rates give the cost of a 10,000-point
  evaluation in which every point reaches every stage (a bound from above for APGD and
  FAB, extrapolated, and labelled so).
- ratt's PGD-20 and CW-20 in fp32 and under bf16 autocast on the same points.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch

from ratt.attacks import ThreatModel, cw, pgd
from ratt.attacks.autoattack import STAGES, reference_autoattack
from ratt.core.env import synchronize
from ratt.doctor.result import Sizes
from ratt.doctor.synthetic import synthetic_batch
from ratt.models import create_model

FULL_TEST = 10_000


def _rate(points: int, run: Any, device: torch.device) -> float:
    """Images per second of ``run()`` over ``points`` points."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return points / (time.perf_counter() - start)


def stage_rates(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, sizes: Sizes) -> dict[str, float]:
    """Images/s of each standard AutoAttack stage run alone on all points."""
    threat = ThreatModel("linf", 8 / 255, 2 / 255, 10)
    attack = reference_autoattack(model, threat, "standard", seed=0, num_classes=10)
    for sub in (attack.apgd, attack.apgd_targeted, attack.fab):
        sub.n_iter = sizes.aa_iterations
    attack.square.n_queries = sizes.aa_square_queries
    rates = {}
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        for stage in STAGES["standard"]:
            attack.attacks_to_run = [stage]

            def run(stage_attack=attack) -> None:
                stage_attack.run_standard_evaluation(x, y, batch_size=sizes.aa_batch)

            rates[stage] = _rate(len(x), run, x.device)
    return rates


def attack_rates(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Images/s of ratt's PGD-20 and CW-20, fp32 and bf16 autocast."""
    threat = ThreatModel("linf", 8 / 255, 2 / 255, 20)
    out = {}
    for precision in ("fp32", "bf16"):
        autocast = (
            torch.autocast(x.device.type, dtype=torch.bfloat16)
            if precision == "bf16"
            else contextlib.nullcontext()
        )
        for name, attack in (("pgd20", pgd), ("cw20", cw)):

            def run(attack=attack, autocast=autocast) -> None:
                with autocast:
                    attack(model, x, y, threat)

            out[f"{name} {precision}"] = _rate(len(x), run, x.device)
    return out


def check_aa(sizes: Sizes) -> tuple[str, dict[str, Any]]:
    """One row: AutoAttack's per-stage rates, the extrapolated 10,000-point cost, PGD/CW rates."""
    device = torch.device(sizes.device)
    torch.manual_seed(0)
    model = create_model(sizes.aa_model, 10, (3, 32, 32)).to(device).eval()
    x, _ = synthetic_batch(sizes.aa_rate_points, device, seed=2)
    with torch.no_grad():
        y = torch.cat([model(chunk).argmax(1) for chunk in x.split(sizes.aa_batch)])
    stages = stage_rates(model, x, y, sizes)
    attacks = attack_rates(model, x, y)
    full = sum(FULL_TEST / rate for rate in stages.values())
    data = {"model": sizes.aa_model, "points": len(x), "batch": sizes.aa_batch,
            "iterations": sizes.aa_iterations, "square_queries": sizes.aa_square_queries,
            "stage_images_per_s": stages, "attack_images_per_s": attacks,
            "full_test_seconds_every_point_every_stage": full}  # fmt: skip
    per_stage = ", ".join(f"{name} {rate:.0f}" for name, rate in stages.items())
    per_attack = ", ".join(f"{name} {rate:.0f}" for name, rate in attacks.items())
    detail = (
        f"img/s: {per_stage}; {per_attack}; 10,000 points through every stage: about "
        f"{full / 60:.0f} min (extrapolated)"
    )
    return detail, data
