"""AutoAttack's progress, stage by stage: a 100-point chunk's stage can take minutes on a CPU,
so a bar that moved once per chunk looked like a hang."""

from __future__ import annotations

import logging
import time

from tqdm.auto import tqdm

from ratt.attacks.autoattack import StageCallback
from ratt.attacks.registry import Attack

log = logging.getLogger(__name__)


class StageProgress:
    """Moves ``bar`` (counting points x stages) after each AutoAttack stage of each chunk and
    says which chunk and stage ran, the points it left correct, and the time left; where the
    bar is hidden (stderr not a terminal) and ``log_lines`` is set, it logs one line per stage
    instead.

    Args:
        bar: the attack's tqdm bar, its total = points x stages.
        spec: the AutoAttack version being run (its ``stages``).
        chunks: how many chunks the evaluation has.
        todo: points x stages still to run in this call (for the time left).
        log_lines: log a line per stage when the bar is hidden.
    """

    def __init__(self, bar: tqdm, spec: Attack, *, chunks: int, todo: int, log_lines: bool) -> None:
        self.bar, self.spec, self.chunks, self.log_lines = bar, spec, chunks, log_lines
        self.start, self.done, self.todo = time.perf_counter(), 0, todo

    def for_chunk(self, chunk: int, points: int) -> StageCallback:
        """The callback for one chunk (index ``chunk``) of ``points`` points."""

        def on_stage(stage: str, correct: int) -> None:
            self.bar.update(points)
            self.done += points
            number = self.spec.stages.index(stage) + 1
            text = (
                f"chunk {chunk + 1}/{self.chunks}, {stage} ({number}/{len(self.spec.stages)}): "
                f"{correct} of {points} points still correct"
            )
            self.bar.set_postfix_str(text)
            if self.bar.disable and self.log_lines:
                log.info("%s: %s%s", self.spec.name, text, self._time_left())

        return on_stage

    def _time_left(self) -> str:
        """', about T left' from the pace so far (hidden bars only: tqdm says it otherwise)."""
        if not self.done or self.done >= self.todo:
            return ""
        left = (time.perf_counter() - self.start) / self.done * (self.todo - self.done)
        return f", about {tqdm.format_interval(left)} left"
