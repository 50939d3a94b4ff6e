"""The run directory during training: what is written when, and the resume protocol.

:class:`Checkpointer` owns the files (``config.yaml``, ``versions.json``, ``metrics.jsonl``,
``checkpoints/``, ``summary.json``); the trainer only tells it that an epoch ended or a
checkpoint is due. The loop's own position is one :class:`LoopState`, saved and restored
as a whole together with the stateful objects (optimizer, schedule, method, scaler, RNGs).

A checkpoint is consistent even if the process is killed half-way: the previous state file
becomes ``last_state.prev.pt``, the new state is written, then the weights; the weights
carry a checkpoint id and resuming takes whichever state file has the same id. Every file
is replaced atomically (:mod:`ratt.core.files`), ``metrics.jsonl`` included: its rows are
also kept in the state file, so a resume rebuilds them whatever happened to the file. A
full disk stops the run with one line naming the last good checkpoint.

A directory with no complete checkpoint starts again from epoch 0 (:meth:`Checkpointer.restart`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ratt import config as cfg
from ratt._version import __version__
from ratt.core.files import NoSpaceError, remove_temp_files, write_json, write_text
from ratt.core.lock import DirectoryLock
from ratt.core.rng import rng_state, set_rng_state
from ratt.errors import UserError
from ratt.runs import RunFiles, load_state, read_weights, save_state, save_weights

log = logging.getLogger(__name__)

# Config keys that may differ when resuming (marked in the config sections); the rest must match.
RESUMABLE_KEYS = cfg.RESUMABLE_KEYS
# What every training state file holds (LoopState's fields and the RNGs).
STATE_KEYS = ("epoch", "step_in_epoch", "sums", "epoch_seconds", "elapsed", "best_robust", "skipped",
              "checkpoint_id", "rng")  # fmt: skip
# Fields of metrics.jsonl that measure wall time (the only ones a resumed run changes).
TIMING_FIELDS = ("seconds", "train_seconds")


@dataclass
class LoopState:
    """Where the training loop is.

    Attributes:
        epoch: completed epochs.
        step_in_epoch: completed steps of the current epoch.
        sums: running sums of the epoch's logged losses (times batch sizes), on the device.
        epoch_seconds: training time spent in the current epoch.
        elapsed: training time of the whole run (final evaluation excluded).
        best_robust: best validation accuracy so far that selects checkpoints (-1: none yet):
            robust, or clean for natural training (``Method.select_by``).
        skipped: batches skipped for a non-finite loss.
        checkpoint_id: number of full checkpoints written (matches weights to state files).
        metrics: the ``metrics.jsonl`` rows of the completed epochs, as JSON strings (None:
            a state file written before ratt kept them).
    """

    epoch: int = 0
    step_in_epoch: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    epoch_seconds: float = 0.0
    elapsed: float = 0.0
    best_robust: float = -1.0
    skipped: int = 0
    checkpoint_id: int = 0
    metrics: list[str] | None = field(default_factory=list)

    def end_epoch(self) -> None:
        """Move to the start of the next epoch."""
        self.epoch += 1
        self.step_in_epoch, self.sums, self.epoch_seconds = 0, {}, 0.0

    def to_state(self) -> dict[str, Any]:
        """Plain values (sums on the CPU) for the state file."""
        state = asdict(self)
        state["sums"] = {k: v.detach().cpu() for k, v in self.sums.items()}
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> LoopState:
        """The loop saved by :meth:`to_state`."""
        metrics = state.get("metrics")
        return cls(
            epoch=int(state["epoch"]),
            step_in_epoch=int(state["step_in_epoch"]),
            sums={k: v.to(device) for k, v in state["sums"].items()},
            epoch_seconds=float(state["epoch_seconds"]),
            elapsed=float(state["elapsed"]),
            best_robust=float(state["best_robust"]),
            skipped=int(state["skipped"]),
            checkpoint_id=int(state["checkpoint_id"]),
            metrics=None if metrics is None else [str(row) for row in metrics],
        )


def run_lock(out_dir: str | Path, enabled: bool = True) -> DirectoryLock:
    """The run directory's lock (one writer at a time; under torchrun only rank 0 holds it)."""
    return DirectoryLock(RunFiles(out_dir).lock, "ratt train", enabled=enabled)


