"""Cells in parallel on this machine: each in its own worker process
(``python -m ratt.sweep.worker``), at most ``workers`` at once, one per GPU when there are
GPUs. A worker's output goes to its cell's ``sweep.log``; a signal to the sweep is passed on
to the workers, which save their state and stop."""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ratt.core.files import open_append
from ratt.sweep.cell import CellJob
from ratt.sweep.status import (
    FAILED,
    FINISHED,
    STOPPED,
    CellView,
    cell_view,
    last_line,
    log_path,
    read_status,
    write_status,
)
from ratt.sweep.watch import Signals, SweepInterrupted

SRC = Path(__file__).resolve().parents[2]  # the directory holding this ratt package
POLL_S = 0.1


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the worker gets SIGTERM (saves and stops) if the sweep's process dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start(job: CellJob, device: int | None) -> subprocess.Popen:
    """A worker process for ``job`` (on GPU ``device``), its output appended to the cell's log."""
    env = dict(os.environ)
    if SRC.name not in ("site-packages", "dist-packages"):  # a source tree: the worker imports the same ratt
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    threads = job.config.run.threads
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(device)
    job.cell.out.mkdir(parents=True, exist_ok=True)
    with open_append(log_path(job.cell.out)) as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ratt.sweep.worker"], stdin=subprocess.PIPE, stdout=out,
            stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(job))
    proc.stdin.close()
    return proc


def _outcome(job: CellJob, code: int, stopping: bool) -> CellView:
    """The cell's view once its worker exited; a worker that died without recording an end
    (killed, crashed) is recorded here: stopped if the sweep was stopping, else failed."""
    out = job.cell.out
    status = read_status(out)
    if status.get("state") not in FINISHED:
        why = f"signal {-code}" if code < 0 else f"code {code}"
        if stopping:
            write_status(out, STOPPED, error=f"worker ended by {why}")
        else:
            last = last_line(log_path(out))
            write_status(out, FAILED, error=f"worker exited with {why}" + (f": {last}" if last else ""))
    return cell_view(out, job.name)


def run_workers(
    jobs: list[CellJob], workers: int, devices: list[int] | None, finished: Callable[[CellView], None]
) -> None:
    """Run ``jobs`` in worker processes, at most ``workers`` (with ``devices``: one GPU each) at
    once, reporting each cell through ``finished``. On SIGINT/SIGTERM no new cell starts, the
    running ones get SIGTERM (a second signal: again, they stop at once) and, once they
    exited, ``SweepInterrupted`` is raised."""
    queue = list(jobs)
    free = list(devices) if devices is not None else None
    running: dict[subprocess.Popen, tuple[CellJob, int | None]] = {}
    forwarded = 0
    with Signals() as signals:
        while queue or running:
            while queue and len(running) < workers and not signals.received:
                job = queue.pop(0)
                device = free.pop(0) if free is not None else None
                if device is not None:
                    job.where = f"gpu {device}"
                running[_start(job, device)] = (job, device)
            time.sleep(POLL_S)
            if len(signals.received) > forwarded:
                for proc in running:
                    proc.send_signal(signal.SIGTERM)
                forwarded = len(signals.received)
            for proc in [p for p in running if p.poll() is not None]:
                job, device = running.pop(proc)
                if free is not None and device is not None:
                    free.append(device)
                finished(_outcome(job, proc.returncode, bool(signals.received)))
    if signals.received:
        raise SweepInterrupted(signals.received[0])
