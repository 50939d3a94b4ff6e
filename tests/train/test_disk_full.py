"""A full disk during training: one line naming the filesystem, the file and the last good
checkpoint; that checkpoint intact; and once space is back, the plain resume finishes the run
bit for bit. The full disk is faked where the OS error surfaces: the writes to the temporary
file raise ``ENOSPC`` (after writing a little, as a real full disk does)."""

from __future__ import annotations

import errno
import os

from ratt.cli import main
from ratt.core import files
from ratt.runs import read_weights
from tests.train.test_resume import _assert_same_run

ARGS = [
    "epochs=2", "train_limit=128", "batch_size=64", "steps=1", "val_attack_steps=1", "test_attacks=clean",
    "threads=1", "checkpoint_every=1", "deterministic=true", "seed=3",
]  # fmt: skip


class _FullFile:
    """A temporary file on a disk with no space left: a little is written, then ENOSPC."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def write(self, data) -> int:
        self.handle.write(bytes(data[:16]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        self.handle.flush()

    def fileno(self) -> int:
        return self.handle.fileno()

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def _disk_fills_after(monkeypatch, n_files: int) -> list[str]:
    """The first ``n_files`` writes succeed, every later one meets a full disk."""
    opened: list[str] = []
    real = files._open_temp

    def open_temp(fd: int):
        opened.append(os.readlink(f"/proc/self/fd/{fd}"))
        handle = real(fd)
        return handle if len(opened) <= n_files else _FullFile(handle)

    monkeypatch.setattr(files, "_open_temp", open_temp)
    return opened


def test_a_full_disk_stops_with_one_line_keeps_the_last_checkpoint_and_resumes_exactly(
    tmp_path, monkeypatch, capsys
):
    reference = tmp_path / "reference"
    assert main(["train", "--quiet", "--out", str(reference), *ARGS]) == 0
    out = tmp_path / "run"
    # writes: config.yaml, versions.json, state + weights after step 1, metrics.jsonl and best
    # at the end of epoch 1; the disk is full for the epoch's full checkpoint (7th write)
    opened = _disk_fills_after(monkeypatch, 6)
    capsys.readouterr()
    assert main(["train", "--quiet", "--out", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    last = out / "checkpoints" / "last.safetensors"
    assert err.startswith("ratt: error: no space left on /")
    assert f"while writing {out / 'checkpoints' / 'last_state.pt'}; " in err
    assert err.rstrip().endswith(f"the last good checkpoint is {last} (epoch 1, step 1)")
    assert os.path.basename(opened[6]).startswith(".last_state.pt.")
    _, meta = read_weights(last)  # intact, and the one the message names
    assert (meta["epoch"], meta["step_in_epoch"]) == (0, 1)
    assert not list(out.rglob("*.tmp"))
    monkeypatch.undo()  # space is back
    assert main(["train", "--quiet", "--resume", str(out)]) == 0
    _assert_same_run(out, reference)


def test_a_full_disk_before_any_checkpoint_says_there_is_none(tmp_path, monkeypatch, capsys):
    _disk_fills_after(monkeypatch, 0)
    assert main(["train", "--quiet", "--out", str(tmp_path / "run"), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "config.yaml; the last good checkpoint is none" in err and err.count("\n") == 1


def test_a_full_disk_at_the_first_weights_leaves_no_checkpoint_and_the_resume_starts_over(
    tmp_path, monkeypatch, capsys, caplog
):
    _disk_fills_after(monkeypatch, 3)  # config, versions, the first state file; not its weights
    out = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(out), *ARGS]) == 2
    assert "last.safetensors; the last good checkpoint is none" in capsys.readouterr().err
    assert not (out / "checkpoints" / "last.safetensors").exists()
    monkeypatch.undo()
    assert main(["train", "--resume", str(out)]) == 0
    assert "starting it again from epoch 0 (seed 3)" in caplog.text
