"""One run across "machines": two torchrun agents on 127.0.0.1 (gloo, CPU) stand for two nodes.

Pinned here (docs/scaling.md): a two-node run equals one node with the same number of
processes bit for bit (``run.deterministic=true``); a worker killed mid-epoch under
``torchrun --max-restarts 1`` is restarted and the group continues from the last step-level
checkpoint to the same weights as an uninterrupted run; a rank that raises stops the job
with one line naming it; every rank must see the run directory rank 0 writes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from ratt.errors import UserError
from ratt.runs import read_weights

ARGS = [
    "--quiet",
    "train_limit=128",
    "batch_size=32",
    "steps=2",
    "threads=1",
    "val_attack_steps=2",
    "test_attacks=clean",
    "epochs=1",
    "method=rat_trades",
    "run.deterministic=true",
    "run.checkpoint_every=2",
]  # fmt: skip  (4 steps, a full checkpoint after step 2)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(nnodes: int, nproc: int, port: int, extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc_per_node",
        str(nproc), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", *(extra or []),
    ]  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _train(launch: list[str], out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*launch, "-m", "ratt", "train", "--out", str(out), *ARGS],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return read_weights(out / "checkpoints" / "last.safetensors")[0]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def one_node(tmp_path_factory) -> Path:
    """The reference: one node, two processes, uninterrupted."""
    out = tmp_path_factory.mktemp("one-node") / "run"
    done = _train(_torchrun(1, 2, _port()), out, _env())
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_two_nodes_give_the_one_node_weights_and_one_set_of_files(one_node, tmp_path):
    out, port = tmp_path / "run", _port()
    agents = [
        subprocess.Popen(
            [*_torchrun(2, 1, port), "-m", "ratt", "train", "--out", str(out), *ARGS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )  # fmt: skip
        for _ in range(2)
    ]
    results = [agent.communicate(timeout=300) for agent in agents]
    for agent, (_, err) in zip(agents, results, strict=True):
        assert agent.returncode == 0, err[-3000:]
    assert _same(_weights(out), _weights(one_node))
    assert json.loads((out / "versions.json").read_text())["world_size"] == "2"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # written once, by rank 0
    assert sum("test split" in stdout for stdout, _ in results) == 1  # rank 0 alone reports
    assert not (out / ".ratt-shared-check").exists()


def test_a_killed_worker_is_restarted_and_the_run_ends_as_if_uninterrupted(one_node, tmp_path):
    out = tmp_path / "run"
    launch = _torchrun(1, 2, _port(), ["--max-restarts", "1"])
    done = _train(launch, out, _env(RATT_TEST_FAULT="1:3:kill"))  # rank 1 SIGKILLed before step 3
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torchrun restart 1: continuing" in done.stderr
    assert _same(_weights(out), _weights(one_node))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (one_node / "metrics.jsonl").read_text().splitlines()]
    timing = ("seconds", "train_seconds")
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows] == [
        {k: v for k, v in r.items() if k not in timing} for r in reference
    ]


def test_a_rank_that_raises_stops_every_rank_with_one_line_naming_it(tmp_path):
    start = time.monotonic()
    done = _train(_torchrun(1, 2, _port()), tmp_path / "run", _env(RATT_TEST_FAULT="1:1"))
    assert done.returncode != 0
    assert time.monotonic() - start < 120  # no rank waits for a collective's timeout
    failed = [line for line in done.stderr.splitlines() if line.startswith("ratt: error: rank 1 of 2 failed")]
    injected = "RuntimeError: fault injected by RATT_TEST_FAULT at step 1"
    assert failed == [f"ratt: error: rank 1 of 2 failed: {injected}"]


def _shared_worker(rank: int, port: int, directories: list[str], outcomes: str) -> None:
    import torch.distributed as dist

    from ratt.core.distributed import DistContext, check_shared_directory

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        check_shared_directory(directories[rank], DistContext(rank, 2, rank))
        message = "ok"
    except UserError as exc:
        message = str(exc)
    finally:
        dist.destroy_process_group()
    Path(outcomes, f"rank{rank}.txt").write_text(message)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "not-shared"])
def test_every_rank_must_see_the_directory_rank_0_writes(shared, tmp_path):
    run = tmp_path / "run"
    other = tmp_path / "elsewhere"  # what rank 1 sees at the same path when storage is not shared
    other.mkdir()
    directories = [str(run), str(run if shared else other)]
    mp.spawn(_shared_worker, args=(_port(), directories, str(tmp_path)), nprocs=2, join=True)
    messages = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    if shared:
        assert messages == ["ok", "ok"]
    else:
        assert all(m.startswith("1 of 2 processes cannot see") for m in messages)
        assert all("storage all nodes share" in m for m in messages)
    assert not (run / ".ratt-shared-check").exists()


# One run as one Slurm job (`ratt train --launcher slurm`), through submitit's local executor:
# the same code path (its job environment, signals, requeue) with tasks as local processes.


def _slurm_train(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "ratt", "train", "--out", str(out), "--launcher", "slurm", "--slurm-cluster",
        "local", "--tasks-per-node", "2", "--slurm-folder", str(out.parent / "submitit"), *ARGS,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow  # the preemption test below runs the same job path (and a requeue) by default
def test_a_slurm_job_of_two_tasks_gives_the_torchrun_weights(one_node, tmp_path):
    out = tmp_path / "run"
    done = _slurm_train(out, _env())
    assert done.returncode == 0, done.stderr[-3000:] + _logs(tmp_path)
    assert len(list((tmp_path / "submitit").glob("*_0_log.err"))) == 1  # one job, run by submitit
    assert _same(_weights(out), _weights(one_node))
    assert json.loads((out / "versions.json").read_text())["world_size"] == "2"
    assert done.stdout.count("test split") == 1  # the submitting process reports rank 0's summary


def test_a_preempted_slurm_job_is_requeued_and_resumes_exactly(one_node, tmp_path):
    """Rank 0 gets Slurm's warning signal (SIGUSR2) before step 3: submitit requeues the job,
    which resumes from the step-2 checkpoint and ends with the uninterrupted weights."""
    out, marker = tmp_path / "run", tmp_path / "preempted"
    done = _slurm_train(out, _env(RATT_TEST_FAULT="0:3:preempt", RATT_TEST_FAULT_ONCE=str(marker)))
    logs = _logs(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:] + logs
    assert marker.exists() and "requeued, to resume from its last checkpoint" in logs
    assert _same(_weights(out), _weights(one_node))


def _logs(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((root / "submitit").glob("*.err")))
