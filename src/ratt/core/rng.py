"""Random-number-generator state as plain tensors and numbers (loadable with weights_only)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every global generator's state: Python, NumPy, torch CPU and (if present) CUDA.

    With a CUDA ``device``, its generator is also stored on its own (``cuda_device``): in a
    multi-process run each process draws on its own GPU, so that is the state to restore.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": torch.tensor(internal, dtype=torch.int64),
        "python_gauss": gauss,
        "numpy": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": int(pos),
        "numpy_gauss": [int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
        if device is not None and device.type == "cuda":
            state["cuda_device"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what :func:`rng_state` returned (``cuda_device`` onto ``device``, if CUDA)."""
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), state["python_gauss"]))
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state(
        ("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], int(has_gauss), cached)
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        if "cuda_device" in state and device is not None and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_device"], device)
