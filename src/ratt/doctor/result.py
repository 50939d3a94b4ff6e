"""One row of the doctor's table, how a check is run into it, and the sizes of a doctor run."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

STATUSES = ("pass", "warn", "fail", "error", "skip")


class SkipCheck(Exception):
    """Raised by a check that does not apply here (the message says why)."""


class CheckWarning(Exception):
    """Raised by a check that ran but found something to look at (e.g. a compile fallback).

    Attributes:
        data: the check's measurements, kept in the JSON as for a pass.
    """

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


@dataclass
class CheckResult:
    """One row: ``section`` (``cuda``, ``bench``, ``run``), ``name``, ``status`` (one of
    :data:`STATUSES`), a one-line ``detail``, wall ``seconds`` and the measured ``data``."""

    section: str
    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "warn", "skip")


@dataclass(frozen=True)
class Sizes:
    """How big a doctor run is: :func:`gpu_sizes` on CUDA, :func:`dry_run_sizes` on CPU.

    Attributes:
        device: where everything runs.
        check_model, check_batch, check_steps: model, batch and attack steps of the per-method
            steps and the other CUDA checks.
        bench_models: (model, batch) pairs to benchmark.
        bench_methods: the methods benchmarked side by side.
        bench_steps, bench_repeats, bench_warmup: attack steps, timed and untimed steps.
        run_model, run_method, run_batch, run_precision, run_channels_last: the training run.
        run_steps, run_interrupt: its length in steps (whole epochs of ``run_steps_per_epoch``)
            and the step after which it is interrupted.
        aa_points, aa_eps: AutoAttack's batch and radius on the template classifier.
        compile_backend: ``torch.compile``'s backend (``inductor``; ``eager`` in the dry run,
            where inductor's C++ build would take minutes of CPU).
        ddp_backend: ``nccl`` on CUDA, ``gloo`` in the dry run.
        threads: torch CPU threads while the doctor runs (None: leave torch's default; the dry
            run uses 1: tiny models gain nothing from more, and a shared CPU loses a lot).
        profile_model, profile_batch, profile_steps: the ``profile`` section's steps.
        epoch_model, epoch_batch, epoch_steps, epoch_method, epoch_data, epoch_attack_steps:
            the ``epoch`` section's training epoch.
        aa_model, aa_rate_points, aa_batch, aa_iterations, aa_square_queries: the ``aa``
            section's throughput measurement.
    """

    device: str
    check_model: str
    check_batch: int
    check_steps: int
    bench_models: tuple[tuple[str, int], ...]
    bench_methods: tuple[str, ...]
    bench_steps: int
    bench_repeats: int
    bench_warmup: int
    run_model: str
    run_method: str
    run_batch: int
    run_precision: str
    run_channels_last: bool
    run_steps_per_epoch: int
    run_steps: int
    run_interrupt: int
    aa_points: int
    aa_eps: float
    compile_backend: str
    ddp_backend: str
    threads: int | None = None
    profile_model: str = "wrn-34-10"
    profile_batch: int = 128
    profile_steps: int = 3
    epoch_model: str = "wrn-34-10"
    epoch_batch: int = 128
    epoch_steps: int = 391  # CIFAR-10's 50,000 training images at batch 128
    epoch_method: str = "rat_trades"
    epoch_data: str = "synthetic-cifar10-50k"
    epoch_attack_steps: int = 10
    aa_model: str = "wrn-34-10"
    aa_rate_points: int = 1000
    aa_batch: int = 500
    aa_iterations: int = 100
    aa_square_queries: int = 5000


BENCH_METHODS = ("trades", "rat_trades", "awp+trades", "awp+rat_trades")


def gpu_sizes(device: str = "cuda") -> Sizes:
    """The issue's sizes: WRN-34-10 and PreActResNet-18 at batch 128, K = 10, 300 steps."""
    return Sizes(
        device=device, check_model="preact_resnet18", check_batch=32, check_steps=2,
        bench_models=(("wrn-34-10", 128), ("preact_resnet18", 128)), bench_methods=BENCH_METHODS,
        bench_steps=10, bench_repeats=5, bench_warmup=2,
        run_model="preact_resnet18", run_method="awp+rat_trades", run_batch=128, run_precision="bf16",
        run_channels_last=True, run_steps_per_epoch=100, run_steps=300, run_interrupt=150,
        aa_points=64, aa_eps=0.05, compile_backend="inductor", ddp_backend="nccl",
    )  # fmt: skip


