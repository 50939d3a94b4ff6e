"""ratt: adversarial training with randomized weights via Taylor expansion (RAT, CVPR 2023),
the methods it builds on, the attacks that judge them and the flatness analysis behind it.

Example:
    >>> import ratt
    >>> config = ratt.build_config(overrides=["epochs=5"])
    >>> summary = ratt.fit(config, "runs/demo")
    >>> model, config = ratt.load_checkpoint("runs/demo")
"""

from __future__ import annotations

__version__ = "0.1.0"

from ratt.config import TrainConfig, build_config  # noqa: E402
from ratt.errors import UserError  # noqa: E402
from ratt.train import load_checkpoint  # noqa: E402
from ratt.train import train as fit  # noqa: E402  (ratt.train stays the subpackage)

__all__ = ["TrainConfig", "UserError", "__version__", "build_config", "fit", "load_checkpoint"]