class Checkpointer:
    """Writes and reads one run directory's files; only the main process writes.

    Args:
        out_dir: the run directory.
        config: the run's resolved configuration (stored with every checkpoint).
        is_main: this process writes (rank 0); other ranks only read.
    """

    def __init__(self, out_dir: str | Path, config: cfg.TrainConfig, is_main: bool = True) -> None:
        self.files = RunFiles(out_dir)
        self.config = config
        self.is_main = is_main
        self.last_good: str | None = None  # the last complete checkpoint, for error messages
        self.workdir = str(Path.cwd())  # where the checkpoints were written (in their metadata)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A full disk becomes one line naming the last good checkpoint."""
        try:
            yield
        except NoSpaceError as exc:
            good = self.last_good or "none (no checkpoint was complete yet)"
            raise UserError(f"{exc}; the last good checkpoint is {good}") from None

    def start(self, versions: dict[str, str]) -> None:
        """Create the directory, remove temporary files a killed writer left, write
        ``config.yaml`` and ``versions.json`` (called with the directory's lock held)."""
        if not self.is_main:
            return
        self.remove_temp_files()
        with self._writing():
            text = yaml.safe_dump(self.config.to_dict(), sort_keys=False)
            write_text(self.files.config, text)
            write_json(self.files.versions, versions)

    def append_metrics(self, row: dict[str, Any], loop: LoopState) -> None:
        """Add one epoch's row to ``loop`` (so the next checkpoint holds it) and rewrite
        ``metrics.jsonl`` with every row."""
        if loop.metrics is None:  # resumed from an old state file: rows rebuilt in resume()
            loop.metrics = []
        loop.metrics.append(json.dumps(row))
        if self.is_main:
            with self._writing():
                write_text(self.files.metrics, "".join(line + "\n" for line in loop.metrics))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        if self.is_main:
            with self._writing():
                write_json(self.files.summary, summary)

    def _metadata(self, loop: LoopState) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epoch": loop.epoch,
            "step_in_epoch": loop.step_in_epoch,
            "checkpoint_id": loop.checkpoint_id,
            "ratt_version": __version__,
            "format": "ratt-checkpoint-1",
            "workdir": self.workdir,
        }

    def _check_finite(self, model: nn.Module, loop: LoopState) -> None:
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise UserError(
                    f"weight {name} is not finite at epoch {loop.epoch + 1}, step "
                    f"{loop.step_in_epoch}; kept the last good checkpoint "
                    f"{self.files.weights('last')} (try a smaller optim.lr)"
                )

    def save_weights(self, model: nn.Module, name: str, loop: LoopState) -> None:
        """Write ``checkpoints/NAME.safetensors`` (weights + config); refuses non-finite weights."""
        self._check_finite(model, loop)
        if self.is_main:
            with self._writing():
                save_weights(model, self.files.weights(name), self._metadata(loop))

    def save_last(
        self, model: nn.Module, stateful: dict[str, Any], loop: LoopState, device: torch.device
    ) -> None:
        """A full checkpoint: ``loop`` (its id incremented), the ``state_dict()`` of every object
        in ``stateful`` (None entries skipped), every RNG, then the weights as ``last``."""
        self._check_finite(model, loop)
        loop.checkpoint_id += 1
        if not self.is_main:
            return
        state = loop.to_state()
        state.update({key: obj.state_dict() for key, obj in stateful.items() if obj is not None})
        state["rng"] = rng_state(device)
        current = self.files.last_state
        with self._writing():
            if current.exists():
                os.replace(current, self.files.previous_state)
            save_state(state, current)
        self.save_weights(model, "last", loop)
        self.last_good = _describe(self.files.weights("last"), loop)

    def has_checkpoint(self) -> bool:
        """Whether a full checkpoint (``last.safetensors``) was ever completed."""
        return self.files.weights("last").is_file()

    def remove_temp_files(self) -> None:
        """Delete the temporary files a killed writer left (call it holding the run's lock)."""
        if self.is_main:
            for stale in remove_temp_files(self.files.root) + remove_temp_files(self.files.checkpoints):
                log.info("removed %s, left by an interrupted write", stale)

    def restart(self) -> None:
        """Start a run that has no complete checkpoint again from epoch 0: its partial files
        (training state, weights, metrics, summary) are removed; its config must allow it."""
        if self.files.config.is_file():
            try:
                saved = cfg.load_yaml(self.files.config)
            except UserError:
                saved = None  # unreadable: it is rewritten by start()
            self._check_config(saved)
        self.remove_temp_files()
        if not self.is_main:
            return
        partial = [self.files.metrics, self.files.summary, self.files.last_state, self.files.previous_state]
        if self.files.checkpoints.is_dir():
            partial += sorted(self.files.checkpoints.glob("*.safetensors"))
        removed = [path for path in partial if path.is_file()]
        for path in removed:
            path.unlink()
        if self.files.config.is_file() or removed:
            note = f", removed {len(removed)} partial files" if removed else ""
            log.warning(
                "%s holds no complete checkpoint: starting it again from epoch 0 (seed %d)%s",
                self.files.root, self.config.run.seed, note,
            )  # fmt: skip

    def resume(self, model: nn.Module, stateful: dict[str, Any], device: torch.device) -> LoopState:
        """Restore the weights, every object in ``stateful``, the RNGs and the loop from the
        last checkpoint; rewrite ``metrics.jsonl`` with the rows up to it."""
        last = self.files.weights("last")
        weights, meta = read_weights(last)
        self._check_config(meta.get("config"))
        state = None
        for path in (self.files.last_state, self.files.previous_state):
            if path.exists():
                candidate = load_state(path)
                if damage := _damage(candidate):
                    raise UserError(f"training state {path} is damaged: it {damage}; cannot resume exactly")
                if candidate.get("checkpoint_id") == meta.get("checkpoint_id"):
                    state = candidate
                    break
        if state is None:
            raise UserError(
                f"{self.files.checkpoints}: no training state matches last.safetensors "
                f"(checkpoint id {meta.get('checkpoint_id')}); cannot resume exactly"
            )
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise UserError(f"{last}: {str(exc).splitlines()[0]}") from None
        try:
            for key, obj in stateful.items():
                if obj is not None and key in state:
                    obj.load_state_dict(state[key])
            set_rng_state(state["rng"], device)
            loop = LoopState.from_state(state, device)
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            raise UserError(f"training state {path} is damaged ({what}); cannot resume exactly") from None
        self.remove_temp_files()
        if loop.metrics is None:  # a state file from before the rows were kept in it
            loop.metrics = _rows_from_file(self.files.metrics, loop.epoch)
        if self.is_main:
            with self._writing():
                _rewrite_metrics(self.files.metrics, loop.metrics, loop.epoch)
        self.last_good = _describe(last, loop)
        log.info("resumed %s at epoch %d, step %d", self.files.root, loop.epoch + 1, loop.step_in_epoch)
        return loop

    def _check_config(self, saved: dict[str, Any] | None) -> None:
        """The saved config may differ from this one only in :data:`RESUMABLE_KEYS` (None: no
        saved config to compare with)."""
        if saved is None:
            return
        if not isinstance(saved, dict):
            raise UserError(f"cannot resume {self.files.root}: its saved config is not a mapping of sections")
        saved = cfg.from_dict(saved).to_dict()  # fields added since the run was written: defaults
        if saved != self.config.to_dict():
            changed = cfg.diff_keys(saved, self.config.to_dict())
            bad = [k for k in changed if k not in RESUMABLE_KEYS]
            if bad:
                raise UserError(
                    f"cannot resume {self.files.root}: config differs in {', '.join(bad)} "
                    f"(only {', '.join(sorted(RESUMABLE_KEYS))} may change)"
                )


