"""A lazy split (image files, packed shards) is evaluated batch by batch, never held whole, and
gives, point by point, the numbers its in-memory copy gives; the final test of a streamed run
and ``ratt eval`` of it read the test split that way."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ratt import data
from ratt.attacks import ThreatModel
from ratt.config import DataConfig
from ratt.data import stream
from ratt.data.base import DatasetInfo
from ratt.data.folder import FolderSource
from ratt.data.pack import pack
from ratt.data.packed import PackedSplit
from ratt.data.stream import ArraySource, LazyDataset
from ratt.eval import evaluate
from ratt.models import create_model
from tests.data.test_folder_stream import make_tree

ATTACKS = ["clean", "pgd3", "cw3"]
THREAT = ThreatModel(eps=8 / 255, step=2 / 255, norm="linf")


def _model(info: DatasetInfo) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("smallcnn", info.num_classes, info.shape).eval()


def _folder(tmp_path, **kw) -> LazyDataset:
    make_tree(tmp_path / "inet", per_class=(1, 7))
    section = DataConfig(name="imagenet", root=str(tmp_path / "inet"), image_size=16, resize=18, **kw)
    return data.load_for(section, "test", lazy=True)


def _packed(tmp_path) -> LazyDataset:
    rng = np.random.default_rng(1)
    npz = tmp_path / "own.npz"
    images = rng.integers(0, 256, (230, 12, 12, 3), dtype=np.uint8)
    np.savez(npz, image=images, label=rng.integers(0, 10, 230))
    pack(str(npz), tmp_path / "packed", shard_mb=1)
    info = DatasetInfo("packed", (3, 12, 12), 10, 8 / 255, 2 / 255, 10, "none", (0.5,) * 3, (0.25,) * 3, 0)
    return LazyDataset(ArraySource(arrays=PackedSplit.open(tmp_path / "packed", "train")), info)


def _same(lazy: LazyDataset, batch_size: int) -> None:
    model = _model(lazy.info)
    held = lazy.in_memory()
    streamed = evaluate(model, lazy, ATTACKS, THREAT, batch_size=batch_size, seed=3)
    reference = evaluate(model, held, ATTACKS, THREAT, batch_size=batch_size, seed=3)
    assert streamed.n == reference.n == len(lazy)
    for name in ATTACKS:
        assert torch.equal(streamed.correct[name], reference.correct[name]), name
    assert streamed.robust == reference.robust


@pytest.mark.parametrize("workers", [0, 2])
def test_a_streamed_folder_gives_the_in_memory_numbers_point_by_point(tmp_path, monkeypatch, workers):
    lazy = _folder(tmp_path)
    monkeypatch.setattr(stream, "default_workers", lambda local_world=1: workers)
    _same(lazy, batch_size=5)  # 28 points: batches straddle the class folders


def test_a_streamed_packed_split_gives_the_in_memory_numbers_point_by_point(tmp_path):
    _same(_packed(tmp_path), batch_size=64)  # 230 points: three chunks of 100, the last short


def test_a_streamed_evaluation_never_reads_the_split_whole(tmp_path, monkeypatch):
    lazy = _folder(tmp_path)
    model = _model(lazy.info)
    expected = evaluate(model, lazy.in_memory(), ATTACKS, THREAT, batch_size=4)
    monkeypatch.setattr(stream, "default_workers", lambda local_world=1: 0)  # reads in this process
    sizes: list[int] = []
    fetch = FolderSource.fetch
    counted = lambda self, index, seeds: sizes.append(len(index)) or fetch(self, index, seeds)  # noqa: E731
    monkeypatch.setattr(FolderSource, "fetch", counted)
    monkeypatch.setattr(LazyDataset, "in_memory", lambda self, chunk=256: pytest.fail("read whole"))
    result = evaluate(model, lazy, ATTACKS, THREAT, batch_size=4)
    assert max(sizes) == 4 and sum(sizes) == len(ATTACKS) * len(lazy)  # each attack reads it once
    assert result.accuracy == expected.accuracy


def test_a_folder_that_skips_bad_images_is_read_once_and_evaluated_without_them(tmp_path):
    lazy = _folder(tmp_path, on_bad_image="skip")
    bad = sorted((tmp_path / "inet" / "val").rglob("*.JPEG"))[0]
    bad.write_bytes(bad.read_bytes()[:40])  # truncated: left out
    model = _model(lazy.info)
    result = evaluate(model, lazy, ["clean"], THREAT)
    held = lazy.in_memory()
    assert result.n == len(held) == len(lazy) - 1
    assert torch.equal(result.correct["clean"], evaluate(model, held, ["clean"], THREAT).correct["clean"])


def test_evaluation_keeps_a_split_lazy_only_when_it_cannot_skip_images(tmp_path):
    """One rule for every evaluation (the trainer's, ``ratt eval``'s, :class:`EvalPlan`'s)."""
    lazy = _folder(tmp_path / "fail")
    assert stream.for_evaluation(lazy) is lazy
    skipping = _folder(tmp_path / "skip", on_bad_image="skip")
    read = stream.for_evaluation(skipping)
    assert not isinstance(read, LazyDataset) and len(read) == len(skipping)
    assert torch.equal(read.images, skipping.in_memory().images)
    assert stream.for_evaluation(read) is read  # already in memory: as it is


def test_a_streamed_runs_final_test_and_eval_read_the_test_split_in_batches(tmp_path, monkeypatch):
    """The final test and ``ratt eval`` of a streamed-folder run never read the test split
    (val/) whole; only the gradient check's first points (a subset) are held."""
    from ratt.cli import main

    make_tree(tmp_path / "inet")
    run = tmp_path / "run"
    whole_test_reads: list[int] = []
    in_memory = LazyDataset.in_memory

    def recorded(self, chunk=256):
        if self.positions is None and "/val/" in self.source.files[0]:
            whole_test_reads.append(len(self))
        return in_memory(self, chunk)

    monkeypatch.setattr(LazyDataset, "in_memory", recorded)
    args = [
        "data=imagenet", f"data.root={tmp_path / 'inet'}", "data.image_size=16", "data.resize=18",
        "data.stream=true", "data.workers=0", "data.val_size=3", "model=smallcnn", "epochs=1",
        "batch_size=4", "threads=1", "device=cpu", "method=natural", "test_attacks=clean,pgd2",
    ]  # fmt: skip
    assert main(["train", "--quiet", "--out", str(run), *args]) == 0
    summary = json.loads((run / "summary.json").read_text())["test"]
    assert summary["n"] == 6 and whole_test_reads == []
    assert main(["eval", str(run), "--attacks", "clean,pgd2", "--quiet"]) == 0
    assert whole_test_reads == []
    assert json.loads((run / "eval.json").read_text())["accuracy"] == summary["accuracy"]
