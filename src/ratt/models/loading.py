"""Weights from anywhere into a model: ``.safetensors`` files and ``.pt``/``.pth`` state dicts
saved with ``torch.save``, read without unpickling code (``torch.load(weights_only=True)``),
with the usual containers unwrapped and a mismatch named key by key."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors
import torch
from torch import Tensor, nn

from ratt.errors import UserError

# Keys under which training scripts keep the weights inside a saved dict, tried in order.
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "ema", "params")
# Prefixes wrappers add to every key (DataParallel/DDP, torch.compile).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_error(exc: BaseException) -> str:
    """A one-line reason for a failed ``torch.load(weights_only=True)``: torch's own message
    suggests unsafe loading, which ratt never does."""
    text = str(exc)
    if "Weights only load failed" in text or "weights_only" in text:
        return "it holds pickled Python objects, not plain tensors (ratt never unpickles them)"
    return _first_line(exc)[:300]


def load_plain(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, torch's warnings about the pickle
    protocol silenced (ratt refuses anything but plain data whatever the protocol)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, Tensor]:
    """The name -> tensor mapping inside what ``torch.load`` returned.

    Accepts a state dict, or a dict holding one under ``state_dict``, ``model_state_dict``,
    ``model``, ``net``, ``ema`` or ``params``; strips a ``module.`` (DataParallel/DDP) or
    ``_orig_mod.`` (torch.compile) prefix shared by every key.
    """
    while isinstance(obj, Mapping) and not (obj and all(isinstance(v, Tensor) for v in obj.values())):
        inner = next((obj[k] for k in CONTAINER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            keys = ", ".join(map(str, list(obj)[:6])) or "nothing"
            raise UserError(
                f"{source} holds no state dict (keys: {keys}); "
                "save one with torch.save(model.state_dict(), PATH)"
            )
        obj = inner
    if not isinstance(obj, Mapping):
        raise UserError(f"{source} holds a {type(obj).__name__}, not a state dict of tensors")
    state = {str(k): v for k, v in obj.items()}
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file or of a ``torch.save`` file (``.pt``/``.pth``/other),
    on the CPU; ``UserError`` naming the file if it is missing, corrupt or not plain data."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            with safetensors.safe_open(str(path), framework="pt") as handle:
                return {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        except Exception as exc:  # safetensors raises several error types for corrupt files
            raise UserError(f"{path} is corrupt or not a safetensors file: {_first_line(exc)}") from None
    try:
        obj = load_plain(path)
    except Exception as exc:
        raise UserError(f"{path} is not a readable state dict: {load_error(exc)}") from None
    return unwrap_state_dict(obj, str(path))


def load_weights(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load ``state`` into ``model``, strictly, naming the first mismatch.

    A model wrapped in :class:`ratt.models.Normalized` accepts the bare network's keys (its
    ``net.`` prefix is added) and keeps its own ``mean``/``std`` buffers when the file has none.
    """
    own = model.state_dict()
    state = dict(state)
    if own and all(k.startswith("net.") or k in ("mean", "std") for k in own):
        if state and not any(k.startswith("net.") for k in state):
            state = {f"net.{k}": v for k, v in state.items()}
        for buffer in ("mean", "std"):
            if buffer in own and buffer not in state:
                state[buffer] = own[buffer]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        k = missing[0]
        raise UserError(f"{source} lacks {k} (shape {tuple(own[k].shape)}) and {len(missing) - 1} more keys")
    if unexpected:
        k = unexpected[0]
        raise UserError(
            f"{source} has {k} (shape {tuple(state[k].shape)}) that the model does not, "
            f"and {len(unexpected) - 1} more unexpected keys"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(
                f"{source}: {k} has shape {tuple(state[k].shape)}, the model's is {tuple(v.shape)}"
            )
    model.load_state_dict(state)
