"""A fault on purpose, for the tests of what a multi-process run does when one rank fails.

``RATT_TEST_FAULT=RANK:STEP[:KIND]`` makes global rank ``RANK`` fail just before its optimizer
step number ``STEP`` (counted over the whole run, from 0), on the first attempt of an elastic
group only (``TORCHELASTIC_RESTART_COUNT`` unset or 0), so a restarted group runs through:

- ``raise`` (the default): a ``RuntimeError`` (what an out-of-memory or a late bug is);
- ``kill``: ``SIGKILL`` of the process (a lost worker: no handler, no cleanup).

Unset (always, outside the tests), it costs one dictionary lookup per run.
"""

from __future__ import annotations

import os
import signal

from ratt.core.distributed import elastic_restart_count

ENV = "RATT_TEST_FAULT"


def planned_fault(rank: int) -> tuple[int, str] | None:
    """``(step, kind)`` of the fault planned for ``rank`` in this attempt, or None."""
    spec = os.environ.get(ENV)
    if not spec or elastic_restart_count() > 0:
        return None
    parts = spec.split(":")
    if int(parts[0]) != rank:
        return None
    kind = parts[2] if len(parts) > 2 else "raise"
    if kind not in ("raise", "kill"):
        raise ValueError(f"{ENV}={spec}: the kind is raise or kill")
    return int(parts[1]), kind


def trigger(step: int, fault: tuple[int, str] | None) -> None:
    """Fail now if ``fault`` is planned for global step ``step``."""
    if fault is None or fault[0] != step:
        return
    if fault[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"fault injected by {ENV} at step {step}")
