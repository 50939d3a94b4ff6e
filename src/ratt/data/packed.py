"""Packed data: uint8 ``.npy`` shards and an ``index.json``, read memory-mapped.

A packed directory (written by ``ratt data pack``, :mod:`ratt.data.pack`) holds, per split
(``train``, ``test``, ``val``), shards ``SPLIT-00000.npy`` of images (n, C, H, W) uint8 and
``SPLIT-00000.labels.npy`` of labels (n,) int64, and one ``index.json``::

    {"format": "ratt-packed", "version": 1, "complete": true, "shape": [C, H, W],
     "classes": K, "mean": [...], "std": [...], "splits": {"train": {"count": N, "shards": [
        {"images": "train-00000.npy", "labels": "train-00000.labels.npy", "count": n,
         "sha256": "...", "labels_sha256": "..."}, ...]}, ...}}

Reading maps every shard with ``np.load(mmap_mode="r")``: one copy in the page cache, shared by
every worker and rank; :meth:`PackedSplit.fetch` gathers any images by index. A missing,
truncated or altered shard, an index that counts more images than a shard holds, or an
unfinished pack is one ``UserError`` (:func:`check_packed`, run before any training).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ratt.errors import UserError

FORMAT, VERSION = "ratt-packed", 1
INDEX = "index.json"
HASH_CHUNK = 16 << 20


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 16 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_packed(root: str | Path | None) -> bool:
    """Whether ``root`` is a directory holding a packed ``index.json``."""
    return root is not None and (Path(root) / INDEX).is_file()


def read_index(root: str | Path) -> dict:
    """The parsed ``index.json`` of a packed directory (one ``UserError`` if absent or malformed)."""
    path = Path(root) / INDEX
    if not path.is_file():
        raise UserError(f"{root}: no {INDEX} (not a packed directory; make one with `ratt data pack`)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable index ({type(exc).__name__}: {exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("version") != VERSION:
        raise UserError(f"{path}: not a {FORMAT} v{VERSION} index (repack with `ratt data pack`)")
    for key in ("shape", "classes", "splits"):
        if key not in index:
            raise UserError(f"{path}: the index has no {key!r}")
    return index


def read_npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of the ``.npy`` array whose magic starts at ``handle``."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset in bytes) from an ``.npy`` file's header, without reading data."""
    try:
        with open(path, "rb") as handle:
            shape, fortran, dtype = read_npy_header(handle)
            offset = handle.tell()
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npy shard ({type(exc).__name__}: {exc})") from None
    if fortran:
        raise UserError(f"{path}: a Fortran-ordered array; packed shards are C-ordered (repack it)")
    return tuple(shape), dtype, offset


def _check_file(root: Path, name: str, count: int, shape: tuple[int, ...], dtype: str) -> Path:
    """The shard file ``name``: present, a regular file inside ``root``, whole, as described."""
    path = root / name
    if Path(name).name != name or not path.is_file():
        raise UserError(f"{path}: shard missing (rerun `ratt data pack` to finish or repair it)")
    held, stored, offset = npy_layout(path)
    if stored != np.dtype(dtype) or tuple(held[1:]) != shape:
        said = [count, *shape]
        raise UserError(f"{path}: holds {stored} {list(held)}, the index says {dtype} {said}")
    if held[0] < count:
        raise UserError(f"{path}: the index points past the shard ({count} images listed, {held[0]} held)")
    expected = offset + int(np.prod(held)) * stored.itemsize
    size = path.stat().st_size
    if size != expected:
        raise UserError(f"{path}: truncated or padded ({size} bytes, the header needs {expected})")
    return path


def check_packed(root: str | Path, *, hashes: bool = True) -> dict:
    """Check a packed directory: complete, every shard present, whole and (``hashes``) with the
    sha256 its index records. Returns the index; ``UserError`` (one line) on the first problem."""
    root = Path(root)
    index = read_index(root)
    if not index.get("complete", False):
        raise UserError(f"{root}: an unfinished pack (rerun the same `ratt data pack` to finish it)")
    shape = tuple(int(v) for v in index["shape"])
    for split, entry in index["splits"].items():
        total = 0
        for shard in entry["shards"]:
            count = int(shard["count"])
            images = _check_file(root, shard["images"], count, shape, "uint8")
            labels = _check_file(root, shard["labels"], count, (), "int64")
            if hashes:
                for path, key in ((images, "sha256"), (labels, "labels_sha256")):
                    if sha256_of(path) != shard[key]:
                        raise UserError(f"{path}: sha256 differs from the index (a damaged or altered shard)")
            total += count
        if total != int(entry["count"]):
            said = entry["count"]
            raise UserError(f"{root / INDEX}: split {split} counts {said} images, its shards {total}")
    return index


@dataclass
class PackedSplit:
    """One split of a packed directory, memory-mapped; ``fetch(index)`` gathers images by index.

    Attributes:
        root: the packed directory.
        shape: (C, H, W) of one image.
        images, labels: the shards' memory maps (uint8 (n, C, H, W), int64 (n,)).
        starts: the first global index of each shard, and the total count last.
    """

    root: Path
    shape: tuple[int, int, int]
    images: list[np.ndarray]
    labels: list[np.ndarray]
    starts: np.ndarray

    @classmethod
    def open(cls, root: str | Path, split: str, index: dict | None = None) -> PackedSplit:
        """Map split ``split`` of ``root`` (its index read and checked when ``index`` is None)."""
        root = Path(root)
        index = index if index is not None else check_packed(root)
        if split not in index["splits"]:
            raise UserError(f"{root}: no {split} split (it holds {', '.join(index['splits'])})")
        shards = index["splits"][split]["shards"]
        counts = [int(s["count"]) for s in shards]
        images = [np.load(root / s["images"], mmap_mode="r")[:n] for s, n in zip(shards, counts, strict=True)]
        labels = [np.load(root / s["labels"], mmap_mode="r")[:n] for s, n in zip(shards, counts, strict=True)]
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(root, tuple(int(v) for v in index["shape"]), images, labels, starts)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def fetch(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images (b, C, H, W) uint8 and labels (b,) int64 at global positions ``index`` (b,)."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} packed images")
        shard = np.searchsorted(self.starts, index, side="right") - 1
        images = np.empty((len(index), *self.shape), dtype=np.uint8)
        labels = np.empty(len(index), dtype=np.int64)
        for s in np.unique(shard):
            where = np.nonzero(shard == s)[0]
            local = index[where] - self.starts[s]
            images[where] = self.images[s][local]
            labels[where] = self.labels[s][local]
        return images, labels

    def all_labels(self) -> np.ndarray:
        """Every label (n,) int64, in order, without reading an image."""
        return np.concatenate(self.labels).astype(np.int64)

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole split in memory (the in-memory path for small sets)."""
        return np.concatenate(self.images), np.concatenate(self.labels).astype(np.int64)


def decoded_bytes(index: dict, split: str = "train") -> int:
    """Bytes split ``split`` of a packed index takes decoded (uint8)."""
    return int(index["splits"][split]["count"]) * int(np.prod(index["shape"]))
