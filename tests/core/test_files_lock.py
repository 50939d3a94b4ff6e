"""Run files written from outside's point of view: atomic, one mode, no link followed, a full
disk named; and the one-writer lock on a directory."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys

import pytest
import torch

from ratt.core import files
from ratt.core.files import (
    NoSpaceError,
    atomic_stream,
    atomic_write,
    is_no_space,
    remove_temp_files,
    write_json,
    write_text,
)
from ratt.core.lock import DirectoryLock
from ratt.errors import UserError


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_every_atomic_write_gets_the_umask_mode_not_mkstemps_0600(tmp_path, umask_022):
    write_json(tmp_path / "a.json", {"x": 1})
    atomic_write(tmp_path / "b.pt", lambda tmp: torch.save({"t": torch.zeros(2)}, tmp))
    atomic_stream(tmp_path / "c.pt", lambda handle: torch.save({"t": torch.zeros(2)}, handle))
    (tmp_path / "plain.txt").write_text("x")  # what open() gives, the reference
    expected = _mode(tmp_path / "plain.txt")
    assert expected == 0o644
    assert [_mode(tmp_path / n) for n in ("a.json", "b.pt", "c.pt")] == [expected] * 3
    os.umask(0o077)
    write_text(tmp_path / "private.txt", "x")
    assert _mode(tmp_path / "private.txt") == 0o600


def test_the_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", spy)
    write_text(tmp_path / "f.txt", "hello")
    assert synced == [False, True]  # the file, then its directory


def test_a_symlink_at_the_target_is_replaced_never_written_through(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval.json").symlink_to(outside)
    write_json(run / "eval.json", {"new": 1})
    assert outside.read_text() == "precious"
    assert not (run / "eval.json").is_symlink() and "new" in (run / "eval.json").read_text()


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "f.json"
    write_json(target, {"a": 1})

    def failing(handle):
        handle.write(b"{half")
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError):
        atomic_stream(target, failing)
    assert target.read_text() == '{\n "a": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_full_disk_is_one_line_naming_the_filesystem_and_the_file(tmp_path):
    target = tmp_path / "state.pt"
    write_text(target, "old")

    def full(handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(NoSpaceError) as info:
        atomic_stream(target, full)
    message = str(info.value)
    assert message.startswith("no space left on /") and message.endswith(f"while writing {target}")
    assert "\n" not in message and isinstance(info.value, UserError)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_full_disk_errors_are_recognised_through_the_libraries_wrappers():
    # torch.save to a file object re-raises a RuntimeError whose context is the OSError
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 46 vs 0") from None
    except RuntimeError as wrapped:
        assert wrapped.__context__ is not None and is_no_space(wrapped)
    # safetensors formats the io::Error into its message
    assert is_no_space(Exception("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert is_no_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_no_space(OSError(errno.EIO, "I/O error"))
    assert not is_no_space(RuntimeError("unexpected pos 46 vs 0"))


def test_remove_temp_files_removes_only_the_writers_leftovers(tmp_path):
    (tmp_path / ".last_state.pt.abc123.tmp").write_bytes(b"")
    (tmp_path / "notes.tmp").write_text("mine")  # not hidden: not ours
    (tmp_path / "metrics.jsonl").write_text("")
    removed = remove_temp_files(tmp_path)
    assert [p.name for p in removed] == [".last_state.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "notes.tmp"]


HOLDER = """
import sys, time
from ratt.core.lock import DirectoryLock
DirectoryLock(sys.argv[1], "ratt train").acquire()
print("held", flush=True)
time.sleep(120)
"""


def _hold(path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_holder_and_sigkill_frees_the_lock(tmp_path):
    lock = tmp_path / "run" / ".lock"
    holder = _hold(lock)
    try:
        with pytest.raises(UserError, match=rf"in use by pid {holder.pid} \(ratt train\)"):
            DirectoryLock(lock, "ratt eval").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with DirectoryLock(lock, "ratt eval"):  # the kernel dropped the killed holder's lock
        assert lock.read_text().split() == [str(os.getpid()), "ratt", "eval"]


def test_the_lock_is_reentrant_in_one_process_and_released_by_the_last_holder(tmp_path):
    lock = tmp_path / ".lock"
    with DirectoryLock(lock), DirectoryLock(lock):
        pass
    holder = _hold(lock)  # free again: another process can take it
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)


def test_a_disabled_lock_does_nothing(tmp_path):
    with DirectoryLock(tmp_path / "d" / ".lock", enabled=False):
        assert not (tmp_path / "d").exists()


def test_a_lock_file_that_is_a_symlink_or_a_directory_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("x")
    (tmp_path / ".lock").symlink_to(target)
    with pytest.raises(UserError, match="lock file"):
        DirectoryLock(tmp_path / ".lock").acquire()
    assert target.read_text() == "x"
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        DirectoryLock(tmp_path / "afile" / ".lock").acquire()


def test_a_log_is_appended_to_and_never_through_a_symlink(tmp_path):
    log = tmp_path / "cell.log"
    for line in (b"one\n", b"two\n"):
        with files.open_append(log) as handle:
            handle.write(line)
    assert log.read_bytes() == b"one\ntwo\n"
    assert stat.S_IMODE(log.stat().st_mode) == files.file_mode()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    (tmp_path / "linked.log").symlink_to(outside)
    with pytest.raises(UserError, match="symlink"):
        files.open_append(tmp_path / "linked.log")
    assert outside.read_text() == "keep\n"
