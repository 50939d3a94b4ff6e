"""A run does not depend on the directory it was started in: the paths of its config are stored
absolute, the user's model file with its sha256 (a changed file is said in one line at eval
and resume), and an error about such a path says where it was looked for and where the
checkpoint was written."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ratt import config as cfg
from ratt.errors import UserError
from ratt.models.external import spec_file

log = logging.getLogger(__name__)


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path else path


def absolute_paths(config: cfg.TrainConfig) -> None:
    """Make ``data.root``, ``data.extra``, ``model.init`` and a ``file.py:build`` model's path
    absolute (from the current directory), in place; no symlink is resolved."""
    config.data.root = _absolute(config.data.root)
    config.data.extra = _absolute(config.data.extra)
    config.model.init = _absolute(config.model.init)
    file = spec_file(config.model.name)
    if file is not None and not file.is_absolute():
        config.model.name = f"{_absolute(str(file))}:{config.model.name.rpartition(':')[2]}"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_model_file(config: cfg.TrainConfig, where: str | Path = "") -> None:
    """Record the sha256 of a ``file.py:build`` model in ``config.model.sha256`` (a new run), or
    say in one warning that the file changed since it was recorded (eval, resume)."""
    file = spec_file(config.model.name)
    if file is None or not file.is_file():
        return
    now = file_sha256(file)
    if config.model.sha256 is None:
        config.model.sha256 = now
    elif config.model.sha256 != now:
        log.warning(
            "%sthe model file %s changed since the run was made (sha256 %s... then, %s... now)",
            f"{where}: " if where else "", file, config.model.sha256[:12], now[:12],
        )  # fmt: skip


@contextlib.contextmanager
def where_paths_are(meta: dict[str, Any], file: Path) -> Iterator[None]:
    """A ``UserError`` raised inside gets where its paths were looked for and where ``file``
    was written (``workdir`` of its metadata)."""
    try:
        yield
    except UserError as exc:
        made = meta.get("workdir")
        written = f"{file} was written in {made}" if made else f"{file} does not say where it was written"
        raise UserError(f"{exc} (relative paths are read from {Path.cwd()}; {written})") from None
