"""``ratt sweep --workers N``: cells in worker processes, bit-identical to the sequential sweep;
failures contained and retried; ``--status``; user errors before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ratt.cli import main
from ratt.sweep.status import read_status, write_status
from tests.sweep.common import TINY, assert_same_numbers


def _runs(root):
    return sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("config.yaml"))


def test_workers_give_cells_bit_identical_to_the_sequential_sweep(tmp_path, capsys):
    grid = ["--quiet", "--methods", "natural,trades", "--seeds", "0"]
    assert main(["sweep", "--out", str(tmp_path / "seq"), *grid, *TINY]) == 0
    assert main(["sweep", "--out", str(tmp_path / "par"), "--workers", "2", *grid, *TINY]) == 0
    runs = _runs(tmp_path / "seq")
    assert runs == _runs(tmp_path / "par") == ["digits/natural/seed-0", "digits/trades/seed-0"]
    for run in runs:
        assert_same_numbers(tmp_path / "seq" / run, tmp_path / "par" / run)
        assert read_status(tmp_path / "par" / run)["pid"] != os.getpid()  # it ran in a worker
    seq, par = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("seq", "par"))
    assert [{k: v for k, v in row.items() if k != "train_seconds"} for row in seq] == [
        {k: v for k, v in row.items() if k != "train_seconds"} for row in par
    ]


def test_a_failing_cell_is_reported_the_others_finish_and_it_is_retried(tmp_path, capsys, monkeypatch):
    from ratt.sweep import grid

    monkeypatch.setattr(grid, "cpu_count", lambda: 3)  # 3 cores, 2 workers: 1 thread per cell
    # Two GPUs, as far as the sweep's process knows: each worker gets its own (its
    # CUDA_VISIBLE_DEVICES); where there is no such GPU, the workers compute on the CPU.
    monkeypatch.setattr(grid.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(grid.torch.cuda, "device_count", lambda: 2)
    tiny = [t for t in TINY if not t.startswith(("threads=", "device="))]
    args = ["sweep", "--quiet", "--out", str(tmp_path), "--methods", "natural", "--seeds", "0,1",
            "--workers", "2", *tiny]  # fmt: skip
    bad = tmp_path / "digits" / "natural" / "seed-1"
    (bad / "checkpoints").mkdir(parents=True)
    (bad / "checkpoints" / "last.safetensors").write_bytes(b"garbage")  # damaged: resume refuses it
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "digits/natural/seed-1 failed: UserError:" in err and "last.safetensors" in err
    assert f"(log: {bad / 'sweep.log'})" in err
    assert "last.safetensors" in (bad / "sweep.log").read_text()  # the traceback is in its log
    good = tmp_path / "digits" / "natural" / "seed-0"
    assert (good / "summary.json").exists() and not (bad / "summary.json").exists()
    assert "threads: 1" in (good / "config.yaml").read_text()  # the cores split, recorded
    assert {read_status(good)["where"], read_status(bad)["where"]} == {"gpu 0", "gpu 1"}
    stamp = (good / "summary.json").stat().st_mtime_ns

    (bad / "checkpoints" / "last.safetensors").unlink()
    assert main(args) == 0  # only the failed cell runs again
    assert (bad / "summary.json").exists()
    assert (good / "summary.json").stat().st_mtime_ns == stamp
    assert read_status(bad)["state"] == "done"


def test_a_signal_stops_the_workers_after_they_save(tmp_path, capsys):
    """SIGTERM to the sweep: each worker saves and stops; exit 128 + 15; the cells say stopped."""
    root = tmp_path / "s"
    run = root / "digits" / "natural" / "seed-0"
    longer = ["epochs=50", "train_limit=256", "batch_size=16", "checkpoint_every=1"]
    args = ["sweep", "--quiet", "--out", str(root), "--methods", "natural", "--seeds", "0",
            "--workers", "2", *TINY, *longer]  # fmt: skip

    def stop_once_training():
        deadline = time.time() + 60
        while time.time() < deadline:
            if (run / "checkpoints" / "last.safetensors").exists():
                os.kill(os.getpid(), signal.SIGTERM)  # the sweep's own process
                return
            time.sleep(0.02)

    killer = threading.Thread(target=stop_once_training)
    killer.start()
    code = main(args)
    killer.join()
    assert code == 128 + signal.SIGTERM
    assert "re-run the same `ratt sweep` command" in capsys.readouterr().err
    assert read_status(run)["state"] == "stopped" and not (run / "summary.json").exists()
    assert (run / "checkpoints" / "last.safetensors").exists()


def test_status_of_a_half_finished_grid(tmp_path, capsys, monkeypatch):
    from ratt.sweep import cell
    from ratt.train import TrainingInterrupted, train

    def train_or_not(config, out, resume):
        if config.run.seed == 1:
            raise RuntimeError("boom")
        if config.run.seed == 2:
            raise TrainingInterrupted(signal.SIGTERM, out, 0, 3)
        return train(config, out, resume)

    monkeypatch.setattr(cell, "train", train_or_not)
    args = ["sweep", "--quiet", "--out", str(tmp_path), "--methods", "natural", "--seeds", "0,1,2,3,4", *TINY]
    assert main(args) == 128 + signal.SIGTERM  # seed 2 stops the sweep: seeds 3 and 4 never start
    running = tmp_path / "digits" / "natural" / "seed-4"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_status(running, "running", stage="train", epochs=7, pid=other.pid)  # "trains" seed 4
        capsys.readouterr()
        assert main(["sweep", "--status", str(tmp_path)]) == 0
        lines = capsys.readouterr().out.splitlines()
    finally:
        other.kill()
        other.wait()
    state = {line.split()[0]: line.split()[1] for line in lines[2:-1]}
    assert state == {
        "digits/natural/seed-0": "done",
        "digits/natural/seed-1": "failed",
        "digits/natural/seed-2": "stopped",
        "digits/natural/seed-3": "pending",
        "digits/natural/seed-4": "running",
    }
    row = {line.split()[0]: line for line in lines[2:-1]}
    assert "RuntimeError: boom" in row["digits/natural/seed-1"]
    assert str(tmp_path / "digits" / "natural" / "seed-1" / "sweep.log") in row["digits/natural/seed-1"]
    assert "SIGTERM received" in row["digits/natural/seed-2"]
    assert f"train, epoch 1/7, pid {other.pid}" in row["digits/natural/seed-4"]
    assert lines[-1] == "5 cells: 1 done, 1 running, 1 pending, 1 stopped, 1 failed"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--workers", "2", "--devices", "99"], "--devices 99"),
        (["--slurm-gpus", "1"], "--slurm-gpus needs --launcher slurm"),
        (["--launcher", "slurm", "--workers", "2"], "--workers and --devices are for --launcher local"),
        (["--launcher", "slurm", "--slurm-time", "1:2"], "--slurm-time '1:2'"),
        (["--launcher", "slurm", "--slurm-cluster", "local", "--slurm-opt", "=x"], "--slurm-opt '=x'"),
        (["--launcher", "slurm", "--slurm-cluster", "local", "--slurm-gpus", "-1"], "--slurm-gpus -1"),
        (["--launcher", "slurm", "--slurm-cluster", "local", "--slurm-parallel", "2"], "add --slurm-array"),
    ],
)
def test_sweep_user_errors_come_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "s"
    assert main(["sweep", "--out", str(out), *args, *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_slurm_without_submitit_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    assert main(["sweep", "--out", str(tmp_path / "s"), "--launcher", "slurm", *TINY]) == 2
    assert "pip install 'ratt[slurm]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_slurm_without_a_cluster_says_so(tmp_path, capsys, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on it
    assert main(["sweep", "--out", str(tmp_path / "s"), "--launcher", "slurm", *TINY]) == 2
    assert "no `sbatch` on this machine" in capsys.readouterr().err


def test_status_shows_cells_of_earlier_plans_too(tmp_path, capsys):
    """A root swept seed by seed (or by two sweeps side by side) keeps only the latest plan in
    sweep.json; --status still lists every run under it, the plan's cells first."""
    from ratt.sweep.status import write_plan

    for seed in (0, 1):  # seed 0's sweep finished, then seed 1's was planned
        write_status(tmp_path / "digits" / "trades" / f"seed-{seed}", "done", seconds=5.0)
    write_status(tmp_path / "digits" / "natural" / "seed-0", "failed", error="RuntimeError: boom")
    cells = [
        {"name": f"digits/trades/seed-{seed}", "dataset": "digits", "method": "trades", "seed": seed}
        for seed in (1, 2)
    ]
    write_plan(tmp_path, {"cells": cells, "launcher": "local", "workers": 1, "jobs": {}})
    assert main(["sweep", "--status", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    state = [tuple(line.split()[:2]) for line in lines[2:-1]]
    assert state == [
        ("digits/trades/seed-1", "done"),
        ("digits/trades/seed-2", "pending"),
        ("digits/natural/seed-0", "failed"),
        ("digits/trades/seed-0", "done"),
    ]
    assert lines[-1] == "4 cells: 2 done, 1 pending, 1 failed"


def test_status_after_the_last_epoch_says_final_test(tmp_path):
    from ratt.sweep.status import cell_view

    out = tmp_path / "digits" / "trades" / "seed-0"
    write_status(out, "running", stage="train", epochs=2, pid=os.getppid())  # a live process
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    assert cell_view(out).detail.startswith("train, epoch 2/2, pid")
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    assert cell_view(out).detail.startswith("train, 2 epochs done, final test, pid")


def test_a_cell_another_sweep_started_meanwhile_is_left_to_it(tmp_path, monkeypatch):
    """Two sweeps sharing a root: when this one reaches a cell the other started after this one
    planned, it waits for that cell instead of failing it on the run directory's lock."""
    from ratt.sweep import cell
    from ratt.train import train

    other_cell = tmp_path / "digits" / "natural" / "seed-1"
    others = []

    def train_and_start_the_other(config, out, resume):
        if not others:  # the other sweep takes seed 1 while this one trains seed 0
            finish = f"from ratt.sweep.status import write_status; write_status({str(other_cell)!r}, 'done')"
            others.append(subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(3); {finish}"]))
            write_status(other_cell, "running", stage="train", epochs=1, pid=others[0].pid)
        return train(config, out, resume)

    monkeypatch.setattr(cell, "train", train_and_start_the_other)
    try:
        args = ["sweep", "--quiet", "--out", str(tmp_path), "--methods", "natural", "--seeds", "0,1", *TINY]
        assert main(args) == 0
    finally:
        others[0].wait()
    assert read_status(other_cell)["state"] == "done" and read_status(other_cell)["pid"] == others[0].pid
    assert not (other_cell / "config.yaml").exists()  # this sweep did not train it


def test_status_of_a_folder_without_a_sweep(tmp_path, capsys):
    assert main(["sweep", "--status", str(tmp_path)]) == 2
    assert "no sweep there" in capsys.readouterr().err
