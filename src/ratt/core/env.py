"""Where and how a process computes: the device, CPU threads, deterministic kernels, and the
versions that decide a run's numbers (recorded in every run directory)."""

from __future__ import annotations

import os
import platform

import torch

from ratt._version import __version__
from ratt.errors import UserError


def resolve_device(name: str, option: str = "run.device") -> torch.device:
    """``auto`` -> CUDA if available else CPU; otherwise ``torch.device(name)``, checked.

    ``option`` names the setting in the error a missing GPU gives.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{option}={name!r} is not a device (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{option}={name} but no CUDA device is visible to torch on this machine (use cpu)")
    return device


def configure_runtime(threads: int | None = None, deterministic: bool = False) -> None:
    """Set torch's CPU thread count (None: leave torch's default) and, with ``deterministic``,
    deterministic kernels (bit-identical repeats on one machine with a fixed thread count)."""
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def versions(device: torch.device) -> dict[str, str]:
    """Python, torch and ratt versions and the device, recorded in every run directory."""
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ratt": __version__,
        "device": str(device),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out