def _damage(state: Any) -> str:
    """What is wrong with a loaded training state ('' if nothing)."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a mapping"
    missing = [k for k in STATE_KEYS if k not in state]
    return f"lacks {', '.join(missing)}" if missing else ""


def _describe(weights: Path, loop: LoopState) -> str:
    where = (
        f"epoch {loop.epoch + 1}, step {loop.step_in_epoch}"
        if loop.step_in_epoch
        else f"end of epoch {loop.epoch}"
    )
    return f"{weights} ({where})"


def _rows_from_file(path: Path, epoch: int) -> list[str]:
    """The rows of ``metrics.jsonl`` up to ``epoch``, up to the first unreadable line (resuming
    a state file that does not hold them)."""
    keep: list[str] = []
    lines = [line for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] <= epoch:
            keep.append(line)
    return keep


def _rewrite_metrics(path: Path, rows: list[str], epoch: int) -> None:
    """Make ``metrics.jsonl`` hold exactly ``rows`` (those of the checkpoint, up to ``epoch``),
    saying in one line what was restored or dropped."""
    text = "".join(row + "\n" for row in rows)
    try:
        current = path.read_text() if path.is_file() and not path.is_symlink() else ""
    except (OSError, UnicodeDecodeError):
        current = ""
    if current == text:
        return
    lines = [line for line in current.splitlines() if line.strip()]
    restored = sum(row not in lines for row in rows)
    redone, unreadable = [], 0
    for line in lines:
        if line in rows:
            continue
        try:
            number = int(json.loads(line)["epoch"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            number = 0
        if number > epoch:
            redone.append(number)
        else:
            unreadable += 1
    write_text(path, text)
    parts = [f"restored {restored} missing or damaged row(s)"] if restored else []
    if redone:
        parts.append(f"dropped the row(s) of epoch(s) {', '.join(map(str, sorted(set(redone))))}, redone now")
    if unreadable:
        parts.append(f"dropped {unreadable} unreadable or foreign line(s)")
    (log.warning if restored or unreadable else log.info)(
        "%s: rewritten from the checkpoint's %d row(s): %s",
        path,
        len(rows),
        "; ".join(parts) or "reformatted",
    )
