"""Data-parallel training (2 CPU processes, gloo) equals one process with the same global batch.

The reference runs in the test process with no process group; the workers are spawned with
``torch.multiprocessing`` and run the same configuration through the same ``Trainer``.

Why float64 for several steps: float32 adversarial training is chaotic at the rounding
level. The attacks' signed steps turn a last-bit difference in a near-zero input gradient
into a full step, so a 1e-7 relative perturbation of the initial weights moves the weights
after 4 steps by 5e-4 (smallcnn, trades) to 1e-1 (wrn-10-1, trades) relative. Splitting a
batch over processes changes summation order, i.e. makes exactly such perturbations. So:
4 steps in float64 (rounding 1e-16: measured differences <= 3e-13, tolerance 1e-10) and
1 step in float32 (tolerance 1e-5, measured <= 6e-6). A run that lets each rank draw its
own attack noise misses the tolerance by orders of magnitude.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from ratt import config as cfg
from ratt.core.distributed import GlobalBatchNorm, padded_order, take_shard
from ratt.runs import build_config, read_weights
from ratt.train import Trainer

METHODS = ["trades", "rat_trades", "awp+rat_trades"]
MODELS = {"smallcnn": [], "wrn-10-1": ["run.sync_bn=true"]}  # no BatchNorm / synchronized BatchNorm
RTOL = 1e-5  # float32
RTOL_FP64 = 1e-10
STEPS_FP64 = 4  # optimizer steps compared in float64
STEPS_FP32 = 1  # and in float32 (see the module doc for why fewer)


def _config(method: str, model: str, extra: list[str]) -> cfg.TrainConfig:
    return build_config(
        None,
        [
            f"method={method}", f"model={model}", "epochs=1", "train_limit=128", "batch_size=32",
            "steps=2", "threads=1", "awp_warmup=0", "progress=false", "device=cpu", "dropout=0",
            "sigma_w=0.01", "lr=0.05", *extra,
        ],
    )  # fmt: skip


def _one_epoch(config: cfg.TrainConfig, out: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """One epoch of ``config`` in ``dtype`` (float64: model and inputs; see the module doc)."""
    from ratt.data import to_float
    from ratt.train import feed as feed_module
    from ratt.train import trainer as trainer_module

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    trainer_module.to_float = feed_module.to_float = lambda images: to_float(images).to(dtype)
    try:
        trainer = Trainer(config, out)
        trainer.train_epoch()
    finally:
        torch.set_default_dtype(default)
        trainer_module.to_float = feed_module.to_float = to_float
    out = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    if trainer.setup.ema is not None:  # the weight average, compared like the weights
        out.update({f"ema.{k}": v.detach().clone() for k, v in trainer.setup.ema.shadow.items()})
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, jobs: list, out: str, local_noise: bool, dtype) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    if local_noise:  # each rank draws its own start noise: the one-process run is not reproduced
        from ratt.methods.base import Method

        original = Method.configure_parallel

        def no_shard(self, train_model, attack_model, shard):
            original(self, train_model, attack_model, shard)
            self.shard = (0, 1)

        Method.configure_parallel = no_shard
    try:
        for name, (method, model, extra) in jobs:
            weights = _one_epoch(_config(method, model, extra), Path(out) / name, dtype)
            torch.save(weights, Path(out) / f"{name}.rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _run_parallel(jobs: list, out: Path, dtype: torch.dtype, local_noise: bool = False) -> dict[str, list]:
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(2, _free_port(), jobs, str(out), local_noise, dtype), nprocs=2, join=True)
    return {name: [torch.load(out / f"{name}.rank{r}.pt") for r in range(2)] for name, _ in jobs}


def _relative_error(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    worst = 0.0
    for key in b:
        if b[key].is_floating_point():
            scale = b[key].abs().max().clamp_min(1e-12)
            worst = max(worst, float((a[key] - b[key]).abs().max() / scale))
    return worst


def _extra_file() -> str:
    """Extra training images (the digits, mirrored), the same file for every process."""
    import numpy as np

    from ratt import data

    path = Path(tempfile.gettempdir()) / "ratt-test-extra-digits.npz"
    if not path.exists():
        train = data.load("digits", "train")
        mirrored = (train.images.numpy()[:, 0, :, ::-1] * 255).round().astype(np.uint8)
        np.savez(path.with_suffix(".tmp.npz"), x=mirrored, y=train.labels.numpy())
        os.replace(path.with_suffix(".tmp.npz"), path)
    return str(path)


def _jobs(steps: int) -> list:
    limit = f"train_limit={32 * steps}"
    jobs = [(f"{model}-{m}", (m, model, [*extra, limit])) for model, extra in MODELS.items() for m in METHODS]
    ema = ["optim.ema_decay=0.5", "run.sync_bn=true", limit]  # averaged weights and BN statistics
    mixed = [f"data.extra={_extra_file()}", "data.extra_fraction=0.5", f"train_limit={16 * steps}"]
    return [
        *jobs,
        ("wrn-10-1-awp+rat_trades-ema", ("awp+rat_trades", "wrn-10-1", ema)),
        ("smallcnn-rat_trades-extra", ("rat_trades", "smallcnn", mixed)),  # 16 own + 16 extra a step
        # streamed: each rank's DataLoader reads only its slice of each global batch
        (
            "smallcnn-rat_trades-stream",
            ("rat_trades", "smallcnn", [*mixed, "data.stream=true", "data.augment=crop"]),
        ),
        ("wrn-10-1-trades-rank-bn", ("trades", "wrn-10-1", [limit])),  # per-rank BatchNorm
    ]


@pytest.fixture(scope="module")
def parallel_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    return {
        dtype: _run_parallel(_jobs(steps), out / str(dtype)[6:], dtype)
        for dtype, steps in ((torch.float64, STEPS_FP64), (torch.float32, STEPS_FP32))
    }


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("method", METHODS)
def test_two_gloo_processes_give_the_one_process_weights(method, model, dtype, parallel_runs, tmp_path):
    torch.set_num_threads(1)
    name = f"{model}-{method}"
    steps = STEPS_FP64 if dtype == torch.float64 else STEPS_FP32
    _, (_, _, extra) = next(job for job in _jobs(steps) if job[0] == name)
    reference = _one_epoch(_config(method, model, extra), tmp_path, dtype)
    rank0, rank1 = parallel_runs[dtype][name]
    for key in rank0:  # DDP keeps the replicas identical
        assert torch.equal(rank0[key], rank1[key]), key
    error = _relative_error(rank0, reference)
    tolerance = RTOL_FP64 if dtype == torch.float64 else RTOL
    assert error < tolerance, f"{name}: max relative weight difference {error:.2e}"
    if model == "wrn-10-1":  # synchronized BatchNorm: running statistics match too
        for key in ("net.final_bn.running_mean", "net.final_bn.running_var"):
            torch.testing.assert_close(rank0[key], reference[key], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
def test_per_rank_batchnorm_ends_every_step_with_rank_0s_statistics(dtype, parallel_runs):
    """Without run.sync_bn each rank's BatchNorm statistics come from its own shard; the
    trainer broadcasts rank 0's after every step (DDP's own broadcast before every forward
    breaks two-forward methods on torch 2.6-2.11, pytorch#175024), so the ranks end equal."""
    rank0, rank1 = parallel_runs[dtype]["wrn-10-1-trades-rank-bn"]
    buffers = [k for k in rank0 if "running_" in k]
    assert buffers
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


