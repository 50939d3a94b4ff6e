"""``run_doctor``: the device checks, the interrupted training run and the benchmark matrix, in
that order (correctness before speed), into one list of rows, a table and a JSON file."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ratt.core.env import resolve_device
from ratt.core.files import write_json, write_text
from ratt.doctor import aa, checks, ddp, epoch, fast_options, profile, runs
from ratt.doctor.gpubench import bench_matrix
from ratt.doctor.report import document, environment, format_markdown
from ratt.doctor.result import CheckResult, Sizes, dry_run_sizes, gpu_quick_sizes, gpu_sizes, run_check
from ratt.errors import UserError

SECTIONS = ("cuda", "bench", "run", "profile", "epoch", "aa")

Check = Callable[[], tuple[str, dict[str, Any]]]


DEFAULT_OUT = "ratt-doctor.json"  # the report's file name (inside ``--out`` when it is a folder)


@dataclass
class DoctorOptions:
    """What ``ratt doctor --gpu`` runs.

    Attributes:
        dry_run: the same script on the CPU with tiny sizes (no GPU needed).
        device: the CUDA device (``cuda``, ``cuda:N``); ignored by the dry run.
        sections: any of ``cuda`` (device checks), ``bench`` (the benchmark matrix),
            ``run`` (the interrupted training run), ``profile`` (where a step's time goes),
            ``epoch`` (a whole epoch against its steps), ``aa`` (evaluation throughput).
        out: the JSON file (a Markdown copy of the table goes beside it as ``.md``), or a
            folder to write ``ratt-doctor.json`` into; None: nothing written.
        work_dir: an empty (or new) folder that keeps the run directories (None: a
            temporary folder, removed after).
        sizes: explicit sizes (programmatic use, e.g. a shorter run); None: the dry run's, the
            quick GPU run's or the full GPU run's.
        quick: on the GPU, :func:`~ratt.doctor.result.gpu_quick_sizes` (every check, fewer
            repeats and a shorter interrupted run: 3 to 5 minutes on one H200).
    """

    dry_run: bool = False
    device: str = "cuda"
    sections: tuple[str, ...] = SECTIONS
    out: Path | None = None
    work_dir: Path | None = None
    sizes: Sizes | None = field(default=None, repr=False)
    quick: bool = False


@dataclass
class DoctorReport:
    """The rows, the JSON document and where it was written."""

    results: list[CheckResult]
    document: dict[str, Any]
    out: Path | None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def device_checks(sizes: Sizes, work: Path) -> list[tuple[str, Check]]:
    """The ``cuda`` section: (name, check) pairs."""
    device = torch.device(sizes.device)
    named: list[tuple[str, Check]] = [
        (f"one step, every method, {checks.combo_name(p, cl)}",
         functools.partial(checks.check_method_steps, device, sizes, p, cl))
        for p, cl in checks.COMBOS
    ]  # fmt: skip
    named += [
        ("RAT last-layer stats vs CPU float64", functools.partial(checks.check_rat_stats, device, sizes)),
        ("AWP restores weights exactly", functools.partial(checks.check_awp_restore, device, sizes)),
        ("attacks keep the projection", functools.partial(checks.check_attack_projection, device, sizes)),
        ("run.compile=true (and fallback)", functools.partial(runs.check_compile, sizes, work)),
        ("fused SGD, CUDA graphs vs eager", functools.partial(fast_options.check_fast_options, sizes)),
        ("AutoAttack on a tiny model", functools.partial(checks.check_autoattack, device, sizes)),
        (f"DDP {sizes.ddp_backend} via torchrun, world 1", functools.partial(ddp.check_ddp, sizes, work)),
        (f"checkpoint {sizes.device} -> cpu -> {sizes.device}",
         functools.partial(runs.check_checkpoint_devices, sizes, work)),
    ]  # fmt: skip
    return named


def resolve_sizes(options: DoctorOptions) -> Sizes:
    """The dry run's tiny sizes on the CPU, else the GPU sizes on ``options.device``.

    Raises:
        UserError: no dry run and no CUDA device.
    """
    if options.sizes is not None:
        return options.sizes
    if options.dry_run:
        return dry_run_sizes()
    if not torch.cuda.is_available():
        raise UserError(
            "ratt doctor --gpu: no CUDA device is visible to torch here; use --dry-run to run the same "
            "checks on the CPU with tiny sizes"
        )
    device = resolve_device(options.device, option="--device")
    if device.type != "cuda":
        raise UserError(f"--device {options.device}: ratt doctor --gpu checks a CUDA device (cuda or cuda:N)")
    return gpu_quick_sizes(str(device)) if options.quick else gpu_sizes(str(device))


def run_doctor(options: DoctorOptions) -> DoctorReport:
    """Run the sections of ``options`` and write the JSON (and Markdown table) if asked.

    Deterministic cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` before the first CUDA call, so it is
    set here (``:4096:8`` unless already set). A failing or crashing check is a row, not an
    exception; the caller decides the exit code from :attr:`DoctorReport.ok`. The JSON and the
    table are rewritten (atomically) after every row with ``"complete": false``, so a doctor
    killed part-way (a time limit, a hung kernel) leaves the rows it finished.
    """
    unknown = [s for s in options.sections if s not in SECTIONS]
    if unknown:
        raise UserError(f"--only {','.join(unknown)}: choose from {', '.join(SECTIONS)}")
    if options.out is not None and Path(options.out).is_dir():  # a folder: the file goes inside
        options = replace(options, out=Path(options.out) / DEFAULT_OUT)
    sizes = resolve_sizes(options)
    keep = Path(options.work_dir) if options.work_dir is not None else None
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise UserError(f"--work-dir {keep} is not empty; give a new or empty folder")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    start, threads = time.perf_counter(), torch.get_num_threads()
    results: list[CheckResult] = []

    def save(complete: bool) -> dict[str, Any]:
        doc = document(results, sizes, env, options.dry_run, time.perf_counter() - start)
        doc["complete"] = complete
        if options.out is not None:
            out = Path(options.out)
            write_json(out, doc)
            write_text(out.with_suffix(".md"), format_markdown(results) + "\n")
        return doc

    def on_row(row: CheckResult) -> None:
        results.append(row)
        save(complete=False)

    try:
        if sizes.threads:
            torch.set_num_threads(sizes.threads)
        env = environment(torch.device(sizes.device))
        with tempfile.TemporaryDirectory(prefix="ratt-doctor-") as tmp:
            work = keep or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            _run_sections(options.sections, sizes, work, on_row)
    finally:
        torch.set_num_threads(threads)
    return DoctorReport(results, save(complete=True), options.out)


def _run_sections(
    sections: tuple[str, ...], sizes: Sizes, work: Path, on_row: Callable[[CheckResult], None]
) -> None:
    if "cuda" in sections:  # the CUDA checks (on the CPU in the dry run)
        for name, check in device_checks(sizes, work):
            on_row(run_check("cuda", name, check))
    if "run" in sections:  # before the benchmark: a correctness check, and a bounded one
        name = f"{sizes.run_steps} steps, SIGTERM at {sizes.run_interrupt}, resume"
        on_row(run_check("run", name, functools.partial(runs.check_interrupted_run, sizes, work)))
    if "bench" in sections:
        bench_matrix(sizes, on_row)
    if "profile" in sections:
        for method in profile.METHODS:
            name = f"{method} {sizes.profile_model} b{sizes.profile_batch} bf16+cl"
            on_row(run_check("profile", name, functools.partial(profile.check_profile, sizes, method)))
    if "epoch" in sections:
        name = f"one epoch of {sizes.epoch_method} {sizes.epoch_model} b{sizes.epoch_batch}"
        on_row(run_check("epoch", name, functools.partial(epoch.check_epoch, sizes, work)))
    if "aa" in sections:
        name = f"AutoAttack, PGD-20, CW-20 on {sizes.aa_rate_points} points of {sizes.aa_model}"
        on_row(run_check("aa", name, functools.partial(aa.check_aa, sizes)))
