"""One writer per directory: an exclusive OS lock (``flock``) on a lock file inside it.

The kernel drops the lock when the holding process ends, however it ends (SIGKILL
included), so a lock is never stale; the lock file stays and only says which pid held it
last. Taking a lock the same process already holds is allowed (it is counted), so a
function that locks may call another that locks the same directory.

Example:
    >>> with DirectoryLock("runs/demo/.lock", "train"):
    ...     ...  # a second process gets a UserError naming this pid
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from ratt.errors import UserError

# (device, inode) of each lock file this process holds -> [descriptor, times taken]
_HELD: dict[tuple[int, int], list[int]] = {}


def _holder(fd: int) -> str:
    """What the holder wrote into the lock file: ``pid N (purpose)``."""
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        text = []
    if not text:
        return "another process"
    return f"pid {text[0]}" + (f" ({' '.join(text[1:])})" if len(text) > 1 else "")


class DirectoryLock:
    """An exclusive lock held through ``path`` (a file in the directory it guards).

    Args:
        path: the lock file (created if missing; never followed if it is a symbolic link).
        purpose: a word for the message a second writer gets (``train``, ``eval``).
        enabled: False makes it a no-op (e.g. the ranks other than 0 under ``torchrun``).

    Raises (on entry):
        UserError: another process holds it (naming its pid), or the directory cannot be made.
    """

    def __init__(self, path: str | Path, purpose: str = "", enabled: bool = True) -> None:
        self.path = Path(path)
        self.purpose = purpose
        self.enabled = enabled
        self._key: tuple[int, int] | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock (see the class doc)."""
        if not self.enabled or self._key is not None:
            return self
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError(f"{directory} is not a directory (give a directory for the run)") from None
        except OSError as exc:
            raise UserError(f"cannot create {directory}: {exc.strerror}") from None
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            raise UserError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        stat = os.fstat(fd)
        key = (stat.st_dev, stat.st_ino)
        if key in _HELD:  # this process holds it already
            os.close(fd)
            _HELD[key][1] += 1
            self._key = key
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(
                f"{directory} is in use by {holder}; wait for it to end (or stop it), then try again"
            ) from None
        try:  # who holds it, for the message above (best effort: a full disk must not stop us)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {self.purpose}\n".encode(), 0)
        except OSError:
            pass
        _HELD[key] = [fd, 1]
        self._key = key
        return self

    def release(self) -> None:
        """Give the lock back (the last release of this process unlocks it)."""
        if self._key is None:
            return
        entry = _HELD[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[self._key]
            os.close(entry[0])  # closing the descriptor drops the flock
        self._key = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
