"""Small things a new user tripped on: the Square flag has a threshold and prints its count,
counts are said in the singular for one, and the help text of every key is whole."""

from __future__ import annotations

import dataclasses
import inspect
import re

from ratt.config import describe_keys
from ratt.config.sections import TrainConfig
from ratt.eval import EvalResult
from ratt.eval.flags import result_flags


def _square(result):
    return next(f for f in result_flags(result) if f.name == "black-box-beats-white-box")


def test_one_point_broken_by_square_of_300_is_said_but_not_flagged():
    one = _square(EvalResult({}, {}, 0.5, 300, stages={"aa": [200, 160, 155, 155, 154]}))
    assert one.fired is False and "Square broke 1 point of 300" in one.detail
    many = _square(EvalResult({}, {}, 0.5, 300, stages={"aa": [200, 160, 155, 155, 140]}))
    assert many.fired is True and "15 points of 300" in many.detail


def test_every_config_key_has_its_whole_meaning_in_the_help():
    lines = describe_keys().splitlines()
    for section in dataclasses.fields(TrainConfig):
        doc = inspect.getdoc(section.default_factory) or ""
        for field in dataclasses.fields(section.default_factory()):
            key = f"{section.name}.{field.name}"
            line = next(li for li in lines if li.strip().startswith(f"{key} ="))
            match = re.search(
                rf"^    [a-z_, ]*\b{field.name}\b[a-z_, ]*: (.*?)(?=^    \S|\Z)", doc, re.M | re.S
            )
            if match is None:
                continue
            last_word = (
                re.sub(r":\w+:`([^`]*)`", r"\1", match.group(1)).split()[-1].replace("``", "").rstrip(".")
            )
            assert last_word in line, f"{key}: its help is cut before {last_word!r}"


def test_counts_of_one_are_singular():
    from ratt.core.table import plural

    assert [plural(1, "epoch"), plural(2, "epoch"), plural(1, "process", "processes")] == [
        "1 epoch", "2 epochs", "1 process",
    ]  # fmt: skip
