"""Exact resume: kill a training process (SIGKILL at any point, mid-checkpoint-write, SIGTERM),
resume it, and compare with an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ratt.runs import read_weights
from ratt.train.checkpointing import TIMING_FIELDS

METHODS = ["trades", "rat_trades", "awp+rat_trades"]
# The write and signal paths do not depend on the method: the default suite runs them on the
# method with the most state to save (AWP's and RAT's), the others with -m slow.
STATEFUL_FIRST = [pytest.param(m, marks=() if m == "awp+rat_trades" else pytest.mark.slow) for m in METHODS]


def _args(out: Path, method: str) -> list[str]:
    return [
        "train", "--quiet", "--out", str(out), f"method={method}", "epochs=3", "train_limit=320",
        "batch_size=64", "steps=2", "val_attack_steps=2", "test_attacks=clean", "threads=1",
        "checkpoint_every=1", "awp_warmup=0", "deterministic=true",
    ]  # fmt: skip


def _run(out: Path, method: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ratt", *_args(out, method), *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


CRASH_WRAPPER = """
import os, signal, sys, tempfile
import ratt.runs.checkpoint as ck
from ratt.cli import main
target, calls = int(os.environ["CRASH_AT_WRITE"]), [0]
original = ck.atomic_stream
def crashing(path, write):
    calls[0] += 1
    if calls[0] == target:  # the temporary file is written, the rename never happens
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(path, write)
ck.atomic_stream = crashing
sys.exit(main(sys.argv[1:]))
"""


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def _assert_same_run(a: Path, b: Path) -> None:
    for name in ("last", "best"):
        wa, _ = read_weights(a / "checkpoints" / f"{name}.safetensors")
        wb, _ = read_weights(b / "checkpoints" / f"{name}.safetensors")
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(wa[key], wb[key]), f"{name}: {key} differs"
    assert _metrics(a) == _metrics(b)
    sa = json.loads((a / "summary.json").read_text())["test"]
    sb = json.loads((b / "summary.json").read_text())["test"]
    assert sa["accuracy"] == sb["accuracy"]


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    runs = {}
    for method in METHODS:
        out = root / method.replace("+", "_")
        proc = _run(out, method)
        assert proc.returncode == 0, proc.stderr
        runs[method] = out
    return runs


def kill_after_a_checkpoint(argv: list[str], out: Path, delay: float = 0.0, ready=None) -> None:
    """Start ``python -m ratt ARGV`` (writing ``out``), SIGKILL it ``delay`` seconds after its
    first full checkpoint (and, if given, once ``ready()`` holds); skip the test if it finished
    first (nothing to resume)."""
    proc = subprocess.Popen([sys.executable, "-m", "ratt", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    _wait_for_checkpoint(out, proc)
    while ready is not None and not ready():
        assert proc.poll() is None, "training ended before it was ready to be killed"
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    if proc.returncode == 0:
        pytest.skip("run finished before SIGKILL")


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (out / "checkpoints" / "last_state.pt").exists():
        assert proc.poll() is None, "training ended before the first checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("method", METHODS)
def test_sigkill_at_an_arbitrary_point_then_resume_equals_an_uninterrupted_run(
    method, reference_runs, tmp_path
):
    out = tmp_path / "run"
    kill_after_a_checkpoint(_args(out, method), out, random.Random(method).uniform(0.0, 0.5))
    resumed = _run(out, method, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, reference_runs[method])


@pytest.mark.parametrize("method", STATEFUL_FIRST)
@pytest.mark.parametrize("crash_at", [4, 9])
def test_kill_in_the_middle_of_a_checkpoint_write_then_resume(method, crash_at, reference_runs, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "CRASH_AT_WRITE": str(crash_at)}
    crashed = subprocess.run([sys.executable, "-c", CRASH_WRAPPER, *_args(out, method)],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL
    assert list((out / "checkpoints").glob(".*.tmp")), "the crash left no half-written file"
    resumed = _run(out, method, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, reference_runs[method])


@pytest.mark.parametrize("method", STATEFUL_FIRST)
def test_sigterm_saves_says_how_to_resume_and_resumes_exactly(method, reference_runs, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ratt", *_args(out, method)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("run finished before SIGTERM")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err and "Traceback" not in err
    resumed = _run(out, method, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, reference_runs[method])


def _nan_on_call(trainer, bad_calls: set[int]):
    original, calls = trainer.method.loss, {"n": 0}

    def loss(x, y):
        value, parts = original(x, y)
        calls["n"] += 1
        if calls["n"] in bad_calls:
            value = value * float("nan")
        return value, parts

    trainer.method.loss = loss


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_good_checkpoint(tmp_path):
    from ratt.errors import UserError
    from ratt.runs import build_config
    from ratt.train import Trainer

    config = build_config(overrides=["epochs=2", "train_limit=256", "steps=1", "checkpoint_every=1",
                                     "test_attacks=clean", "progress=false"])  # fmt: skip
    trainer = Trainer(config, tmp_path / "run")
    _nan_on_call(trainer, {3})
    with pytest.raises(UserError, match=r"epoch 1, step 2.*last.safetensors"):
        trainer.train_and_test()
    weights, meta = read_weights(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert meta["step_in_epoch"] == 2
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_skip_nonfinite_skips_and_counts_the_batch(tmp_path):
    from ratt.runs import build_config
    from ratt.train import Trainer

    config = build_config(overrides=["epochs=1", "train_limit=256", "steps=1", "skip_nonfinite=true",
                                     "test_attacks=clean", "progress=false"])  # fmt: skip
    trainer = Trainer(config, tmp_path / "run")
    _nan_on_call(trainer, {2})
    summary = trainer.train_and_test()
    assert summary["skipped_batches"] == 1
    assert _metrics(tmp_path / "run")[0]["skipped_batches"] == 1
