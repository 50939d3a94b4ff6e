"""Where and how a process computes: the device, CPU threads, deterministic kernels, and the
versions that decide a run's numbers (recorded in every run directory)."""

from __future__ import annotations

import os
import platform
import re

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


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued kernels (CUDA); a no-op elsewhere. Call before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def configure_runtime(threads: int | None = None, deterministic: bool = False) -> None:
    """Set torch's CPU thread count (None: leave torch's default) and, with ``deterministic``,
    deterministic kernels (bit-identical repeats on one machine with a fixed thread count)."""
    if threads:
        torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_versions() -> dict[str, str]:
    """The oneDNN (MKL-DNN) and MKL versions torch was built with, from ``torch.__config__``."""
    out = {}
    for line in torch.__config__.show().splitlines():
        text = line.strip().lstrip("- ")
        match = re.search(r"MKL-DNN (v[\d.]+)", text)
        if match:
            out["onednn"] = match.group(1)
        match = re.search(r"Math Kernel Library Version ([\d.]+)", text)
        if match:
            out["mkl"] = match.group(1)
    return out


def versions(device: torch.device) -> dict[str, str]:
    """What decides a run's numbers, recorded in every run directory: Python, torch and ratt
    versions, the device, and on the CPU the model, the vector ISA torch dispatches to
    (``torch.backends.cpu.get_cpu_capability()``), the oneDNN/MKL versions and the thread
    count. Bit-identical repeats need all of them equal (see docs/reliability.md)."""
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ratt": __version__,
        "device": str(device),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
        **_library_versions(),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["cuda"] = str(torch.version.cuda)
        out["cudnn"] = str(torch.backends.cudnn.version())
    return out
