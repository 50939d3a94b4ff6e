"""Fixed chunks of points: the unit of randomness and of resuming in an evaluation.

Points ``[CHUNK * c, CHUNK * (c + 1))`` of the evaluated data form chunk ``c``. Every random
choice an attack makes for a point comes from a generator seeded ``chunk_seed(seed, c)``
(PGD/CW starts drawn for the whole chunk and sliced; AutoAttack run on one chunk at a time),
so a point's result does not depend on the batch size or on which chunks were resumed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ratt.attacks import ThreatModel
from ratt.attacks.base import ball_noise

CHUNK = 100
"""Points per chunk. Changing it changes every randomized attack's numbers."""


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk``'s random choices in an evaluation seeded ``seed``."""
    return seed * 1_000_003 + chunk


def chunk_bounds(n: int) -> list[tuple[int, int]]:
    """``[(lo, hi), ...]``: the chunks of ``n`` points (the last one may be shorter)."""
    return [(lo, min(lo + CHUNK, n)) for lo in range(0, n, CHUNK)]


def start_points(x: Tensor, index: Tensor, threat: ThreatModel, seed: int) -> Tensor:
    """Random PGD starts of the points ``index`` (their positions in the evaluated data).

    Chunk ``c``'s offsets are drawn, for all its ``CHUNK`` points and ``threat.restarts``
    restarts at once, from a CPU generator seeded ``chunk_seed(seed, c)``
    (:func:`ratt.attacks.base.ball_noise`), then the rows of ``index`` are taken: the start of
    a point depends only on the seed, its position and the threat model.

    Args:
        x: (B, C, H, W) clean inputs in [0, 1], ``x[i]`` being point ``index[i]``.
        index: (B,) int64 positions.
    Returns:
        (R, B, C, H, W) starts, ``R = threat.restarts``, within ``threat.eps`` of ``x`` and in
        [0, 1], on ``x``'s device and dtype.
    """
    restarts, shape = threat.restarts, tuple(x.shape[1:])
    index = index.cpu()
    offsets = torch.empty((restarts, len(index), *shape))
    chunk_of = index // CHUNK
    for chunk in chunk_of.unique().tolist():
        generator = torch.Generator().manual_seed(chunk_seed(seed, chunk))
        noise = ball_noise(restarts * CHUNK, shape, threat.norm, threat.eps, generator)
        mine = chunk_of == chunk
        offsets[:, mine] = noise.view(restarts, CHUNK, *shape)[:, index[mine] - chunk * CHUNK]
    return (x.unsqueeze(0) + offsets.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)
