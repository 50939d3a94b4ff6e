"""ratt's PGD against torchattacks' PGD on a model from ``ratt train``: same accuracy, speed.

Both attacks get the same model (eval mode), the same test points, eps, step, number of
steps and a uniform random start; they differ only in their random draws. The script
prints both accuracies (they must agree within 1 point) and the median wall time of
``--repeats`` timed runs of each, interleaved (ratt, torchattacks, ratt, ...) after one
untimed warm-up of each, all in one process. Ratios are meaningful; absolute times
depend on the machine and its load.

Usage:
    ratt train --out /tmp/digits_run --quiet epochs=10
    python benchmarks/pgd_vs_torchattacks.py /tmp/digits_run --n 500 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torchattacks

from ratt import data
from ratt.attacks import pgd
from ratt.data import to_float
from ratt.train import load_checkpoint, threat_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", help="run directory or checkpoint from `ratt train`")
    parser.add_argument("--n", type=int, default=500, help="test points (one batch)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, config = load_checkpoint(args.run, device)
    test = data.load(config.data.name, "test")
    threat = threat_model(config, test.info).with_steps(args.steps)
    x = to_float(test.images[: args.n]).to(device)
    y = test.labels[: args.n].to(device)
    theirs = torchattacks.PGD(model, eps=threat.eps, alpha=threat.step, steps=threat.steps, random_start=True)

    def run_ratt() -> torch.Tensor:
        return pgd(model, x, y, threat, generator=torch.Generator(device=device).manual_seed(0))

    def run_torchattacks() -> torch.Tensor:
        torch.manual_seed(0)
        return theirs(x, y)

    def accuracy(x_adv: torch.Tensor) -> float:
        with torch.no_grad():
            return (model(x_adv).argmax(1) == y).float().mean().item()

    def timed(fn) -> tuple[float, torch.Tensor]:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, out

    runs = {"ratt": run_ratt, "torchattacks": run_torchattacks}
    acc = {name: accuracy(fn()) for name, fn in runs.items()}  # warm-up + accuracy
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            seconds, _ = timed(fn)
            times[name].append(seconds)
    median = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "model": f"{config.model.name} on {config.data.name} ({args.run})",
        "threat": threat.describe(),
        "n": len(y),
        "accuracy": acc,
        "accuracy_gap_points": 100 * abs(acc["ratt"] - acc["torchattacks"]),
        "median_seconds": median,
        "speedup_ratt_over_torchattacks": median["torchattacks"] / median["ratt"],
        "repeats": args.repeats,
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "torchattacks": torchattacks.__version__,
        "platform": platform.platform(),
    }
    for name in runs:
        print(f"{name:<13} accuracy {100 * acc[name]:6.2f}%   median {median[name]:.3f} s")
    print(f"speed-up of ratt over torchattacks: {report['speedup_ratt_over_torchattacks']:.2f}x")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
