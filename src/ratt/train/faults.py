"""A fault on purpose, for the tests of what a multi-process run does when one rank fails.

``RATT_TEST_FAULT=RANK:STEP[:KIND]`` makes global rank ``RANK`` fail just before its optimizer
step number ``STEP`` (counted over the whole run, from 0), on the first attempt of an elastic
group only (``TORCHELASTIC_RESTART_COUNT`` unset or 0), so a restarted group runs through:

- ``raise`` (the default): a ``RuntimeError`` (what an out-of-memory or a late bug is);
- ``kill``: ``SIGKILL`` of the process (a lost worker: no handler, no cleanup);
- ``preempt``: ``SIGUSR2`` to the process, the signal Slurm sends (through submitit's
  ``--signal``) before a time limit or preemption: submitit's handler requeues the job.

``RATT_TEST_FAULT_ONCE=PATH`` fires the fault only while ``PATH`` does not exist and creates it
when it fires (a requeued Slurm job is a new attempt that torchrun's count does not see).

Unset (always, outside the tests), it costs one dictionary lookup per run.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from ratt.core.distributed import elastic_restart_count

ENV = "RATT_TEST_FAULT"
ONCE_ENV = "RATT_TEST_FAULT_ONCE"
KINDS = ("raise", "kill", "preempt")


def planned_fault(rank: int) -> tuple[int, str] | None:
    """``(step, kind)`` of the fault planned for ``rank`` in this attempt, or None."""
    spec = os.environ.get(ENV)
    once = os.environ.get(ONCE_ENV)
    if not spec or elastic_restart_count() > 0 or (once and os.path.exists(once)):
        return None
    parts = spec.split(":")
    if int(parts[0]) != rank:
        return None
    kind = parts[2] if len(parts) > 2 else "raise"
    if kind not in KINDS:
        raise ValueError(f"{ENV}={spec}: the kind is one of {', '.join(KINDS)}")
    return int(parts[1]), kind


def trigger(step: int, fault: tuple[int, str] | None) -> None:
    """Fail now if ``fault`` is planned for global step ``step``."""
    if fault is None or fault[0] != step:
        return
    once = os.environ.get(ONCE_ENV)
    if once:
        Path(once).touch(exist_ok=False)  # an empty marker: the fault has fired
    if fault[1] == "preempt":
        os.kill(os.getpid(), signal.SIGUSR2)
        return
    if fault[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"fault injected by {ENV} at step {step}")
