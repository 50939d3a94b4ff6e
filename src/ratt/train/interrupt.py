"""Stopping cleanly on SIGINT/SIGTERM: finish the step, save, then raise."""

from __future__ import annotations

import logging
import shlex
import signal
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the current step is done and a checkpoint is written."""

    def __init__(
        self, signum: int, out_dir: Path, epoch: int, step: int, *, final_test: bool = False,
        trust_code: bool = False,
    ) -> None:  # fmt: skip
        self.signum = signum
        name = signal.Signals(signum).name
        where = (
            f"stopped during the final test evaluation ({epoch} epochs trained and saved)"
            if final_test
            else f"stopped at epoch {epoch + 1}, step {step} and saved the state"
        )
        flag = " --trust-code" if trust_code else ""  # the run's model runs the user's code
        command = f"ratt train --resume --out {shlex.quote(str(out_dir))}{flag}"
        super().__init__(f"{name} received: {where}; resume with: {command}")


class StopSignals:
    """Context manager that records SIGINT/SIGTERM instead of dying (a second one stops at once;
    with ``immediate``, the first one raises ``KeyboardInterrupt``).

    ``received`` is the first signal number, or None. Handlers are installed only in the
    main thread and the previous ones are put back on exit.
    """

    def __init__(self, *, immediate: bool = False) -> None:
        self.received: int | None = None
        self.immediate = immediate  # stop at once (raise KeyboardInterrupt) on the first signal
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.received is not None or self.immediate:  # second signal (or immediate): stop now
            self.received = self.received or signum
            raise KeyboardInterrupt
        self.received = signum
        log.warning("%s received: finishing this step, then saving", signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
