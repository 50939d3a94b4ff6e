"""``ratt sweep --launcher slurm`` through submitit's local executor: the code path of a Slurm
cluster, with jobs as local processes. A job signalled as Slurm signals a preempted or
timed-out job (SIGUSR2) in the middle of training is requeued and resumes exactly."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ratt.cli import main
from ratt.sweep.status import read_status
from tests.sweep.common import TINY, assert_same_numbers

pytest.importorskip("submitit")

LONGER = [*TINY, "epochs=2", "train_limit=256", "batch_size=16", "checkpoint_every=2"]


def _preempt_when_checkpointed(run, fired: list[int]) -> None:
    """Send SIGUSR2 to the job training ``run`` once it wrote its first checkpoint."""
    deadline = time.time() + 120
    while time.time() < deadline:
        status = read_status(run)
        if status.get("state") == "running" and (run / "checkpoints" / "last.safetensors").exists():
            os.kill(status["pid"], signal.SIGUSR2)
            fired.append(status["pid"])
            return
        time.sleep(0.01)


def test_slurm_jobs_run_the_cells_and_a_preempted_job_resumes_on_requeue(tmp_path, capsys):
    root = tmp_path / "slurm"
    run = root / "digits" / "natural" / "seed-0"
    fired: list[int] = []
    watcher = threading.Thread(target=_preempt_when_checkpointed, args=(run, fired))
    watcher.start()
    args = ["sweep", "--quiet", "--out", str(root), "--methods", "natural", "--seeds", "0", "--launcher",
            "slurm", "--slurm-cluster", "local", "--slurm-time", "30", *LONGER]  # fmt: skip
    assert main(args) == 0
    watcher.join()
    assert fired, "the job finished before it could be preempted"
    status = read_status(run)
    assert status["state"] == "done" and status["job_id"]
    log = (run / "sweep.log").read_text()
    assert "requeued, to resume" in log and "resumed" in log  # the requeued job picked up the checkpoint
    submitit_logs = "".join(p.read_text() for p in (root / "slurm").rglob("*.err"))
    assert "Caught signal SIGUSR2" in submitit_logs and "this job is preempted" in submitit_logs

    # Exact resume: the same numbers as the cell trained in one go, in this process.
    reference = tmp_path / "ref"
    assert (
        main(["sweep", "--quiet", "--out", str(reference), "--methods", "natural", "--seeds", "0", *LONGER])
        == 0
    )
    assert_same_numbers(run, reference / "digits" / "natural" / "seed-0")

    capsys.readouterr()
    assert main(["sweep", "--status", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 cell: 1 done"
