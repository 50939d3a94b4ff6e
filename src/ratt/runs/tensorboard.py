"""``run.tensorboard=true``: every number of ``metrics.jsonl`` as TensorBoard scalars in the run
directory (``RUN_DIR/tensorboard``), one point per epoch; ``ratt eval`` adds its accuracies.

A resumed run reopens the stream with ``purge_step`` at the epoch it redoes, so an epoch logged
before a kill and trained again after the resume appears once. Needs the ``tensorboard``
package (``pip install 'ratt[tensorboard]'``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ratt.errors import UserError
from ratt.runs.files import RunFiles


def _writer(root: Path, purge_step: int | None, stream: str = ""):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("run.tensorboard=true needs tensorboard: pip install 'ratt[tensorboard]'") from None
    folder = RunFiles(root).tensorboard / stream if stream else RunFiles(root).tensorboard
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def tag_of(key: str) -> str:
    """``train_loss`` -> ``train/loss``, ``val_robust_acc`` -> ``val/robust_acc``, ``lr`` -> ``lr``."""
    prefix, _, rest = key.partition("_")
    return f"{prefix}/{rest}" if rest and prefix in ("train", "val", "test", "flat", "eval") else key


class TensorBoardLog:
    """The run's TensorBoard stream.

    Args:
        root: the run directory.
        purge_step: the first epoch being (re)written; events at or after it from an earlier
            session are dropped (None: a new run).
        stream: a sub-stream (``eval``: ``ratt eval``'s accuracies, kept apart from training's).
    """

    def __init__(self, root: str | Path, purge_step: int | None = None, stream: str = "") -> None:
        self.writer = _writer(Path(root), purge_step, stream)

    def log(self, row: dict[str, Any], step: int) -> None:
        """Every finite number of ``row`` at ``step`` (``epoch`` itself is the step)."""
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                if math.isfinite(value):
                    self.writer.add_scalar(tag_of(key), value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