def gpu_quick_sizes(device: str = "cuda") -> Sizes:
    """:func:`gpu_sizes` cut to 3 to 5 minutes on one H200: the same checks and benchmark
    cells (PreActResNet-18 first), 3 timed steps after 1 warm-up, a 120-step run
    interrupted at step 60, and AutoAttack's rates on 100 points instead of 1,000 (a stage's
    time is linear in its points)."""
    return dataclasses.replace(
        gpu_sizes(device), bench_models=(("preact_resnet18", 128), ("wrn-34-10", 128)),
        bench_repeats=3, bench_warmup=1, run_steps_per_epoch=40, run_steps=120, run_interrupt=60,
        aa_rate_points=100, aa_batch=100,
    )  # fmt: skip


def dry_run_sizes() -> Sizes:
    """The same script on CPU with tiny models, batches and step counts (well under a minute)."""
    return Sizes(
        device="cpu", check_model="wrn-10-1", check_batch=4, check_steps=1,
        bench_models=(("wrn-10-1", 4), ("smallcnn", 4)), bench_methods=BENCH_METHODS,
        bench_steps=1, bench_repeats=1, bench_warmup=1,
        run_model="wrn-10-1", run_method="awp+rat_trades", run_batch=8, run_precision="bf16",
        run_channels_last=True, run_steps_per_epoch=4, run_steps=8, run_interrupt=5,
        aa_points=8, aa_eps=0.07, compile_backend="eager", ddp_backend="gloo", threads=1,
        profile_model="wrn-10-1", profile_batch=4, profile_steps=1, epoch_model="wrn-10-1",
        epoch_batch=8, epoch_steps=4, epoch_data="synthetic-cifar10", epoch_attack_steps=1,
        aa_model="wrn-10-1", aa_rate_points=8, aa_batch=8, aa_iterations=3, aa_square_queries=20,
    )  # fmt: skip


@contextlib.contextmanager
def isolated_torch_state() -> Iterator[None]:
    """Put back what checks change globally: deterministic mode, cuDNN flags, threads, RNGs."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    threads = torch.get_num_threads()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
        torch.set_num_threads(threads)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


@contextlib.contextmanager
def compile_backend(backend: str) -> Iterator[None]:
    """Make ``torch.compile`` use ``backend`` inside the block (``inductor``: unchanged)."""
    if backend == "inductor":
        yield
        return
    original = torch.compile
    torch.compile = functools.partial(original, backend=backend)  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.compile = original  # type: ignore[assignment]


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def run_check(section: str, name: str, check: Callable[[], tuple[str, dict[str, Any]]]) -> CheckResult:
    """Run ``check() -> (detail, data)`` into a row: an ``AssertionError`` is a ``fail``,
    :class:`SkipCheck` a ``skip``, :class:`CheckWarning` a ``warn``, anything else an ``error``
    (its traceback goes to the log at debug level). Global torch state is restored after."""
    start = time.perf_counter()
    status, detail, data = "pass", "", {}
    try:
        with isolated_torch_state():
            detail, data = check()
    except SkipCheck as exc:
        status, detail = "skip", str(exc)
    except CheckWarning as exc:
        status, detail, data = "warn", str(exc), exc.data
    except AssertionError as exc:
        status, detail = "fail", str(exc).strip().splitlines()[0] if str(exc).strip() else "assertion failed"
    except Exception as exc:  # a crash is a result to report, not a reason to stop the doctor
        status, detail = "error", first_line(exc)
        log.debug("%s/%s:\n%s", section, name, traceback.format_exc())
        data = {"traceback": traceback.format_exc()[-4000:]}
    seconds = time.perf_counter() - start
    log.info("%-5s %s %s (%.1f s) %s", status, section, name, seconds, detail)
    return CheckResult(section, name, status, detail, seconds, data)