def test_ranks_drawing_their_own_attack_noise_miss_the_tolerance(tmp_path):
    """The equality above is not vacuous: without sharded noise the weights drift apart."""
    torch.set_num_threads(1)
    jobs = [("smallcnn-trades", ("trades", "smallcnn", [f"train_limit={32 * STEPS_FP64}"]))]
    parallel = _run_parallel(jobs, tmp_path, torch.float64, local_noise=True)["smallcnn-trades"][0]
    reference = _one_epoch(_config(*jobs[0][1]), tmp_path / "ref", torch.float64)
    assert _relative_error(parallel, reference) > 100 * RTOL


def test_global_batchnorm_matches_batchnorm_without_a_group():
    torch.manual_seed(0)
    bn, gbn = torch.nn.BatchNorm2d(3), GlobalBatchNorm(3)
    x = torch.randn(8, 3, 4, 4)
    torch.testing.assert_close(gbn(x), bn(x))
    torch.testing.assert_close(gbn.running_var, bn.running_var)


def test_shards_are_distributed_sampler_slices():
    order = torch.arange(10)
    padded = padded_order(order, 4)
    assert padded.tolist() == [*range(10), 0, 1]
    sampler = torch.utils.data.DistributedSampler(range(10), num_replicas=4, rank=1, shuffle=False)
    # global batch of 8 = per-rank batch 2: rank 1 takes batch[1::4] of each global batch
    mine = torch.cat([take_shard(padded[lo : lo + 8], (1, 4)) for lo in range(0, 12, 8)])
    assert mine.tolist() == list(sampler)


@pytest.mark.slow
def test_torchrun_cli_run_then_resume_with_one_process(tmp_path):
    """``torchrun --nproc_per_node 2 -m ratt train``: rank 0 writes the run (one metrics row per
    epoch, the world size in versions.json); a one-process ``--resume`` continues it. (Weight
    equality is pinned above; over 8 float32 steps it is below the chaos floor, see the top.)"""
    args = [
        "--quiet", "train_limit=128", "batch_size=32", "steps=2", "threads=1",
        "val_attack_steps=2", "test_attacks=clean", "schedule=constant", "method=rat_trades",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--master_port", str(_free_port())]  # fmt: skip
    out = tmp_path / "run"
    two = subprocess.run(
        [*launch, "-m", "ratt", "train", "--out", str(out), *args, "epochs=1"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((out / "versions.json").read_text())["world_size"] == "2"
    resumed = subprocess.run(
        [sys.executable, "-m", "ratt", "train", "--resume", "--out", str(out), *args, "epochs=2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    weights, meta = read_weights(out / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 2 and all(torch.isfinite(v).all() for v in weights.values())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("wrn-10-1-awp+rat_trades-ema", "ema."),
        ("smallcnn-rat_trades-extra", ""),
        ("smallcnn-rat_trades-stream", ""),
    ],
    ids=["weight-average", "extra-data", "extra-data-streamed"],
)
def test_two_gloo_processes_with_ema_or_extra_data_give_the_one_process_run(
    name, prefix, dtype, parallel_runs, tmp_path
):
    torch.set_num_threads(1)
    steps = STEPS_FP64 if dtype == torch.float64 else STEPS_FP32
    _, (method, model, extra) = next(job for job in _jobs(steps) if job[0] == name)
    reference = _one_epoch(_config(method, model, extra), tmp_path, dtype)
    rank0, rank1 = parallel_runs[dtype][name]
    keys = [k for k in reference if k.startswith(prefix)]  # the average's tensors, or every weight
    assert keys and all(torch.equal(rank0[k], rank1[k]) for k in keys)
    error = _relative_error({k: rank0[k] for k in keys}, {k: reference[k] for k in keys})
    assert error < (RTOL_FP64 if dtype == torch.float64 else RTOL), f"{error:.2e}"
