"""Hostile, damaged or wrong inputs (issue 27): one line on stderr, exit 2, no traceback, no
run directory left by a refused new run, no file written outside the folder asked for, and
never a number from NaN weights."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from ratt.cli import main
from ratt.runs import read_weights

TINY = ["epochs=1", "train_limit=64", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]
HOLD_LOCK = """
import sys, time
from ratt.core.lock import DirectoryLock
with DirectoryLock(sys.argv[1], "ratt train"):
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["train", "--quiet", "--out", str(out), *TINY]) == 0
    return out


def _cli(capsys, argv: list[str]) -> tuple[int, list[str]]:
    """Exit code and stderr lines of ``ratt ARGV`` run in this process."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


def _one_line(code: int, err: list[str], *needles: str) -> None:
    assert code == 2, err
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]


def _ratt(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ratt", *args], capture_output=True, text=True, timeout=timeout
    )


def _hold_lock(run: Path) -> subprocess.Popen:
    """Another process holding ``run``'s lock (as a live ``ratt train`` does)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run / ".lock")], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


# ---------------------------------------------------------------- refused new runs leave nothing
def _npz(path: Path, kind: str) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (20, 8, 8), dtype=np.uint8), rng.integers(0, 10, 20)
    if kind == "empty-train":
        np.savez(path, x_train=x[:0], y_train=y[:0], x_test=x, y_test=y)
    elif kind == "empty-test":
        np.savez(path, x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    elif kind == "zero-size":
        z = np.zeros((20, 0, 8), np.uint8)
        np.savez(path, x_train=z, y_train=y, x_test=z, y_test=y)
    else:  # truncated
        np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


NEW_RUN_MISTAKES = {
    "seed-overflow": (["seed=1180591620717411303424"], "run.seed"),
    "seed-negative": (["seed=-1"], "run.seed"),
    "list-section": (["--config", "{list_yaml}"], "'optim' holds a list"),
    "empty-train": (["data=npz", "data.root={npz}"], "x_train holds no images"),
    "empty-test": (["data=npz", "data.root={npz}"], "x_test holds no images"),
    "zero-size": (["data=npz", "data.root={npz}"], "zero-size"),
    "truncated": (["data=npz", "data.root={npz}"], "not a readable .npz"),
}


@pytest.mark.parametrize("case", list(NEW_RUN_MISTAKES))
def test_a_refused_new_run_is_one_line_and_leaves_no_directory(tmp_path, capsys, case):
    args, needle = NEW_RUN_MISTAKES[case]
    npz, list_yaml = tmp_path / "data.npz", tmp_path / "list.yaml"
    _npz(npz, case)
    list_yaml.write_text("optim: [1, 2]\n")
    args = [a.format(npz=npz, list_yaml=list_yaml) for a in args]
    out = tmp_path / "run"
    code, err = _cli(capsys, ["train", "--quiet", "--out", str(out), *TINY, *args])
    _one_line(code, err, needle)
    assert not out.exists()


def test_an_out_name_over_255_bytes_is_one_line(tmp_path, capsys):
    out = tmp_path / ("x" * 300)
    _one_line(*_cli(capsys, ["train", "--out", str(out), *TINY]), "--out", "300 bytes")
    _one_line(*_cli(capsys, ["train", "--resume", str(out)]), "300 bytes")


# ---------------------------------------------------------------- one line before any work
CLI_MISTAKES = {
    "sweep-empty-methods": (["sweep", "--out", "{tmp}/sweep", "--methods", ""], "--methods is empty"),
    "sweep-empty-seeds": (["sweep", "--out", "{tmp}/sweep", "--seeds", ","], "--seeds is empty"),
    "landscape-range-nan": (["landscape", "{run}", "--what", "1d", "--range", "nan"], "--range nan"),
    "landscape-range-inf": (["landscape", "{run}", "--what", "1d", "--range", "inf"], "--range inf"),
    "argparse-type": (["eval", "{run}", "--n", "abc"], "see ratt eval --help"),
    "argparse-unknown-option": (["train", "--bogus"], "see ratt train --help"),
    "argparse-unknown-command": (["evl"], "see ratt --help"),
    "argparse-missing": (["export", "{run}"], "--robustbench"),
}


@pytest.mark.parametrize("case", list(CLI_MISTAKES))
def test_cli_mistakes_are_one_line_before_any_work(trained, tmp_path, capsys, case):
    argv, needle = CLI_MISTAKES[case]
    argv = [a.format(tmp=tmp_path, run=trained) for a in argv]
    before = sorted(p.name for p in trained.iterdir())
    _one_line(*_cli(capsys, argv), needle)
    assert not (tmp_path / "sweep").exists()
    assert sorted(p.name for p in trained.iterdir()) == before  # no landscape.json


# ---------------------------------------------------------------- export
EVAL_JSON = {
    "not-json": "{accuracy",
    "a-list": "[1, 2]",
    "strings": json.dumps({"accuracy": {"clean": "0.9", "aa": "0.5"}, "n": 10}),
    "nan": '{"accuracy": {"clean": NaN, "aa": 0.5}, "n": 10}',
    "bad-threat": json.dumps({"accuracy": {"clean": 0.9, "aa": 0.5}, "threat": {"eps": "big"}}),
}


@pytest.mark.parametrize("case", list(EVAL_JSON))
def test_export_over_a_malformed_eval_json_is_one_line(trained, tmp_path, capsys, case):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "eval.json").write_text(EVAL_JSON[case])
    _one_line(*_cli(capsys, ["export", str(run), "--robustbench", str(tmp_path / "rb")]), "eval.json")
    assert not (tmp_path / "rb").exists()


