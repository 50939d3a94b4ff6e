"""Work only rank 0 does (validation, the final test) while the other ranks wait, without a
collective: rank 0 publishes the result in the process group's store and beats a heartbeat
counter there while it works; the others poll the store.

A collective wait (``broadcast``) ends at the process group's timeout, which therefore had
to exceed the longest evaluation (an AutoAttack test of a large model takes hours), and that
same timeout is how long NCCL ranks hang when a peer dies. Waiting on the store instead, a
rank knows within seconds that rank 0 failed (its error is published), is gone (the store
becomes unreachable, or the heartbeat stops for ``stale_after``), or is still at work, so
``run.dist_timeout`` only has to cover a training step.
"""

from __future__ import annotations

import datetime
import pickle
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")
PREFIX = "ratt/rank0"


class RankZeroFailed(RuntimeError):
    """Rank 0 raised, or stopped beating, while the other ranks waited for its result."""


class _Heartbeat:
    """A thread that adds 1 to ``key`` in ``store`` every ``every_s`` seconds (rank 0's
    main thread is busy evaluating; the count is compared, never a clock, so the ranks'
    clocks need not agree)."""

    def __init__(self, store: dist.Store, key: str, every_s: float) -> None:
        self.store, self.key, self.every_s = store, key, every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="ratt-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                self.store.add(self.key, 1)
            except Exception:  # the store is gone: the waiting ranks see that for themselves
                return

    def __enter__(self) -> _Heartbeat:
        self.store.add(self.key, 1)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def run_on_rank0(
    compute: Callable[[], T],
    *,
    rank: int,
    tag: str,
    stale_after: datetime.timedelta,
    beat_s: float = 5.0,
    poll_s: float = 0.2,
    store: dist.Store | None = None,
) -> T:
    """``compute()`` on rank 0; every rank returns its result (pickled through the store:
    small things, such as metrics and RNG states). All ranks meet in one barrier once the
    others have read it (rank 0 hosts the store under ``env://``: it must not exit first).

    Args:
        rank: this process's global rank.
        tag: unique per call in a run (e.g. ``val-epoch-3``): the store keys' name.
        stale_after: how long the other ranks wait without a heartbeat before they give up.
        beat_s: rank 0's heartbeat period; poll_s: how often the others look.
        store: the group's store (default: the default process group's).
    Raises:
        RankZeroFailed: (ranks > 0) rank 0 raised (its error, in one line) or stopped beating.
    """
    store = store if store is not None else dist.distributed_c10d._get_default_store()
    key = f"{PREFIX}/{tag}"
    if rank == 0:
        with _Heartbeat(store, f"{key}/alive", beat_s):
            try:
                result = compute()
            except BaseException as exc:
                store.set(key, pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
                raise
        store.set(key, pickle.dumps(("ok", result)))
    else:
        result = _wait(store, key, tag, stale_after, poll_s)
    if dist.is_initialized():  # every rank has read the result: rank 0 (the store's host
        dist.barrier()  # under env://) may go on, and exit, only now
    return result


def _wait(store: dist.Store, key: str, tag: str, stale_after: datetime.timedelta, poll_s: float) -> T:
    """Poll ``store`` for rank 0's result under ``key``, watching its heartbeat."""
    beats, last_change = -1, time.monotonic()
    while not store.check([key]):
        count = store.add(f"{key}/alive", 0)  # reads the counter (0 if rank 0 has not begun)
        now = time.monotonic()
        if count != beats:
            beats, last_change = count, now
        elif now - last_change > stale_after.total_seconds():
            raise RankZeroFailed(
                f"rank 0 gave no sign of life for {stale_after} while the others waited for its "
                f"{tag} (run.dist_timeout)"
            )
        time.sleep(poll_s)
    status, value = pickle.loads(store.get(key))
    if status == "error":
        raise RankZeroFailed(f"rank 0 failed during {tag}: {value}")
    return value
