"""Training: the loop, schedules and checkpoints."""

from __future__ import annotations

from ratt.train.trainer import (
    Trainer,
    TrainingInterrupted,
    load_checkpoint,
    resolve_device,
    threat_model,
    train,
)

__all__ = ["Trainer", "TrainingInterrupted", "load_checkpoint", "resolve_device", "threat_model", "train"]
