"""Packed data (``ratt data pack`` / ``ratt data check`` / ``data=packed`` / ``data.extra=DIR``):
shards read back equal to their source, a killed pack is never mistaken for a whole one and
resumes, and every damaged shard is one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ratt.cli import main
from ratt.data import pack as packing
from ratt.data.pack import pack
from ratt.data.packed import INDEX, PackedSplit, check_packed
from ratt.errors import UserError
from tests.train.test_resume import _assert_same_run


@pytest.fixture
def dm_npz(tmp_path):
    """DM-Improves-AT's layout: ``image`` (N, H, W, C) uint8, ``label``."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 300)
    path = tmp_path / "dm.npz"
    np.savez(path, image=x, label=y)
    return path, x, y


def test_packed_shards_read_back_the_source_images_at_any_index(dm_npz, tmp_path):
    path, x, y = dm_npz
    result = pack(str(path), tmp_path / "out", shard_mb=1)  # 1 MiB: 5461 images a shard
    assert result.counts == {"train": 300}
    small = tmp_path / "small"
    pack(str(path), small, shard_mb=1)
    index = json.loads((small / INDEX).read_text())
    index_entries = index["splits"]["train"]["shards"]
    assert index["complete"] and index["shape"] == [3, 8, 8] and index["classes"] == int(y.max()) + 1
    split = PackedSplit.open(small, "train")
    where = np.array([299, 0, 17, 150, 150, 3])
    images, labels = split.fetch(where)
    np.testing.assert_array_equal(images, x.transpose(0, 3, 1, 2)[where])
    np.testing.assert_array_equal(labels, y[where])
    np.testing.assert_allclose(index["mean"], (x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(index["std"], (x / 255.0).std(axis=(0, 1, 2), ddof=1), rtol=1e-9)
    assert len(index_entries) == 1


def test_many_shards_and_ratt_keys(tmp_path):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (700, 3, 32, 32), dtype=np.uint8)  # 3 KiB each: 341 a 1 MiB shard
    x_test = rng.integers(0, 256, (50, 3, 32, 32), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=np.arange(700) % 10, x_test=x_test,
             y_test=np.arange(50) % 10)  # fmt: skip
    pack(str(tmp_path / "d.npz"), tmp_path / "p", shard_mb=1)
    train = PackedSplit.open(tmp_path / "p", "train")
    assert len(train.images) == 3 and len(train) == 700
    where = np.array([0, 340, 341, 682, 699, 5])  # across shard boundaries
    np.testing.assert_array_equal(train.fetch(where)[0], x_train[where])
    np.testing.assert_array_equal(PackedSplit.open(tmp_path / "p", "test").read_all()[0], x_test)


def test_an_image_folder_packs_to_the_images_ratt_reads_from_it(tmp_path):
    from ratt.data.custom import read_image_folder

    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (tmp_path / "f" / split / name).mkdir(parents=True)
            for k in range(3):
                Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(
                    tmp_path / "f" / split / name / f"{k}.png"
                )
    pack(str(tmp_path / "f"), tmp_path / "p")
    expected = read_image_folder(tmp_path / "f", "train", ["cat", "dog"], 6, 3)
    images, labels = PackedSplit.open(tmp_path / "p", "train").read_all()
    np.testing.assert_array_equal(images, expected.images.numpy())
    np.testing.assert_array_equal(labels, expected.labels.numpy())


def test_a_killed_pack_reads_as_unfinished_and_the_same_command_finishes_it(dm_npz, tmp_path, monkeypatch):
    path, x, _ = dm_npz
    x_big = np.concatenate([x] * 40)  # 12000 images of 192 bytes: 3 shards of 1 MiB
    np.savez(tmp_path / "big.npz", image=x_big, label=np.arange(len(x_big)) % 10)
    real, calls = packing._write_shard, []

    def dies_on_the_third(*args):
        if len(calls) == 2:
            (tmp_path / "out" / ".train-00002.npy.x.tmp").write_bytes(b"half a shard")  # a killed write
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(packing, "_write_shard", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        pack(str(tmp_path / "big.npz"), tmp_path / "out", shard_mb=1)
    with pytest.raises(UserError, match="unfinished pack"):
        check_packed(tmp_path / "out")
    monkeypatch.setattr(packing, "_write_shard", real)
    result = pack(str(tmp_path / "big.npz"), tmp_path / "out", shard_mb=1)
    assert (result.kept, result.written) == (2, 1)
    assert not list((tmp_path / "out").glob(".*.tmp"))
    fresh = tmp_path / "fresh"
    pack(str(tmp_path / "big.npz"), fresh, shard_mb=1)
    shards = lambda d: [s["sha256"] for s in json.loads((d / INDEX).read_text())["splits"]["train"]["shards"]]  # noqa: E731
    assert shards(tmp_path / "out") == shards(fresh)


def _damage(kind: str, root):
    shard = root / "train-00000.npy"
    if kind == "missing":
        shard.unlink()
    elif kind == "truncated":
        shard.write_bytes(shard.read_bytes()[:-7])
    elif kind == "altered":
        data = bytearray(shard.read_bytes())
        data[-1] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif kind == "past":
        index = json.loads((root / INDEX).read_text())
        index["splits"]["train"]["shards"][0]["count"] += 5
        index["splits"]["train"]["count"] += 5
        (root / INDEX).write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("kind", "said"),
    [("missing", "shard missing"), ("truncated", "truncated"), ("altered", "sha256 differs"),
     ("past", "points past the shard")],
)  # fmt: skip
def test_a_damaged_pack_is_one_line_and_exit_2_at_check_and_at_train(kind, said, dm_npz, tmp_path, capsys):
    root = tmp_path / "p"
    pack(str(dm_npz[0]), root)
    _damage(kind, root)
    assert main(["data", "check", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and "\n" not in err
    run = tmp_path / "run"
    code = main(["train", "--quiet", "--out", str(run), "data=digits", f"data.extra={root}", "epochs=1"])
    assert code == 2 and said in capsys.readouterr().err
    assert not run.exists()  # refused before any work
    code = main(["train", "--quiet", "--out", str(run), "data=packed", f"data.root={root}", "epochs=1"])
    assert code == 2 and said in capsys.readouterr().err


def test_packed_extra_data_trains_exactly_as_the_same_npz(tmp_path):
    from ratt import data

    ds = data.load("digits", "train")
    x = (ds.images.numpy()[:, 0, :, ::-1] * 255).round().astype(np.uint8)
    np.savez(tmp_path / "extra.npz", x=x, y=ds.labels.numpy())
    pack(str(tmp_path / "extra.npz"), tmp_path / "packed")
    args = ["epochs=1", "train_limit=128", "batch_size=32", "steps=1", "val_attack_steps=1",
            "test_attacks=clean", "threads=1", "deterministic=true", "--quiet"]  # fmt: skip
    for name, extra in (("npz", tmp_path / "extra.npz"), ("packed", tmp_path / "packed")):
        assert main(["train", "--out", str(tmp_path / name), *args, f"data.extra={extra}"]) == 0
    _assert_same_run(tmp_path / "npz", tmp_path / "packed")
    streamed = ["data.stream=true", "data.augment=crop"]  # the .npz in memory, the shards mapped
    for name, extra, workers in (("npz_s", tmp_path / "extra.npz", 0), ("packed_s", tmp_path / "packed", 2)):
        argv = ["train", "--out", str(tmp_path / name), *args, *streamed, f"data.workers={workers}"]
        assert main([*argv, f"data.extra={extra}"]) == 0
    _assert_same_run(tmp_path / "npz_s", tmp_path / "packed_s")
