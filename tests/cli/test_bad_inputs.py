"""Every user mistake is one line on stderr, exit code 2, no traceback, and touches no file."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

from ratt.cli import main
from ratt.models import create_model

TINY = ["epochs=1", "train_limit=128", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "run"
    assert main(["train", "--quiet", "--out", str(out), *TINY]) == 0
    return out


def _snapshot(folder: Path) -> dict[str, str]:
    """Every run file's hash; the lock file only records the pid of the last command that
    held the lock, so it is left out."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def _ratt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ratt", *args], capture_output=True, text=True, timeout=120)


def _assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


BAD_OVERRIDES = [
    (["epocs=3"], "did you mean 'epochs'"),
    (["epochs=three"], "integer"),
    (["eps=-0.1"], "eps"),
    (["steps=0"], "steps"),
    (["alpha=1.5"], "alpha"),
    (["batch_size=0"], "batch_size"),
    (["data=cifar11"], "dataset"),
    (["model=wrn-34"], "model"),
    (["method=rat_trade"], "did you mean 'rat_trades'"),
    (["test_attacks=clean,pgdX"], "attack"),
    (["second_order=both"], "second_order"),
]


@pytest.mark.parametrize("overrides,needle", BAD_OVERRIDES, ids=[o[0][0] for o in BAD_OVERRIDES])
def test_bad_config_values_fail_before_any_work_and_change_nothing(run_dir, overrides, needle):
    before = _snapshot(run_dir)
    proc = _ratt("train", "--out", str(run_dir), *TINY, *overrides)  # checked before "holds a run"
    _assert_user_error(proc, needle)
    assert _snapshot(run_dir) == before


def test_bad_yaml_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    _assert_user_error(_ratt("train", "--config", str(bad), "--out", str(tmp_path / "x")), "bad.yaml")
    assert not (tmp_path / "x").exists()


class _Payload:
    """Unpickling this creates a marker file: the proof that a loader executed code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bad_checkpoints(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["empty"] = tmp_path / "empty.safetensors"
    files["empty"].write_bytes(b"")
    files["random"] = tmp_path / "random.safetensors"
    files["random"].write_bytes(os.urandom(4096))
    files["pickle"] = tmp_path / "pickle.safetensors"
    files["pickle"].write_bytes(pickle.dumps(_Payload(str(tmp_path / "PWNED"))))
    return files


@pytest.mark.parametrize("kind", ["empty", "random", "pickle"])
def test_eval_refuses_corrupt_and_malicious_files(tmp_path, kind):
    path = _bad_checkpoints(tmp_path)[kind]
    _assert_user_error(_ratt("eval", str(path)), path.name)
    assert not (tmp_path / "PWNED").exists()


def test_checkpoint_of_another_architecture_is_named_with_the_mismatch(run_dir, tmp_path):
    _, meta_raw = None, None
    with safetensors.safe_open(str(run_dir / "checkpoints" / "best.safetensors"), "pt") as handle:
        meta_raw = handle.metadata()
    other = create_model("wrn-10-1", 10, (1, 8, 8))
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in other.state_dict().items()}, str(path), meta_raw
    )
    _assert_user_error(_ratt("eval", str(path)), "other.safetensors", "smallcnn")


def test_resume_refuses_a_pickled_state_file_without_running_it(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    state = copy / "checkpoints" / "last_state.pt"
    torch.save({"payload": _Payload(str(tmp_path / "PWNED"))}, state)
    before = _snapshot(copy)
    proc = _ratt("train", "--quiet", "--resume", "--out", str(copy), "epochs=2")
    _assert_user_error(proc, "last_state.pt", "pickled")
    assert not (tmp_path / "PWNED").exists()
    assert _snapshot(copy) == before


def test_resume_without_a_checkpoint_is_one_line(tmp_path):
    _assert_user_error(_ratt("train", "--resume", "--out", str(tmp_path / "nothing"), *TINY), "nothing")


def test_debug_flag_shows_the_traceback(tmp_path):
    proc = _ratt("--debug", "train", "--out", str(tmp_path / "x"), "epocs=1")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bench", "--input", "3x0x32", "--no-memory"], "--input"),
        (["bench", "--batch", "0", "--no-memory"], "--batch 0"),
        (["bench", "--methods", "trades,nope", "--no-memory"], "unknown method 'nope'"),
        (["config", "lr=inf"], "finite"),
    ],
)
def test_bench_and_config_mistakes_are_one_line_before_any_work(argv, needle):
    _assert_user_error(_ratt(*argv), needle)


def test_report_out_that_is_a_file_is_one_line(run_dir, tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    _assert_user_error(_ratt("report", str(run_dir), "--out", str(target)), "is a file")
    assert target.read_text() == "not a folder"
