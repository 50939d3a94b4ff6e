"""Resuming needs only the run directory: after a SIGKILL at any moment, a SIGTERM or a kill in
the first checkpoint write, the plain ``ratt train --resume --out DIR`` (nothing of the first
command line repeated) gives the uninterrupted run bit for bit, for a run started with
overrides and for one started from a ``--config`` file; and one writer per directory."""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.train.test_resume import (
    CRASH_WRAPPER,
    _assert_same_run,
    _wait_for_checkpoint,
    kill_after_a_checkpoint,
)

# Set on the command line (first kind) or in a YAML file (second kind), never at resume.
SETTINGS = {
    "optim.epochs": 3, "run.seed": 5, "method.name": "trades", "data.train_limit": 320,
    "data.batch_size": 64, "attack.steps": 2, "run.val_attack_steps": 2, "run.test_attacks": "clean",
    "run.threads": 1, "run.checkpoint_every": 1, "run.deterministic": True,
}  # fmt: skip


def _start_args(kind: str, out: Path) -> list[str]:
    if kind == "overrides":
        return ["train", "--out", str(out), *(f"{k}={v}" for k, v in SETTINGS.items())]
    nested: dict = {}
    for key, value in SETTINGS.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = [value] if name == "test_attacks" else value
    config = out.parent / f"{out.name}.yaml"
    config.write_text(yaml.safe_dump(nested))
    return ["train", "--out", str(out), "--config", str(config)]


def _ratt(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ratt", *args], capture_output=True, text=True,
                          timeout=300, **kwargs)  # fmt: skip


def _resume(out: Path) -> subprocess.CompletedProcess:
    return _ratt("train", "--resume", "--out", str(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = _ratt(*_start_args("overrides", out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("kind", ["overrides", "config"])
def test_sigkill_at_a_random_moment_then_the_plain_resume_equals_an_uninterrupted_run(
    kind, reference, tmp_path
):
    out = tmp_path / "run"
    kill_after_a_checkpoint(_start_args(kind, out), out, random.Random(kind).uniform(0.0, 0.5))
    resumed = _resume(out)
    assert resumed.returncode == 0, resumed.stderr
    assert "changing" not in resumed.stderr  # nothing was changed: the saved config was used
    _assert_same_run(out, reference)


def test_the_resume_command_printed_after_sigterm_works_verbatim(reference, tmp_path):
    out = tmp_path / "a dir with spaces" / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ratt", *_start_args("overrides", out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("run finished before SIGTERM")
    command = re.search(r"resume with: (.+)$", err, re.MULTILINE).group(1)
    argv = shlex.split(command)
    assert argv[0] == "ratt"
    resumed = _ratt(*argv[1:])
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, reference)


@pytest.mark.parametrize("crash_at", [1, 2])  # 1: the first training state, 2: the first weights
def test_a_kill_in_the_first_checkpoint_write_restarts_cleanly_from_epoch_0(crash_at, reference, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "CRASH_AT_WRITE": str(crash_at)}
    crashed = subprocess.run([sys.executable, "-c", CRASH_WRAPPER, *_start_args("overrides", out)],
                             env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL
    assert (
        list((out / "checkpoints").glob(".*.tmp")) and not (out / "checkpoints" / "last.safetensors").exists()
    )
    resumed = _resume(out)
    assert resumed.returncode == 0, resumed.stderr
    assert "starting it again from epoch 0 (seed 5)" in resumed.stderr
    assert not list(out.rglob("*.tmp"))
    _assert_same_run(out, reference)


def test_a_second_ratt_train_on_the_same_directory_gets_exit_2_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "ratt", *_start_args("overrides", out), "epochs=500"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for_checkpoint(out, first)
        second = _ratt(*_start_args("overrides", out))
        assert second.returncode == 2, second.stderr
        assert f"in use by pid {first.pid} (ratt train)" in second.stderr and second.stderr.count("\n") == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