@pytest.mark.parametrize("name", ["../../../escaped", "sub/escaped", "..", ""])
def test_export_name_is_a_file_name_never_a_path(trained, tmp_path, capsys, name):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "eval.json").write_text(json.dumps({"accuracy": {"clean": 0.9, "aa": 0.5}, "n": 10}))
    rb = tmp_path / "a" / "b" / "rb"
    _one_line(*_cli(capsys, ["export", str(run), "--robustbench", str(rb), "--name", name]), "--name")
    assert not list(tmp_path.rglob("escaped*")) and not (tmp_path / "a").exists()


# ---------------------------------------------------------------- NaN weights
def test_nan_weights_are_refused_naming_the_tensor(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    for file in (run / "checkpoints").glob("*.safetensors"):
        tensors, meta = read_weights(file)
        name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 3)
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[3] = float("nan")
        safetensors.torch.save_file(tensors, str(file), {k: json.dumps(v) for k, v in meta.items()})
    _one_line(*_cli(capsys, ["eval", str(run), "--attacks", "clean", "--n", "5"]), name, "NaN")
    assert not (run / "eval.json").exists()
    _one_line(*_cli(capsys, ["landscape", str(run), "--what", "1d", "--points", "3", "--n", "4"]), name)
    assert not (run / "landscape.json").exists()
    (run / "eval.json").write_text(json.dumps({"accuracy": {"clean": 0.9, "aa": 0.5}, "n": 10}))
    _one_line(*_cli(capsys, ["export", str(run), "--robustbench", str(tmp_path / "rb")]), name)
    _one_line(*_cli(capsys, ["train", "--resume", str(run), "epochs=2"]), name)


def test_nan_weights_from_outside_ratt_are_refused(tmp_path, capsys):
    from ratt.models import create_model

    state = create_model("smallcnn", 10, (1, 8, 8)).state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() >= 2)
    state[key].view(-1)[0] = float("inf")
    torch.save(state, tmp_path / "w.pt")
    argv = ["eval", str(tmp_path / "w.pt"), "--model", "smallcnn", "--data", "digits", "--n", "5"]
    _one_line(*_cli(capsys, argv), key)


# ---------------------------------------------------------------- damaged training state
@pytest.mark.parametrize("content", ["a-list", "no-rng", "bad-epoch"])
def test_a_damaged_training_state_is_one_line(trained, tmp_path, capsys, content):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    path = run / "checkpoints" / "last_state.pt"
    state = torch.load(path, weights_only=True)
    if content == "a-list":
        state = [1, 2, 3]
    elif content == "no-rng":
        del state["rng"]
    else:
        state["epoch"] = "one"
    torch.save(state, path)
    _one_line(*_cli(capsys, ["train", "--resume", str(run), "epochs=2"]), "last_state.pt", "damaged")


def test_a_pickled_pt_is_refused_in_one_line_without_advice_to_unpickle(tmp_path):
    torch.save({"state_dict": {}, "object": Path("x")}, tmp_path / "pickled.pt")
    proc = _ratt("eval", str(tmp_path / "pickled.pt"), "--model", "smallcnn", "--data", "digits")
    _one_line(proc.returncode, proc.stderr.strip().splitlines(), "pickled Python objects")
    assert "weights_only" not in proc.stderr


