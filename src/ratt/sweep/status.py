"""Each cell's state, in two small files of its run directory that every launcher writes and
``ratt sweep --status`` reads: ``sweep_status.json`` (rewritten atomically at every change:
``pending``, ``running``, ``done``, ``failed`` or ``stopped``, with who runs it) and
``sweep.log`` (the cell's log: what its process logged, and the traceback of a failure).

The sweep's root holds ``sweep.json``: the grid's cells (and Slurm job ids), so that cells
not yet started show as pending.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratt.core.files import json_ready, write_json
from ratt.core.table import text_table
from ratt.errors import UserError
from ratt.runs import RunFiles

STATUS_NAME = "sweep_status.json"
LOG_NAME = "sweep.log"
PLAN_NAME = "sweep.json"
PENDING, RUNNING, DONE, FAILED, STOPPED = "pending", "running", "done", "failed", "stopped"
FINISHED = (DONE, FAILED, STOPPED)  # no process is working on the cell


def status_path(out: Path) -> Path:
    """``OUT/sweep_status.json``."""
    return Path(out) / STATUS_NAME


def log_path(out: Path) -> Path:
    """``OUT/sweep.log``."""
    return Path(out) / LOG_NAME


def write_status(out: Path, state: str, **fields: Any) -> None:
    """Record ``state`` (and ``fields``) for the cell in ``out``, with this host, pid and time."""
    data = {"state": state, "time": time.time(), "host": socket.gethostname(), "pid": os.getpid(), **fields}
    write_json(status_path(out), json_ready(data))


def read_status(out: Path) -> dict[str, Any]:
    """The cell's last recorded status ({} when there is none or it cannot be read)."""
    try:
        data = json.loads(status_path(out).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (what ``--status`` shows of a failure)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def last_line(path: Path) -> str:
    """The last non-empty line of a text file ('' if none)."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _pid_alive(pid: Any) -> bool:
    """A live process other than this one (a status this process left is stale)."""
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _slurm_job_active(job_id: str) -> bool | None:
    """Whether Slurm still holds the job (queued, running, requeued); None without ``squeue``."""
    if shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
    except OSError:
        return None
    return out.returncode == 0 and bool(out.stdout.strip())


def alive(status: dict[str, Any], job: dict[str, Any] | None = None) -> bool | None:
    """Whether a process or Slurm job is still working on a ``running`` or ``pending`` cell
    (``job``: the cell's entry in ``sweep.json``): True, False, or None when this machine
    cannot tell (another host, no ``squeue``)."""
    job = job or {}
    if status.get("state") == RUNNING:
        if status.get("host") == socket.gethostname():
            return _pid_alive(status.get("pid"))
        return _slurm_job_active(str(status["job_id"])) if status.get("job_id") else None
    if status.get("state") == PENDING and job.get("job_id"):
        if job.get("cluster") == "local":  # submitit's local jobs: the id is a local pid
            return job.get("host") == socket.gethostname() and _pid_alive(int(job["job_id"]))
        return _slurm_job_active(str(job["job_id"]))
    return False


def owner(out: Path, job: dict[str, Any] | None = None) -> str | None:
    """Who is working on the cell now, if anyone for sure: a live process on this machine or a
    Slurm job still queued or running; None otherwise."""
    status = read_status(out)
    if not alive(status, job):
        return None
    if status.get("state") == PENDING:
        return f"job {job['job_id']}" if job else "a queued job"
    if status.get("job_id"):
        return f"job {status['job_id']}"
    return f"process {status.get('pid')} on {status.get('host')}"


@dataclass
class CellView:
    """A cell as ``--status`` shows it: its state, a detail (stage and epoch, job, error) and
    the log to read when it failed."""

    name: str
    state: str
    detail: str = ""
    log: Path | None = None


def _epochs_done(files: RunFiles) -> int:
    try:
        return sum(1 for line in files.metrics.read_text().splitlines() if line.strip())
    except OSError:
        return 0


def cell_view(out: Path, name: str = "", job: dict[str, Any] | None = None) -> CellView:
    """The cell's state from its status file and run directory. A cell whose process ended
    without saying so, or that has a checkpoint but no status, is ``stopped``: re-running
    the sweep resumes it."""
    out, files = Path(out), RunFiles(out)
    status, name = read_status(out), name or str(out)
    state = status.get("state")
    log = log_path(out) if log_path(out).exists() else None
    checkpoint = files.weights("last").exists()
    if state == DONE or (state is None and files.summary.exists()):
        return CellView(name, DONE, f"{status['seconds']:.0f} s" if "seconds" in status else "")
    if state == FAILED:
        return CellView(name, FAILED, status.get("error", ""), log)
    if state == PENDING:
        job_id = (job or {}).get("job_id")
        detail = ", ".join(x for x in (status.get("detail", ""), f"job {job_id}" if job_id else "") if x)
        return CellView(name, PENDING, detail)
    if state == RUNNING and alive(status, job) is not False:
        return CellView(name, RUNNING, _running_detail(status, files), log)
    if state is None and not checkpoint:
        return CellView(name, PENDING)
    detail = status.get("error") or ("its process ended without a word" if state == RUNNING else "")
    if checkpoint:
        detail = (f"{detail}; " if detail else "") + f"checkpoint after {_epochs_done(files)} epochs"
    return CellView(name, STOPPED, f"{detail}: re-run to resume" if detail else "re-run to resume", log)


def _running_detail(status: dict[str, Any], files: RunFiles) -> str:
    stage = status.get("stage", "train")
    where = status.get("where") or (f"job {status['job_id']}" if status.get("job_id") else "")
    where = where or f"pid {status.get('pid')} on {status.get('host')}"
    if stage == "train":
        done, epochs = _epochs_done(files), status.get("epochs")
        if isinstance(epochs, int) and done >= epochs:  # training over: the test set is attacked
            stage = f"train, {epochs} epochs done, final test"
        else:
            stage = f"train, epoch {done + 1}/{epochs or '?'}"
    return f"{stage}, {where}"


def read_plan(root: Path) -> dict[str, Any]:
    """``ROOT/sweep.json`` ({} if absent)."""
    try:
        return json.loads((Path(root) / PLAN_NAME).read_text())
    except (OSError, ValueError):
        return {}


def write_plan(root: Path, plan: dict[str, Any]) -> None:
    """Write ``ROOT/sweep.json`` atomically."""
    write_json(Path(root) / PLAN_NAME, json_ready(plan))


def sweep_status(root: str | Path) -> list[CellView]:
    """Every cell of the sweep in ``root``: those of its ``sweep.json`` (the latest plan, in
    its order, so cells not yet started show as pending), then every other run directory
    ``DATASET/METHOD/seed-N`` found there (cells of earlier plans, or of another sweep
    sharing the root)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--status {root}: no such directory (give the --out of a `ratt sweep`)")
    plan = read_plan(root)
    names = [c["name"] for c in plan.get("cells", [])]
    planned = set(names)
    found = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*/seed-*") if p.is_dir())
    names += [name for name in found if name not in planned]
    if not names:
        raise UserError(f"--status {root}: no sweep there (no sweep.json and no DATASET/METHOD/seed-N runs)")
    jobs = plan.get("jobs", {})
    return [cell_view(root / name, name, jobs.get(name)) for name in names]


def format_status(views: list[CellView]) -> str:
    """A table of the cells (failed ones with their log) and a count per state."""
    rows = [[v.name, v.state, v.detail, str(v.log) if v.log and v.state == FAILED else ""] for v in views]
    counts = {s: sum(v.state == s for v in views) for s in (DONE, RUNNING, PENDING, STOPPED, FAILED)}
    total = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    cells = f"{len(views)} cell{'s' * (len(views) != 1)}"
    return text_table(["cell", "state", "detail", "log"], rows) + f"\n{cells}: {total}"
