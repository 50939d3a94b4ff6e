"""Checkpoints: weights in safetensors (with the config in its metadata), the rest of the
training state in a ``torch.save`` file read back with ``weights_only=True``.

Every write goes to a temporary file that is fsync'ed and renamed over the target, so an
interruption (or a full disk) leaves the previous checkpoint intact. A checkpoint's header
(tensor names and shapes, metadata) can be read without reading any weights:
:func:`read_header`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from ratt.core.files import atomic_stream
from ratt.errors import UserError
from ratt.models.loading import load_error, load_plain
from ratt.runs.files import RunFiles


def save_weights(model: nn.Module, path: Path, metadata: dict[str, Any]) -> None:
    """Write ``model``'s state dict to ``path`` (safetensors); ``metadata`` values as JSON."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    data = safetensors.torch.save(tensors, metadata=meta)  # written by us: a full disk is an OSError
    atomic_stream(path, lambda handle: handle.write(data))


def _decode_metadata(path: Path, raw: dict[str, str] | None) -> dict[str, Any]:
    meta = {}
    for key, value in (raw or {}).items():
        try:
            meta[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            raise UserError(f"checkpoint {path}: metadata {key!r} is not valid JSON") from None
    return meta


def _open_error(path: Path, exc: Exception) -> UserError:
    if isinstance(exc, FileNotFoundError):
        return UserError(f"checkpoint {path} does not exist")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UserError(f"checkpoint {path} is corrupt or not a safetensors file: {first}")


def read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    """Tensor shapes and decoded metadata of a safetensors checkpoint, reading no weights.

    Raises:
        UserError: missing or unreadable file, or a metadata value that is not JSON.
    """
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata()
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises several error types for corrupt files
        raise _open_error(path, exc) from None
    return shapes, _decode_metadata(path, raw)


def check_finite(tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Every floating-point tensor of ``tensors`` is finite; else a ``UserError`` naming the
    first that is not (NaN or infinite weights give wrong numbers, never an error)."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{source}: tensor {name} holds NaN or infinite values: unusable weights")


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and decoded metadata of a safetensors checkpoint; ``UserError`` if unreadable
    or if a tensor is not finite (:func:`check_finite`)."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata()
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises several error types for corrupt files
        raise _open_error(path, exc) from None
    check_finite(tensors, path)
    return tensors, _decode_metadata(path, raw)


def save_state(state: dict[str, Any], path: Path) -> None:
    """Write training state (tensors, numbers, strings, containers of them) atomically."""
    atomic_stream(path, lambda handle: torch.save(state, handle))


def load_state(path: Path) -> dict[str, Any]:
    """Read what :func:`save_state` wrote, refusing anything but plain data (no unpickling)."""
    try:
        return load_plain(path)
    except FileNotFoundError:
        raise UserError(f"training state {path} does not exist") from None
    except Exception as exc:
        raise UserError(f"training state {path} is corrupt or unsafe to load: {load_error(exc)}") from None


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
