"""The run directory during training: what is written when, and the resume protocol.

:class:`Checkpointer` owns the files (``config.yaml``, ``versions.json``, ``metrics.jsonl``,
``checkpoints/``, ``summary.json``); the trainer only tells it that an epoch ended or a
checkpoint is due. The loop's own position is one :class:`LoopState`, saved and restored
as a whole together with the stateful objects (optimizer, schedule, method, scaler, RNGs).

A checkpoint is consistent even if the process is killed half-way: the previous state file
becomes ``last_state.prev.pt``, the new state is written, then the weights; the weights
carry a checkpoint id and resuming takes whichever state file has the same id. Every file
is replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ratt import config as cfg
from ratt._version import __version__
from ratt.core.files import write_json, write_text
from ratt.core.rng import rng_state, set_rng_state
from ratt.errors import UserError
from ratt.runs import RunFiles, load_state, read_weights, save_state, save_weights

log = logging.getLogger(__name__)

# Config keys that may differ when resuming; everything else must match the saved run.
RESUMABLE_KEYS = {
    "optim.epochs",
    "run.progress",
    "run.threads",
    "run.device",
    "run.checkpoint_every",
    "run.keep_every",
    "run.val_every",
    "run.eval_batch_size",
    "run.channels_last",
    "run.compile",
    "run.dist_backend",
    "run.dist_timeout",
}
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
        best_robust: best validation robust accuracy so far (-1: none yet).
        skipped: batches skipped for a non-finite loss.
        checkpoint_id: number of full checkpoints written (matches weights to state files).
    """

    epoch: int = 0
    step_in_epoch: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    epoch_seconds: float = 0.0
    elapsed: float = 0.0
    best_robust: float = -1.0
    skipped: int = 0
    checkpoint_id: int = 0

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
        return cls(
            epoch=int(state["epoch"]),
            step_in_epoch=int(state["step_in_epoch"]),
            sums={k: v.to(device) for k, v in state["sums"].items()},
            epoch_seconds=float(state["epoch_seconds"]),
            elapsed=float(state["elapsed"]),
            best_robust=float(state["best_robust"]),
            skipped=int(state["skipped"]),
            checkpoint_id=int(state["checkpoint_id"]),
        )


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

    def start(self, versions: dict[str, str]) -> None:
        """Create the directory and write ``config.yaml`` and ``versions.json``."""
        if not self.is_main:
            return
        self.files.root.mkdir(parents=True, exist_ok=True)
        cfg.save_yaml(self.config, self.files.config)
        write_json(self.files.versions, versions)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one epoch's row to ``metrics.jsonl``."""
        if self.is_main:
            with open(self.files.metrics, "a") as handle:
                handle.write(json.dumps(row) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        if self.is_main:
            write_json(self.files.summary, summary)

    def _metadata(self, loop: LoopState) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epoch": loop.epoch,
            "step_in_epoch": loop.step_in_epoch,
            "checkpoint_id": loop.checkpoint_id,
            "ratt_version": __version__,
            "format": "ratt-checkpoint-1",
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
        if current.exists():
            os.replace(current, self.files.previous_state)
        save_state(state, current)
        self.save_weights(model, "last", loop)

    def resume(self, model: nn.Module, stateful: dict[str, Any], device: torch.device) -> LoopState:
        """Restore the weights, every object in ``stateful``, the RNGs and the loop from the
        last checkpoint; drop ``metrics.jsonl`` rows of epochs being redone."""
        last = self.files.weights("last")
        weights, meta = read_weights(last)
        self._check_config(meta.get("config"))
        state = None
        for path in (self.files.last_state, self.files.previous_state):
            if path.exists():
                candidate = load_state(path)
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
        for key, obj in stateful.items():
            if obj is not None and key in state:
                obj.load_state_dict(state[key])
        set_rng_state(state["rng"], device)
        loop = LoopState.from_state(state, device)
        if self.is_main:
            self._truncate_metrics(loop.epoch)
        log.info("resumed %s at epoch %d, step %d", self.files.root, loop.epoch + 1, loop.step_in_epoch)
        return loop

    def _check_config(self, saved: dict[str, Any] | None) -> None:
        """The saved config may differ from this one only in :data:`RESUMABLE_KEYS`."""
        if saved is not None:  # fields added since the run was written take their defaults
            saved = cfg.from_dict(saved).to_dict()
        if saved != self.config.to_dict():
            changed = _diff(saved or {}, self.config.to_dict())
            bad = [k for k in changed if k not in RESUMABLE_KEYS]
            if bad:
                raise UserError(
                    f"cannot resume {self.files.root}: config differs in {', '.join(bad)} "
                    f"(only {', '.join(sorted(RESUMABLE_KEYS))} may change)"
                )

    def _truncate_metrics(self, epoch: int) -> None:
        """Drop metrics rows written after the checkpoint (their epoch is being redone)."""
        path = self.files.metrics
        if not path.exists():
            return
        keep = []
        for line in (row for row in path.read_text().splitlines() if row.strip()):
            try:
                if json.loads(line)["epoch"] <= epoch:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError):
                break  # a torn last line from a kill mid-append
        write_text(path, "".join(row + "\n" for row in keep))


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out