# ---------------------------------------------------------------- report over damaged runs
REPORT_DAMAGE = {
    "yaml-tag": ("config.yaml", "model: !!python/object:os.system {}\n", "config.yaml"),
    "jsonl-garbage": ("metrics.jsonl", "{not json\n", "metrics.jsonl line 1"),
    "jsonl-not-object": ("metrics.jsonl", "[1, 2]\n", "metrics.jsonl line 1"),
    "jsonl-bytes": ("metrics.jsonl", b"\xff\xfe\x00\x81" * 20, "metrics.jsonl"),
}


@pytest.mark.parametrize("case", list(REPORT_DAMAGE))
def test_report_over_a_damaged_run_is_one_line(trained, tmp_path, capsys, case):
    name, content, needle = REPORT_DAMAGE[case]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    target = run / name
    target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
    _one_line(*_cli(capsys, ["report", str(run), "--out", str(tmp_path / "report")]), needle)


@pytest.mark.parametrize("name", ["metrics.jsonl", "summary.json"])
def test_report_never_opens_a_fifo(trained, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / name).unlink()
    os.mkfifo(run / name)
    proc = _ratt("report", str(run), "--out", str(tmp_path / "report"), timeout=60)  # it used to hang
    _one_line(proc.returncode, proc.stderr.strip().splitlines(), name, "not a regular file")


def test_report_never_writes_through_a_planted_link(trained, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "report.md").symlink_to(victim)
    (out / "report.html").symlink_to(victim)
    assert _cli(capsys, ["report", str(trained), "--out", str(out)])[0] == 0
    assert victim.read_text() == "precious"
    assert not (out / "report.md").is_symlink() and "# ratt report" in (out / "report.md").read_text()


# ---------------------------------------------------------------- one writer
def test_landscape_of_a_run_in_training_is_refused(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    holder = _hold_lock(run)
    try:
        argv = ["landscape", str(run), "--what", "1d", "--points", "3", "--n", "4"]
        _one_line(*_cli(capsys, argv), "in use by", "ratt train")
    finally:
        holder.kill()
        holder.wait()
    assert not (run / "landscape.json").exists()


def test_the_loser_of_a_lock_race_removes_nothing(tmp_path, monkeypatch, capsys):
    """The second ``ratt train --out D`` saw D free, then found it locked by the winner."""
    from ratt.train import entry

    out = tmp_path / "run"
    holders = []
    real_lock = entry.run_lock

    def lock_taken_meanwhile(*args, **kwargs):
        out.mkdir()
        holders.append(_hold_lock(out))  # the winner starts between the check and the lock
        return real_lock(*args, **kwargs)

    monkeypatch.setattr(entry, "run_lock", lock_taken_meanwhile)
    try:
        _one_line(*_cli(capsys, ["train", "--out", str(out), *TINY]), "in use by")
        assert (out / ".lock").exists(), "the loser deleted the winner's lock"
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


def test_resume_of_a_directory_holding_only_a_stale_lock_starts_the_run(tmp_path, capsys, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("12345 ratt train\n")  # SIGKILLed right after taking the lock
    code, err = _cli(capsys, ["train", "--quiet", "--resume", str(out), *TINY])
    assert code == 0, err
    assert sum("starting it as a new run" in r.getMessage() for r in caplog.records) == 1
    assert (out / "summary.json").is_file() and (out / "config.yaml").is_file()


def test_a_signal_during_the_final_test_prints_the_resume_command(tmp_path):
    out = tmp_path / "run"
    args = [*TINY[:-2], "test_attacks=clean,pgd20", "threads=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ratt", "train", "--out", str(out), "run.progress=false", *args],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    for line in proc.stderr:  # the epoch line comes after the last checkpoint, before the test
        lines.append(line)
        if line.startswith("epoch 1/1"):
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, "".join(lines) + rest
    assert "final test" in rest and "resume with: ratt train --resume --out" in rest, rest
    assert not (out / "summary.json").exists()
    command = rest.split("resume with: ")[1].split()
    assert command[0] == "ratt" and main([*command[1:], "--quiet"]) == 0  # the command works verbatim
    assert (out / "summary.json").is_file()


def test_doctor_out_an_existing_folder_writes_the_report_inside(tmp_path):
    from ratt.doctor.run import DoctorOptions, run_doctor

    report = run_doctor(DoctorOptions(dry_run=True, sections=(), out=tmp_path))
    assert report.out == tmp_path / "ratt-doctor.json"
    assert json.loads((tmp_path / "ratt-doctor.json").read_text())["complete"] is True
