"""The files of a run directory, by what they hold (the only place their names are written).

Nothing inside a run directory is followed through a symbolic link: files are replaced by
atomic renames (a link at a file's place is replaced, never written through), and a
sub-directory (``checkpoints/``, ``eval_partial/``) that is a link is refused with a
``UserError``. The run directory itself may be a link: the user chose it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ratt.errors import UserError

WEIGHTS_SUFFIX = ".safetensors"
EMA_SUFFIX = ".ema"  # checkpoints/NAME.ema.safetensors: the averaged weights (optim.ema_decay)


@dataclass(frozen=True)
class RunFiles:
    """Paths inside one run directory ``root``.

    ``config.yaml`` (resolved config), ``metrics.jsonl`` (one JSON object per epoch),
    ``versions.json``, ``summary.json`` (test accuracy of the selected checkpoint),
    ``eval.json`` (``ratt eval``) with its resumable ``eval_partial/``, ``landscape.json``
    (``ratt landscape``) and ``checkpoints/`` (``NAME.safetensors`` weights, the training state
    ``last_state.pt`` and its predecessor ``last_state.prev.pt``). ``.lock`` is the lock file
    that lets one process at a time write the directory (:class:`ratt.core.lock.DirectoryLock`).
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def versions(self) -> Path:
        return self.root / "versions.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def eval(self) -> Path:
        return self.root / "eval.json"

    @property
    def eval_partial(self) -> Path:
        return self._directory("eval_partial")

    @property
    def landscape(self) -> Path:
        return self.root / "landscape.json"

    def landscape_plot(self, kind: str) -> Path:
        """``landscape_{1d,2d,noise,interp}.png``."""
        return self.root / f"landscape_{kind}.png"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event files (``run.tensorboard=true``)."""
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self._directory("checkpoints")

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def _directory(self, name: str) -> Path:
        """``ROOT/NAME``, refused if it is a symbolic link (it could lead out of the run)."""
        path = self.root / name
        if path.is_symlink():
            raise UserError(
                f"{path} is a symbolic link; ratt does not follow links inside a run directory "
                "(replace it with a directory)"
            )
        return path

    def weights(self, name: str) -> Path:
        """``checkpoints/NAME.safetensors`` (``best``, ``last``, ``epoch-0010``, ...)."""
        return self.checkpoints / f"{name}{WEIGHTS_SUFFIX}"

    @property
    def last_state(self) -> Path:
        return self.checkpoints / "last_state.pt"

    @property
    def previous_state(self) -> Path:
        return self.checkpoints / "last_state.prev.pt"
