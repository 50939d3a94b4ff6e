"""CUDA tests: the checks of ``ratt doctor --gpu`` (:mod:`ratt.doctor`) under pytest, on the GPU.

Every test here is marked ``cuda`` and skipped without a CUDA device; run them with
``pytest -m cuda tests/cuda``. The sizes are the doctor's GPU sizes with a shorter training
run, so the folder takes a few minutes on an H100.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import torch

# Deterministic cuBLAS needs this before the first CUDA call (the doctor sets it the same way).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

from ratt.doctor import Sizes, gpu_sizes  # noqa: E402


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    """GPU sizes with a 40-step training run (the doctor runs 300)."""
    return replace(gpu_sizes(), run_steps=40, run_steps_per_epoch=20, run_interrupt=25, run_batch=64)


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda")
