"""Streamed training batches (``data.stream``): equal to the in-memory ones without
augmentation, independent of ``data.workers``, each rank's slice of the global batch, and a
run killed mid-epoch resumes bit-identical to an uninterrupted one."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ratt.cli import main
from ratt.core.distributed import take_shard
from ratt.data.base import DatasetInfo
from ratt.data.stream import ArraySource, LazyDataset, StreamBatches, crop_flip, sample_seeds
from ratt.train.batches import BatchPlan
from ratt.train.feed import StreamFeed
from tests.train.test_resume import _assert_same_run

INFO = DatasetInfo("t", (3, 6, 6), 10, 0.1, 0.1, 1, "crop_flip", (0.0,) * 3, (1.0,) * 3, 0)


def _lazy(n: int, seed: int) -> LazyDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 6, 6), generator=g, dtype=torch.uint8)
    return LazyDataset(ArraySource(images, torch.arange(n) % 10), INFO)


def _batches(workers: int, shard=(0, 1), world: int = 1, epochs=(0, 1), start: int = 0) -> list:
    plan = BatchPlan(n_train=50, batch=12, world=world, seed=5, n_extra=30, extra_fraction=0.5)
    feed = StreamFeed(StreamBatches(_lazy(50, 0), _lazy(30, 1), "crop_flip", 5), plan, shard,
                      torch.device("cpu"), workers, 2)  # fmt: skip
    return [b for e in epochs for b in feed.epoch(e, start, plan.epoch_orders(e))]


def test_workers_0_and_2_give_identical_batches():
    alone, pooled = _batches(0), _batches(2)
    assert len(alone) == 2 * 9 and len(alone) == len(pooled)
    for (xa, ya), (xb, yb) in zip(alone, pooled, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(alone[0][0], alone[9][0])  # another epoch, other batches


def test_a_resumed_epoch_continues_with_the_same_batches():
    whole, rest = _batches(0, epochs=(1,)), _batches(0, epochs=(1,), start=4)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(whole[4:], rest, strict=True))


def test_each_rank_streams_exactly_its_slice_of_the_global_batch():
    everything = _batches(0, shard=(0, 1), world=2)
    for rank in (0, 1):
        mine = _batches(0, shard=(rank, 2), world=2)
        for (x, y), (gx, gy) in zip(mine, everything, strict=True):
            assert torch.equal(x, take_shard(gx, (rank, 2))) and torch.equal(y, take_shard(gy, (rank, 2)))


def test_per_image_crop_and_flip_follow_each_images_seed():
    images = torch.randint(0, 256, (40, 2, 5, 7), dtype=torch.uint8)
    seeds = sample_seeds(3, 1, 0, np.arange(40))
    out = crop_flip(images, "crop_flip", seeds)
    for k in range(40):  # an independent computation: numpy pad and slice
        s = int(seeds[k])
        top, left, flip = s % 9, (s >> 8) % 9, (s >> 16) & 1
        padded = np.pad(images[k].numpy(), ((0, 0), (4, 4), (4, 4)))
        want = padded[:, top : top + 5, left : left + 7]
        np.testing.assert_array_equal(out[k].numpy(), want[:, :, ::-1] if flip else want)
    assert len({int(s) % 9 for s in seeds}) > 5  # the offsets vary
    assert not np.array_equal(seeds, sample_seeds(3, 2, 0, np.arange(40)))  # and change per epoch


ARGS = ["epochs=2", "train_limit=96", "batch_size=32", "steps=1", "val_attack_steps=1", "test_attacks=clean",
        "threads=1", "checkpoint_every=1", "deterministic=true", "--quiet"]  # fmt: skip


def test_streaming_without_augmentation_trains_exactly_as_in_memory(tmp_path):
    args = [*ARGS, "epochs=1"]
    assert main(["train", "--out", str(tmp_path / "memory"), *args, "data.stream=false"]) == 0
    streamed = ["data.stream=true", "data.workers=0"]
    assert main(["train", "--out", str(tmp_path / "stream"), *args, *streamed]) == 0
    _assert_same_run(tmp_path / "memory", tmp_path / "stream")


def test_a_streaming_run_killed_mid_epoch_resumes_exactly(tmp_path):
    stream = ["data.stream=true", "data.augment=crop_flip"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert main(["train", "--out", str(reference), *ARGS, *stream, "data.workers=0"]) == 0
    env = {**os.environ, "RATT_TEST_FAULT": "0:4:kill"}  # SIGKILL before step 4 (of 3 + 3)
    cmd = [sys.executable, "-m", "ratt", "train", "--out", str(run), *ARGS, *stream, "data.workers=2"]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert main(["train", "--resume", str(run)]) == 0
    _assert_same_run(run, reference)


@pytest.mark.parametrize("kind", ["none", "crop"])
def test_crop_kinds_keep_the_image_shape(kind):
    images = torch.rand(4, 1, 8, 8)
    out = crop_flip(images, kind, sample_seeds(0, 0, 0, np.arange(4)))
    assert out.shape == images.shape
    if kind == "crop":  # every output pixel is an input pixel or the zero padding
        padded = F.pad(images, (4, 4, 4, 4))
        assert all(any(torch.equal(out[k], padded[k, :, i : i + 8, j : j + 8]) for i in range(9)
                       for j in range(9)) for k in range(4))  # fmt: skip


@pytest.mark.slow
def test_sigterm_to_every_process_stops_a_streaming_run_cleanly_and_it_resumes_exactly(tmp_path):
    """Slurm and Ctrl-C signal the whole process group, loader workers included: the workers
    leave it to the training process, which saves and exits 143."""
    import signal
    import time

    args = [*ARGS, "data.stream=true", "data.augment=crop", "epochs=3"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert main(["train", "--out", str(reference), *args, "data.workers=0"]) == 0
    cmd = [sys.executable, "-m", "ratt", "train", "--out", str(run), *args, "data.workers=2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    while not (run / "checkpoints" / "last_state.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("run finished before SIGTERM")
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    assert main(["train", "--resume", str(run)]) == 0
    _assert_same_run(run, reference)


def test_a_streamed_runs_val_test_and_probe_images_are_read_only_when_evaluated(tmp_path, monkeypatch):
    """``build_setup`` decodes no image of a streamed ImageNet folder: the validation hold-out,
    the test split and the training-accuracy probe are read when rank 0 first evaluates them
    (the other ranks of a torchrun never do), and then equal the in-memory splits."""
    from ratt import data
    from ratt.data.folder import FolderSource
    from ratt.runs import build_config
    from ratt.train.setup import build_setup
    from tests.data.test_folder_stream import make_tree

    make_tree(tmp_path / "inet")
    decoded: list[str] = []
    decode = FolderSource._decode
    counted = lambda self, path: decoded.append(path) or decode(self, path)  # noqa: E731
    monkeypatch.setattr(FolderSource, "_decode", counted)
    config = build_config(None, [
        "data=imagenet", f"data.root={tmp_path / 'inet'}", "data.image_size=16", "data.resize=18",
        "data.stream=true", "data.workers=0", "data.val_size=3", "model=smallcnn", "epochs=1",
        "batch_size=4", "threads=1", "device=cpu",
    ])  # fmt: skip
    setup = build_setup(config)
    assert decoded == []  # before this change: every val/, hold-out and probe image, on every rank
    test = setup.data.held("test")
    assert len(decoded) == len(test) == 6 and all("/val/" in path for path in decoded)
    assert setup.data.held("test") is test  # read once, kept
    expected = data.load_for(config.data, "test")
    assert torch.equal(test.images, expected.images) and torch.equal(test.labels, expected.labels)
    assert len(setup.data.held("val")) == 3
    assert len(setup.probe()) == 18 - 3  # every training image: fewer than the probe's 256
