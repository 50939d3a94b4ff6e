"""Where each step's batch comes from: the training split in memory, or streamed by
``DataLoader`` worker processes.

Both follow :class:`ratt.train.batches.BatchPlan` (the seeded per-epoch order) and give each
rank its share ``global_batch[rank::world]``.

- :class:`MemoryFeed` (small sets, unchanged): the split on the device; each global batch is
  sliced, augmented on the device from the global generators, then sharded.
- :class:`StreamFeed` (``data.stream``): a batch sampler yields this rank's indices of each
  global batch from the current step on; workers read and augment them per image from
  (seed, epoch, index) (:mod:`ratt.data.stream`), so the batches do not depend on
  ``data.workers`` and a resumed run continues exactly. Pinned memory on CUDA.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ratt.core import distributed as ddp
from ratt.data import augment, to_float
from ratt.data.stream import BatchKey, LazyDataset, StreamBatches, available_cores, default_workers
from ratt.errors import UserError
from ratt.train.batches import BatchPlan

log = logging.getLogger(__name__)
Orders = tuple[Tensor, "Tensor | None"]


class MemoryFeed:
    """The training images on the device (today's in-memory path, bit for bit)."""

    skipped = 0

    def __init__(self, train, extra, plan: BatchPlan, kind: str, shard: tuple[int, int], device) -> None:
        self.plan, self.kind, self.shard, self.device = plan, kind, shard, device
        self.images, self.labels = train.images.to(device), train.labels.to(device)
        self.extra = None if extra is None else (extra.images.to(device), extra.labels.to(device))

    def epoch(self, epoch: int, start: int, orders: Orders) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's batches of ``epoch`` from step ``start`` on."""
        order, extra_order = orders
        on_device = (order.to(self.device), None if extra_order is None else extra_order.to(self.device))
        step = start
        while True:
            yield self._global_batch(on_device, step)
            step += 1

    def _global_batch(self, orders: Orders, step: int) -> tuple[Tensor, Tensor]:
        """Step ``step``'s global batch (original images, then extra ones), augmented on every
        rank with identical RNG streams, then this rank's shard."""
        own, extra = self.plan.step_indices(orders, step)
        x, y = to_float(self.images[own]), self.labels[own]
        if extra is not None:
            x = torch.cat([x, to_float(self.extra[0][extra])])
            y = torch.cat([y, self.extra[1][extra]])
        x = augment(x, self.kind)
        return ddp.take_shard(x, self.shard), ddp.take_shard(y, self.shard)


@dataclass
class _BatchKeys:
    """A batch sampler: ``[BatchKey]`` for each step of one epoch from ``start`` (this rank's slice)."""

    plan: BatchPlan
    orders: Orders
    epoch: int
    start: int
    shard: tuple[int, int]

    def __iter__(self):
        rank, world = self.shard
        for step in range(self.start, self.plan.steps):
            own, extra = self.plan.step_indices(self.orders, step)
            own_part = own.numpy()[rank::world]
            extra_part = None if extra is None else extra.numpy()[rank::world]
            yield [BatchKey(self.epoch, own_part, extra_part)]

    def __len__(self) -> int:
        return max(0, self.plan.steps - self.start)


def _first(batch: list) -> dict:
    return batch[0]


def _ignore_stop_signals(worker_id: int) -> None:
    """In each worker: leave SIGINT and SIGTERM (Ctrl-C, Slurm and docker send them to every
    process) to the training process, which finishes its step, saves and stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


SHM_HINT = (
    "a DataLoader worker ran out of shared memory (/dev/shm is too small): give the container a "
    "larger one (docker --shm-size=8g), or set data.workers=0 or a smaller data.batch_size"
)


class StreamFeed:
    """Batches read by ``DataLoader`` workers (``workers`` 0: in this process)."""

    def __init__(
        self, batches: StreamBatches, plan: BatchPlan, shard, device, workers: int, prefetch: int
    ) -> None:
        self.batches, self.plan, self.shard, self.device = batches, plan, shard, device
        self.workers, self.prefetch = workers, prefetch
        self.skipped = 0  # images left out (data.on_bad_image=skip) since this process started
        self._warned = False

    def _loader(self, epoch: int, start: int, orders: Orders) -> torch.utils.data.DataLoader:
        cpu = (orders[0].cpu(), None if orders[1] is None else orders[1].cpu())
        return torch.utils.data.DataLoader(
            self.batches, batch_sampler=_BatchKeys(self.plan, cpu, epoch, start, self.shard),
            num_workers=self.workers, collate_fn=_first, pin_memory=self.device.type == "cuda",
            prefetch_factor=self.prefetch if self.workers else None,
            generator=torch.Generator().manual_seed(0),  # its seed draw must not move the global RNG
            worker_init_fn=_ignore_stop_signals,
        )  # fmt: skip

    def epoch(self, epoch: int, start: int, orders: Orders) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's batches of ``epoch`` from step ``start`` on, floats in [0, 1] on the device."""
        try:
            for item in self._loader(epoch, start, orders):
                if item["error"] is not None:
                    raise UserError(item["error"])
                self._count_skipped(item["skipped"])
                x = item["x"].to(self.device, non_blocking=True)
                yield to_float(x), item["y"].to(self.device, non_blocking=True)
        except RuntimeError as exc:
            if "shared memory" in str(exc) or "Bus error" in str(exc):
                raise UserError(SHM_HINT) from None
            raise

    def _count_skipped(self, count: int) -> None:
        self.skipped += count
        if count and not self._warned:
            log.warning("skipped an unreadable image (data.on_bad_image=skip; counted in metrics.jsonl)")
            self._warned = True


def worker_count(requested: int | None, local_world: int) -> int:
    """``data.workers`` (None: :func:`ratt.data.stream.default_workers`); warns above the cores."""
    workers = default_workers(local_world) if requested is None else requested
    cores = available_cores()
    if workers > cores:
        log.warning("data.workers=%d is more than the %d cores available: expect no speed-up", workers, cores)
    return workers


def build_feed(setup, config) -> MemoryFeed | StreamFeed:
    """The feed of a run: streamed when its training split is a lazy dataset (workers per
    process: the cores shared by torchrun's ``LOCAL_WORLD_SIZE`` processes)."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    train, extra = setup.data.train, setup.extra
    kind = setup.augment
    if not isinstance(train, LazyDataset):
        return MemoryFeed(train, extra, setup.plan, kind, setup.dist.shard, setup.device)
    batches = StreamBatches(train, extra, kind, config.run.seed)
    workers = worker_count(config.data.workers, local_world)
    return StreamFeed(batches, setup.plan, setup.dist.shard, setup.device, workers, config.data.prefetch)
