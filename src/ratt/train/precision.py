"""Mixed precision, memory format and ``torch.compile`` for training.

- ``precision``: ``fp32`` (default), ``bf16`` or ``fp16`` through ``torch.autocast`` around the
  whole step (attack included); backward and the optimizer run outside it on fp32 weights.
  ``fp16`` scales the loss with ``torch.amp.GradScaler``. The attacks keep their inputs in
  fp32 and take input-gradients in the input's dtype, so the signed step ``x + step *
  sign(g)`` and the projection are exact fp32 operations under any precision; the attack
  losses are sums over the batch, so per-sample gradients are not shrunk by ``1/B``.
- ``channels_last``: model weights and training inputs in NHWC order (faster convolutions
  on tensor cores).
- ``compile``: the model the attacks call is wrapped in ``torch.compile`` (the attack loop
  is K of the K + 3 passes of a TRADES step); the training forwards stay eager because RAT
  reads the classifier's input with a forward hook. If compilation fails the wrapper warns
  once and runs eagerly from then on.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

# The autocast dtype of each reduced precision (run.precision; fp32 runs without autocast).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``bf16``/``fp16`` on ``device``; a no-op context for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A ``GradScaler`` for ``fp16`` (None otherwise: bf16 has fp32's exponent range)."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def to_channels_last(x: Tensor) -> Tensor:
    """(B, C, H, W) in NHWC memory order; other ranks unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


class CompiledOrEager(nn.Module):
    """Calls ``torch.compile(module, mode=mode)`` (``default``: torch's default mode); on any
    compilation error warns once and calls ``module`` eagerly from then on. Shares
    ``module``'s parameters (saves nothing new)."""

    def __init__(self, module: nn.Module, mode: str = "default") -> None:
        super().__init__()
        self.module = module
        self.compiled: nn.Module | None
        try:
            self.compiled = torch.compile(module) if mode == "default" else torch.compile(module, mode=mode)
        except Exception as exc:  # torch.compile is unsupported on this platform/version
            self.compiled = None
            _warn(exc)

    def forward(self, x: Tensor) -> Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as exc:  # inductor/dynamo errors surface at the first call
                self.compiled = None
                _warn(exc)
        return self.module(x)


def _warn(exc: Exception) -> None:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = f"run.compile=true: torch.compile failed ({first[:200]}); running eagerly"
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    log.warning(message)
