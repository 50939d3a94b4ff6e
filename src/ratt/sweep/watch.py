"""What the sweep's own process does while cells run, whichever launcher runs them: an overall
bar (tqdm; off when not a terminal or when quiet) and one line per finished cell, signals
recorded instead of obeyed at once, and waiting for cells another process or job is running."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ratt.sweep.status import DONE, FAILED, FINISHED, CellView, alive, cell_view, read_status

log = logging.getLogger(__name__)


class SweepInterrupted(Exception):
    """The sweep's process got SIGINT/SIGTERM; its cells saved their state (or keep running
    as Slurm jobs). Re-running the same sweep continues."""

    def __init__(self, signum: int, note: str = "") -> None:
        self.signum = signum
        super().__init__(f"{signal.Signals(signum).name} received: stopped the sweep{note}")


class Signals:
    """Context manager recording SIGINT/SIGTERM to the sweep's process in ``received`` instead of
    stopping it (main thread only; the previous handlers are put back on exit)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, lambda s, f: self.received.append(s))
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


class Progress:
    """Counts finished cells: a bar over them and one log line each (failures at ERROR, so
    they show under ``--quiet`` too). ``views`` holds every finished cell's :class:`CellView`."""

    def __init__(self, total: int, show: bool = True) -> None:
        self.total = total
        self.views: list[CellView] = []
        self._show = show
        self._start = time.time()

    def __enter__(self) -> Progress:
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        self.bar = tqdm(total=self.total, desc="sweep", unit="cell", disable=None if self._show else True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        self._redirect.__exit__(*exc)

    def finished(self, view: CellView) -> None:
        """Record one finished cell (done, failed or stopped) and say so."""
        self.views.append(view)
        head = f"[{len(self.views)}/{self.total}] {view.name}"
        if view.state == DONE:
            log.info("%s: done%s", head, f" in {view.detail}" if view.detail else "")
        elif view.state == FAILED:
            log.error("%s: FAILED: %s (log: %s)", head, view.detail, view.log)
        else:
            log.warning("%s: %s: %s", head, view.state, view.detail)
        self.bar.update(1)

    @property
    def failed(self) -> list[CellView]:
        """The cells that did not finish (failed or stopped)."""
        return [v for v in self.views if v.state != DONE]


def wait_for_owned(
    cells: dict[str, Path], jobs: dict[str, dict], finished: Callable[[CellView], None], poll_s: float = 2.0
) -> None:
    """Wait for cells another process or job is running (name -> run directory), reporting
    each through ``finished`` once its status is final or its owner is gone."""
    waiting = dict(cells)
    while waiting:
        for name, out in list(waiting.items()):
            status = read_status(out)
            if status.get("state") in FINISHED or alive(status, jobs.get(name)) is False:
                finished(cell_view(out, name, jobs.get(name)))
                del waiting[name]
        if waiting:
            time.sleep(poll_s)
