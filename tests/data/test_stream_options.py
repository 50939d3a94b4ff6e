"""The streaming options: one definition of each choice (validation and ``ratt config`` read
it), range checks, the worker-count warning, the /dev/shm line, and the auto decision."""

from __future__ import annotations

import logging

import pytest
import torch

from ratt.cli import main
from ratt.config import DataConfig
from ratt.config.sections import CHOICES
from ratt.data.splits import GIB, streams
from ratt.errors import UserError
from ratt.train import feed
from ratt.train.feed import SHM_HINT, StreamFeed, worker_count


def test_stream_and_bad_image_choices_are_registered_once_and_validated(capsys):
    assert CHOICES["data.stream"] == ("auto", "true", "false")
    assert CHOICES["data.on_bad_image"] == ("fail", "skip")
    assert main(["train", "--out", "/tmp/never", "data.stream=maybe"]) == 2
    assert "data.stream must be auto, true or false" in capsys.readouterr().err
    assert main(["train", "--out", "/tmp/never", "data.on_bad_image=ignore"]) == 2
    assert "data.on_bad_image must be fail or skip" in capsys.readouterr().err
    for bad in ("data.workers=-1", "data.prefetch=0", "data.in_memory_max=-1", "data.resize=0"):
        said = bad.split("=")[0]
        assert main(["train", "--out", "/tmp/never", bad]) == 2
        assert said in capsys.readouterr().err


def test_a_yaml_boolean_is_a_stream_mode(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("data:\n  stream: true\n")
    assert main(["config", "--show", "--config", str(tmp_path / "c.yaml")]) == 0
    assert "stream: 'true'" in capsys.readouterr().out


def test_auto_streams_above_the_in_memory_limit():
    auto = DataConfig(in_memory_max=1.0)
    assert not streams(auto, GIB) and streams(auto, GIB + 1)
    assert streams(DataConfig(stream="true"), 10) and not streams(DataConfig(stream="false"), 10 * GIB)


def test_more_workers_than_cores_is_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(feed, "available_cores", lambda: 2)
    with caplog.at_level(logging.WARNING):
        assert worker_count(5, 1) == 5
    assert "more than the 2 cores" in caplog.text
    assert worker_count(None, 1) >= 0


def test_a_shared_memory_bus_error_is_one_line_naming_dev_shm(monkeypatch):
    class Broken:
        def __iter__(self):
            raise RuntimeError("DataLoader worker (pid 7) is killed by signal: Bus error. It is possible "
                               "that dataloader's workers are out of shared memory.")  # fmt: skip

    stream = StreamFeed(None, None, (0, 1), torch.device("cpu"), 2, 2)
    monkeypatch.setattr(stream, "_loader", lambda *a: Broken())
    with pytest.raises(UserError) as caught:
        next(stream.epoch(0, 0, (torch.arange(4), None)))
    assert "/dev/shm" in str(caught.value) and "\n" not in str(caught.value) and SHM_HINT == str(caught.value)
