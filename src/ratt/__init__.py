"""ratt: adversarial training with randomized weights via Taylor expansion (RAT, CVPR 2023),
the methods it builds on, the attacks that judge them and the flatness analysis behind it.

Example:
    >>> import ratt
    >>> config = ratt.build_config(overrides=["epochs=5"])
    >>> summary = ratt.fit(config, "runs/demo")
    >>> model, config = ratt.load_checkpoint("runs/demo")
    >>> report = ratt.evaluate_run("runs/demo", ratt.EvalOptions(attacks=["clean", "pgd20", "aa"]))
"""

from __future__ import annotations

from ratt._version import __version__
from ratt.config import TrainConfig
from ratt.errors import UserError
from ratt.eval import EvalOptions, evaluate_run
from ratt.runs import build_config, load_checkpoint
from ratt.train import resume_run
from ratt.train import train as fit

__all__ = [
    "EvalOptions",
    "TrainConfig",
    "UserError",
    "__version__",
    "build_config",
    "evaluate_run",
    "fit",
    "load_checkpoint",
    "resume_run",
]
