"""Training: the loop, one step, checkpoints and resume, schedules, precision.

Example:
    >>> import ratt
    >>> summary = ratt.fit(ratt.build_config(overrides=["epochs=5"]), "runs/demo")
"""

from __future__ import annotations

from ratt.train.checkpointing import Checkpointer, LoopState
from ratt.train.entry import resume_run, train
from ratt.train.interrupt import TrainingInterrupted
from ratt.train.setup import Setup, build_setup
from ratt.train.step import StepOutcome, TrainStep
from ratt.train.trainer import Trainer

__all__ = [
    "Checkpointer",
    "LoopState",
    "Setup",
    "StepOutcome",
    "TrainStep",
    "Trainer",
    "TrainingInterrupted",
    "build_setup",
    "resume_run",
    "train",
]
