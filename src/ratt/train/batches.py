"""Which training images make up each step's global batch.

Without extra data: every epoch is a permutation of the training set seeded by
``(run.seed, epoch)``, padded to a multiple of the world size (DistributedSampler's
``drop_last=False``), cut into batches of ``data.batch_size``.

With extra data (``data.extra``, e.g. generated images) and ``data.extra_fraction = f``: each
global batch holds ``e = round(f B / W) W`` extra images and ``B - e`` original ones (W the
world size, so both parts shard evenly). The epoch is still one pass over the original set
(``ceil(N / (B - e))`` steps); the extra images come from their own permutations, seeded by
``(run.seed, epoch)`` too and concatenated as often as the epoch needs. Everything is a
function of the seed, the epoch and the step, so every rank builds the same global batch and a
resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ratt.core.distributed import padded_order

EXTRA_STREAM = 500_009  # offsets the extra images' permutation seed from the originals'


@dataclass(frozen=True)
class BatchPlan:
    """The batches of an epoch.

    Attributes:
        n_train: original training images.
        batch: global batch size.
        world: processes.
        seed: ``run.seed``.
        n_extra: extra training images (0: none).
        extra_fraction: the share of each batch drawn from them.
    """

    n_train: int
    batch: int
    world: int = 1
    seed: int = 0
    n_extra: int = 0
    extra_fraction: float = 0.0

    @property
    def extra_per_batch(self) -> int:
        """Extra images per global batch (a multiple of the world size; 0 without extra data)."""
        if not self.n_extra:
            return 0
        return min(self.batch - self.world, round(self.extra_fraction * self.batch / self.world) * self.world)

    @property
    def own_per_batch(self) -> int:
        return self.batch - self.extra_per_batch

    @property
    def steps(self) -> int:
        """Steps per epoch: one pass over the original training set."""
        return -(-self.n_train // self.own_per_batch)

    def epoch_orders(self, epoch: int) -> tuple[Tensor, Tensor | None]:
        """(the original images' order, padded for the world size; the extra images' order)."""
        order = torch.randperm(
            self.n_train, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        )
        order = padded_order(order, self.world)
        if not self.extra_per_batch:
            return order, None
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch + EXTRA_STREAM)
        needed = self.steps * self.extra_per_batch
        parts = [torch.randperm(self.n_extra, generator=generator) for _ in range(-(-needed // self.n_extra))]
        if len(parts) == 1:  # the same values without a second copy of a large permutation
            return order, parts[0][:needed].clone()
        return order, torch.cat(parts)[:needed]

    def step_indices(self, orders: tuple[Tensor, Tensor | None], step: int) -> tuple[Tensor, Tensor | None]:
        """Indices into the original and the extra images of global batch ``step``."""
        order, extra = orders
        own = order[step * self.own_per_batch : (step + 1) * self.own_per_batch]
        if extra is None:
            return own, None
        return own, extra[step * self.extra_per_batch : (step + 1) * self.extra_per_batch]
