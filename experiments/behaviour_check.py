"""Refactoring guard: record what ratt computes, or check that it still computes exactly that.

    python experiments/behaviour_check.py record   # writes experiments/behaviour_baseline.json
    python experiments/behaviour_check.py check    # exits 1 naming every value that changed

It runs, through the ``ratt`` command line, in deterministic mode on 2 threads:

- the default run (``ratt train``: digits, smallcnn, TRADES, 50 epochs);
- 3-epoch runs of ``trades``, ``rat_trades`` (with ``run.track_flatness``) and
  ``awp+rat_trades`` (AWP active from epoch 2), each followed by ``ratt eval`` with
  clean, fgsm, pgd20, cw20 and AutoAttack on 60 points, the eps sweep and weight noise;
- ``ratt landscape --what hessian,noise`` on the ``rat_trades`` run.

For each it keeps a hash of the final weights, every non-timing field of ``metrics.jsonl``,
the test accuracies of ``summary.json`` and every accuracy and flag of ``eval.json`` and
``landscape.json``'s summary. Numbers are compared exactly: on one machine (same CPU kind,
same torch, same thread count) a behaviour-preserving change leaves every one of them
bit-identical. Takes about 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import safetensors
import torch

BASELINE = Path(__file__).with_name("behaviour_baseline.json")
COMMON = ["run.threads=2", "run.deterministic=true", "run.progress=false"]
SHORT = ["epochs=3", "val_attack_steps=5", "test_attacks=clean,pgd10", "awp_warmup=1"]
TIMING = {"seconds", "train_seconds"}
RUNS = {
    "default": [],
    "trades": [*SHORT, "method=trades"],
    "rat_trades": [*SHORT, "method=rat_trades", "run.track_flatness=true", "run.flatness_every=1"],
    "awp+rat_trades": [*SHORT, "method=awp+rat_trades"],
}
EVAL = ["--attacks", "clean,fgsm,pgd20,cw20,aa", "--n", "60", "--eps-sweep", "--weight-noise", "0.05"]
LANDSCAPE = ["--what", "hessian,noise", "--n", "100", "--sigmas", "0,0.05", "--draws", "2", "--samples", "4"]


def ratt(*args: str) -> None:
    """Run ``python -m ratt ARGS``; raise with its stderr if it fails."""
    proc = subprocess.run([sys.executable, "-m", "ratt", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ratt {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def weights_hash(path: Path) -> str:
    """blake2b over every tensor's name, dtype, shape and bytes (metadata left out)."""
    digest = hashlib.blake2b(digest_size=16)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        for name in sorted(handle.keys()):
            tensor = handle.get_tensor(name).contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
            digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def drop_timing(value):
    """``value`` without wall-time fields (at any depth)."""
    if isinstance(value, dict):
        return {k: drop_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [drop_timing(v) for v in value]
    return value


def observe(root: Path) -> dict:
    """Train, evaluate and measure every run; what each produced, timing fields left out."""
    out: dict[str, dict] = {}
    for name, overrides in RUNS.items():
        run = root / name.replace("+", "_")
        ratt("train", "--quiet", "--out", str(run), *COMMON, *overrides)
        record = {
            "weights_last": weights_hash(run / "checkpoints" / "last.safetensors"),
            "weights_best": weights_hash(run / "checkpoints" / "best.safetensors"),
            "metrics": [drop_timing(json.loads(line)) for line in (run / "metrics.jsonl").open()],
        }
        summary = json.loads((run / "summary.json").read_text())
        record["summary"] = {k: summary[k] for k in ("checkpoint", "epochs")}
        record["summary"]["test"] = {k: summary["test"][k] for k in ("n", "accuracy", "robust")}
        if name != "default":
            ratt("eval", str(run), "--quiet", *EVAL)
            report = json.loads((run / "eval.json").read_text())
            keep = ("n", "accuracy", "robust", "stages", "flags", "eps_sweep", "weight_noise")
            record["eval"] = drop_timing({k: report[k] for k in keep if k in report})
        if name == "rat_trades":
            ratt("landscape", str(run), "--quiet", *LANDSCAPE)
            record["landscape"] = json.loads((run / "landscape.json").read_text())["summary"]
        out[name] = record
        print(f"{name}: done", file=sys.stderr)
    return out


def differences(old, new, path: str = "") -> list[str]:
    """Every leaf that differs between two JSON-like values, as ``path: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += differences(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += differences(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["record", "check"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        observed = observe(Path(tmp))
    if args.mode == "record":
        BASELINE.write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n")
        print(f"wrote {BASELINE}")
        return 0
    diffs = differences(json.loads(BASELINE.read_text()), json.loads(json.dumps(observed)))
    for line in diffs:
        print(line)
    print("bit-identical" if not diffs else f"{len(diffs)} values differ")
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
