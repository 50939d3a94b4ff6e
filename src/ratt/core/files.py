"""Atomic file writes: a reader (or a kill at any instant) sees the old file or the new one.

Every write goes to a temporary file ``.NAME.XXXX.tmp`` beside the target, which is written,
fsync'ed, given the mode every other file gets (``0666`` minus the umask: ``0644`` usually,
where ``mkstemp`` alone would leave ``0600``), renamed over the target, and the directory is
fsync'ed so the rename itself survives a power cut. The rename replaces a symbolic link at
the target with the new file: a planted link is never written through. A full disk (or
quota) is a :class:`NoSpaceError` naming the filesystem and the file, and the previous
file is left as it was.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ratt.errors import UserError

TEMP_SUFFIX = ".tmp"
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_NO_SPACE_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")


class NoSpaceError(UserError):
    """The filesystem holding ``path`` is full; nothing was replaced."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(f"no space left on {filesystem_of(self.path.parent)} while writing {self.path}")


def file_mode() -> int:
    """The mode new files get: ``0666`` minus the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def filesystem_of(path: Path) -> str:
    """``MOUNT_POINT (DEVICE)`` of the filesystem holding ``path`` (best effort)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    device = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == device:
        path = path.parent
    try:
        with open("/proc/self/mounts") as handle:
            rows = [line.split() for line in handle]
        sources = {row[1]: row[0] for row in rows if len(row) > 1}
    except OSError:
        sources = {}
    source = sources.get(str(path))
    return f"{path} ({source})" if source else str(path)


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a full disk or quota: libraries
    wrap the ``OSError`` (torch's zip writer in a ``RuntimeError``, safetensors in its own)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return True
        if any(text in str(current).lower() for text in _NO_SPACE_TEXT):
            return True
        stack += [current.__cause__, current.__context__]
    return False


NAME_MAX = 255  # bytes in one file name on Linux and macOS filesystems


def check_name_lengths(path: str | Path, what: str = "path") -> None:
    """Every component of ``path`` fits in a file name (:data:`NAME_MAX` bytes); a one-line
    ``UserError`` naming ``what`` otherwise (the OS would say only "File name too long")."""
    for part in Path(path).parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise UserError(
                f"{what}: the name {part[:24]}... is {size} bytes long; a file name holds at most {NAME_MAX}"
            )


def _open_temp(fd: int) -> IO[bytes]:
    """The temporary file's handle (one place, so a test can fake a full disk here)."""
    return os.fdopen(fd, "wb")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory: the rename is done anyway
        pass
    finally:
        os.close(fd)


def _replace(path: Path, fill: Callable[[int, str], None]) -> None:
    """Create the temporary file, ``fill(fd, tmp_path)`` it (closing ``fd``), then rename."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path} is a directory: cannot write a file in its place (give a file path)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, file_mode())
        fill(fd, tmp)
        os.replace(tmp, path)
        _fsync_directory(path.parent)
    except BaseException as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, Exception) and not isinstance(exc, UserError) and is_no_space(exc):
            raise NoSpaceError(path) from None
        raise


def atomic_stream(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(handle)`` with a binary file open on a temporary file beside ``path``, then
    fsync it and rename it over ``path`` (``torch.save(obj, handle)`` works as ``write``)."""

    def fill(fd: int, tmp: str) -> None:
        with _open_temp(fd) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())

    _replace(path, fill)


def atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, rename it over
    ``path``. The temporary file is removed if ``write`` fails."""

    def fill(fd: int, tmp: str) -> None:
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())

    _replace(path, fill)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_stream(Path(path), lambda handle: handle.write(data))


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode())


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=1))


def save_figure(figure: Any, path: Path, dpi: int) -> None:
    """A matplotlib ``figure`` saved to ``path`` (format from its suffix) atomically, never
    through a link."""
    path = Path(path)
    atomic_stream(path, lambda handle: figure.savefig(handle, format=path.suffix[1:], dpi=dpi))


def open_append(path: Path) -> IO[bytes]:
    """``path`` opened for appending (created with :func:`file_mode`), never through a symlink:
    for logs that grow while a process runs, which cannot be written atomically."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, file_mode())
    except OSError:
        if Path(path).is_symlink():
            raise UserError(f"{path} is a symlink: ratt does not write through one (remove it)") from None
        raise
    return os.fdopen(fd, "ab")


def read_regular_text(path: Path) -> str | None:
    """The UTF-8 text of ``path`` if it is a regular file (None if it is missing); a FIFO,
    device or directory is refused without opening it (a FIFO would block forever), as is
    text that is not UTF-8: one-line ``UserError``s naming the file."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        raise UserError(f"{path} is not a regular file (a FIFO, device or directory?); ratt reads only files")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is unreadable ({type(exc).__name__}): is it a file ratt wrote?") from None


def remove_temp_files(directory: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory`` (not below it); returns
    them. Call it only while holding the directory's lock (:mod:`ratt.core.lock`)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(f".*{TEMP_SUFFIX}") if p.is_file() or p.is_symlink()]
    for path in stale:
        path.unlink()
    return stale


def json_ready(value: Any) -> Any:
    """Tuples as lists and non-finite floats as None, recursively (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
