"""Work only rank 0 does, waited for through the store (ratt.core.rank0): an evaluation
longer than the process group's timeout is waited for, a failing or silent rank 0 is said in
one line within seconds. Two threads share one in-memory store and stand for two ranks."""

from __future__ import annotations

import datetime
import threading
import time

import torch.distributed as dist

from ratt.core.rank0 import RankZeroFailed, run_on_rank0

SHORT = datetime.timedelta(seconds=0.5)


def _ranks(compute, *, beat_s=0.05, stale_after=SHORT, rank0=True):
    """Run rank 0 (in a thread, unless ``rank0`` is False) and rank 1 (here) on one store:
    (rank 0's outcome, rank 1's outcome, rank 1's seconds)."""
    store, outcomes = dist.HashStore(), {}

    def play(rank):
        try:
            outcomes[rank] = run_on_rank0(
                compute, rank=rank, tag="validation of epoch 1", stale_after=stale_after,
                beat_s=beat_s, poll_s=0.01, store=store,
            )  # fmt: skip
        except Exception as exc:
            outcomes[rank] = exc

    thread = threading.Thread(target=play, args=(0,)) if rank0 else None
    if thread:
        thread.start()
    start = time.monotonic()
    play(1)
    seconds = time.monotonic() - start
    if thread:
        thread.join()
    return outcomes.get(0), outcomes[1], seconds


def test_a_result_slower_than_the_staleness_limit_still_arrives_while_rank_0_beats():
    def evaluation():
        time.sleep(4 * SHORT.total_seconds())  # longer than the others wait for silence
        return {"val_robust_acc": 0.42}

    first, second, seconds = _ranks(evaluation)
    assert first == second == {"val_robust_acc": 0.42}
    assert seconds >= 4 * SHORT.total_seconds()


def test_rank_0s_error_reaches_the_others_at_once_in_one_line():
    def evaluation():
        time.sleep(0.1)
        raise RuntimeError("CUDA out of memory")

    first, second, seconds = _ranks(evaluation, stale_after=datetime.timedelta(minutes=5))
    assert isinstance(first, RuntimeError) and isinstance(second, RankZeroFailed)
    assert str(second) == "rank 0 failed during validation of epoch 1: RuntimeError: CUDA out of memory"
    assert seconds < 5


def test_a_silent_rank_0_is_given_up_after_the_staleness_limit():
    _, second, seconds = _ranks(lambda: None, rank0=False)  # rank 0 never starts, never beats
    assert isinstance(second, RankZeroFailed) and "gave no sign of life for 0:00:00.500000" in str(second)
    assert SHORT.total_seconds() <= seconds < 5


def test_one_process_just_computes():
    store = dist.HashStore()
    assert run_on_rank0(lambda: 7, rank=0, tag="t", stale_after=SHORT, store=store) == 7


def test_the_heartbeat_counts_while_rank_0_works():
    store = dist.HashStore()
    run_on_rank0(lambda: time.sleep(0.2), rank=0, tag="t", stale_after=SHORT, beat_s=0.01, store=store)
    assert store.add("ratt/rank0/t/alive", 0) >= 5
