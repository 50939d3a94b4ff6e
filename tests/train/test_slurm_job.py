"""`ratt train --launcher slurm`: what Slurm is asked for and what each task makes of Slurm's
answer, checked without a cluster (tests/train/test_multinode.py runs whole jobs through
submitit's local executor)."""

from __future__ import annotations

import os
import re

import pytest

from ratt.cli import main
from ratt.core.slurm import SlurmOptions, make_executor
from ratt.train.slurm import TrainJob, export_distributed_environment

pytest.importorskip("submitit")


def _sbatch(options: SlurmOptions, tmp_path, monkeypatch) -> str:
    """The sbatch script submitit would submit (a stand-in `srun` on PATH: submitit looks for it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = make_executor(options, tmp_path, name="ratt-train")
    return executor._executor._make_submission_file_text("python -u -m submitit.core._submit X", "uid")


def test_the_sbatch_script_asks_for_nodes_tasks_and_gpus_and_the_warning_signal(tmp_path, monkeypatch):
    options = SlurmOptions(nodes=4, gpus=8, tasks_per_node=8, time=90, requeues=2)
    text = _sbatch(options, tmp_path, monkeypatch)
    sbatch = dict(re.findall(r"^#SBATCH --([a-z-]+)=(\S+)$", text, re.M))
    assert sbatch["nodes"] == "4" and sbatch["ntasks-per-node"] == "8" and sbatch["gpus-per-node"] == "8"
    assert sbatch["time"] == "90" and sbatch["job-name"] == "ratt-train"
    assert sbatch["signal"].startswith("USR2@")  # the warning submitit turns into a requeue
    assert re.search(r"^srun .*submitit\.core\._submit", text, re.M)  # one task per process


SLURM_TASK = {  # task 5 of a 2-node x 4-task job, as Slurm describes it to the task
    "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]",
    "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1", "SLURM_NTASKS": "8", "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
}  # fmt: skip
TORCH_KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def test_each_task_exports_the_rendezvous_of_the_first_node(monkeypatch):
    for key in (*TORCH_KEYS, "CUDA_VISIBLE_DEVICES"):  # set, then removed: undone after the test
        monkeypatch.setenv(key, "")  # (delenv of an absent key records nothing, and the export's
        monkeypatch.delenv(key)  # WORLD_SIZE=8 would leak into every later in-process run)
    for key, value in SLURM_TASK.items():
        monkeypatch.setenv(key, value)
    export_distributed_environment()
    exported = {key: os.environ[key] for key in TORCH_KEYS}
    port = exported.pop("MASTER_PORT")
    assert exported == {"MASTER_ADDR": "gpu07", "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                        "LOCAL_WORLD_SIZE": "4"}  # fmt: skip
    assert 20000 <= int(port) <= 60000  # from the job id: the same in every task
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # each process picks cuda:LOCAL_RANK itself


def test_a_requeued_job_resumes_the_same_run(tmp_path):
    job = TrainJob(str(tmp_path / "run"), None, changes=["epochs=3"])
    again = job.checkpoint().function
    assert again.resume and again.out == job.out and again.changes == ["epochs=3"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nodes", "2"], "--nodes needs --launcher slurm"),
        (["--launcher", "slurm", "--nodes", "0", "--slurm-cluster", "local"], "--nodes 0: must be at least"),
        (["--launcher", "slurm", "--slurm-cluster", "slurm"], "no `sbatch` on this machine"),
    ],
)
def test_bad_launch_options_are_one_line_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *argv, "epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
