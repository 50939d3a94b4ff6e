"""AutoAttack says where it is: one line (or bar step) per stage of each chunk, with the points
that stage left correct, so minutes of Square on a CPU no longer look like a hang."""

from __future__ import annotations

import io
import logging
import re

from tqdm import tqdm

from ratt.attacks import parse_attack
from ratt.eval import evaluate
from ratt.eval.progress import StageProgress
from tests.eval.test_chunks import AA_THREAT, SEED, mlp, small_chunks  # noqa: F401  (fixtures)

LINE = re.compile(r"aa: chunk (\d)/2, ([a-z-]+) \((\d)/4\): (\d+) of (\d+) points still correct")


def test_a_hidden_bar_logs_every_stage_of_every_chunk(mlp, digits_test, small_chunks, caplog):  # noqa: F811
    subset = digits_test.subset(range(30))  # chunks of 20 and 10 points
    with caplog.at_level(logging.INFO, logger="ratt.eval.progress"):
        result = evaluate(mlp, subset, ["aa"], AA_THREAT, seed=SEED, progress=True)
    lines = [LINE.search(r.getMessage()) for r in caplog.records if r.name == "ratt.eval.progress"]
    assert all(lines) and len(lines) == 8, [r.getMessage() for r in caplog.records]
    stages = parse_attack("aa").stages
    assert [(m[1], m[2]) for m in lines] == [(c, s) for c in "12" for s in stages]
    assert [int(m[5]) for m in lines] == [20] * 4 + [10] * 4
    left_after = [sum(int(m[4]) for m in lines if m[2] == s) for s in stages]  # both chunks
    assert left_after == result.stages["aa"][1:]  # what the per-stage counts of the result say
    assert "left" in caplog.records[-2].getMessage()  # the time left, from the pace so far


def test_a_shown_bar_moves_once_per_stage_and_names_it():
    stream = io.StringIO()
    spec = parse_attack("aa")
    with tqdm(total=2 * 100 * 4, file=stream, mininterval=0, disable=False) as bar:
        progress = StageProgress(bar, spec, chunks=2, todo=800, log_lines=True)
        on_stage = progress.for_chunk(1, 100)
        on_stage("apgd-ce", 71)
        on_stage("apgd-t", 60)
        assert bar.n == 200
    assert "chunk 2/2, apgd-t (2/4): 60 of 100 points still correct" in stream.getvalue()


def test_quiet_evaluation_logs_nothing(mlp, digits_test, small_chunks, caplog):  # noqa: F811
    with caplog.at_level(logging.INFO, logger="ratt.eval.progress"):
        evaluate(mlp, digits_test.subset(range(10)), ["aa"], AA_THREAT, seed=SEED, progress=False)
    assert not [r for r in caplog.records if r.name == "ratt.eval.progress"]
