"""Wall time of one small training run on two torchrun "nodes" (two agents on 127.0.0.1,
one process each) vs one node with two processes: the cost of the c10d rendezvous between
agents and of the TCP path (gloo, CPU). Run: ``python benchmarks/multinode_overhead.py``.

Prints one JSON object: the median seconds of each launch over ``--repeats`` runs and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ARGS = [
    "--quiet", "train_limit=512", "batch_size=32", "steps=2", "threads=1", "val_attack_steps=2",
    "test_attacks=clean", "epochs=1", "method=rat_trades", "run.deterministic=true",
]  # fmt: skip


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(nnodes: int, nproc: int, out: Path) -> float:
    """Seconds from the first agent's start to the last agent's end."""
    port = _port()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc_per_node",
        str(nproc), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
        "-m", "ratt", "train", "--out", str(out), *ARGS,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    agents = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(nnodes)
    ]
    for agent in agents:
        _, err = agent.communicate()
        if agent.returncode:
            raise SystemExit(err.decode()[-2000:])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"one_node_2proc": [], "two_nodes_1proc": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):  # interleaved, so load drifts hit both alike
            times["one_node_2proc"].append(_launch(1, 2, Path(tmp) / f"one{i}"))
            times["two_nodes_1proc"].append(_launch(2, 1, Path(tmp) / f"two{i}"))
    median = {k: statistics.median(v) for k, v in times.items()}
    ratio = median["two_nodes_1proc"] / median["one_node_2proc"]
    result = {
        "torch": torch.__version__, "cpus": os.cpu_count(), "repeats": args.repeats, "seconds": times,
        "median_seconds": median, "ratio_two_nodes_vs_one": ratio,
    }  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
