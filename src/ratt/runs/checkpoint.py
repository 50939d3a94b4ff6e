"""Checkpoints: weights in safetensors (with the config in its metadata), the rest of the
training state in a ``torch.save`` file read back with ``weights_only=True``.

Every write goes to a temporary file that is fsync'ed and renamed over the target, so an
interruption leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from ratt.core.files import atomic_write
from ratt.errors import UserError
from ratt.runs.files import RunFiles


def save_weights(model: nn.Module, path: Path, metadata: dict[str, Any]) -> None:
    """Write ``model``'s state dict to ``path`` (safetensors); ``metadata`` values as JSON."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    atomic_write(path, lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata=meta))


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and decoded metadata of a safetensors checkpoint; ``UserError`` if unreadable."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            meta = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # safetensors raises several error types for corrupt files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"checkpoint {path} is corrupt or not a safetensors file: {first}") from None
    return tensors, meta


def save_state(state: dict[str, Any], path: Path) -> None:
    """Write training state (tensors, numbers, strings, containers of them) atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """Read what :func:`save_state` wrote, refusing anything but plain data (no unpickling)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"training state {path} does not exist") from None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"training state {path} is corrupt or unsafe to load: {first}") from None


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (-> its ``best``, else ``last`` checkpoint) or a weights file."""
    path = Path(path)
    if path.is_dir():
        for name in ("best", "last"):
            candidate = RunFiles(path).weights(name)
            if candidate.is_file():
                return candidate
        raise UserError(f"{path} holds no checkpoints/best.safetensors or last.safetensors")
    if not path.exists():
        raise UserError(f"{path} does not exist (give a run directory or a .safetensors file)")
    return path
