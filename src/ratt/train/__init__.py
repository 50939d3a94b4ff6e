"""Training: the loop, schedules and checkpoints."""

from __future__ import annotations

from ratt.train.trainer import Trainer, load_checkpoint, resolve_device, threat_model, train

__all__ = ["Trainer", "load_checkpoint", "resolve_device", "threat_model", "train"]
