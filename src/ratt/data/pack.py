"""``ratt data pack``: write a source (:mod:`ratt.data.pack_sources`) as a packed directory
(:mod:`ratt.data.packed`).

Atomic and resumable: every shard is written to a temporary file and renamed (through
:mod:`ratt.core.files`), and ``index.json`` is rewritten after each shard with
``"complete": false`` until the last one; a killed pack therefore leaves only whole shards,
an index that lists them and says it is unfinished (training refuses it), and stale
temporary files that the next run removes. Running the same command again checks the
shards already written (size and sha256) and continues after them.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ratt.core.files import remove_temp_files, write_bytes, write_json
from ratt.core.lock import DirectoryLock
from ratt.data.pack_sources import PackSource, SplitReader, pack_source
from ratt.data.packed import FORMAT, INDEX, VERSION, _check_file, read_index, sha256_of
from ratt.errors import UserError

log = logging.getLogger(__name__)
DEFAULT_SHARD_MB = 256


@dataclass(frozen=True)
class PackResult:
    """What a pack wrote: the directory, images per split, shards written now and kept."""

    out: Path
    counts: dict[str, int]
    written: int
    kept: int
    quantized: bool


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _fingerprint(src: str, source: PackSource, per_shard: int) -> dict:
    """What identifies a pack's input: the same command on the same file continues a pack."""
    path = Path(src)
    stat = path.stat() if path.exists() else None
    return {
        "source": str(path.resolve()) if stat else src,
        "source_size": stat.st_size if stat and path.is_file() else None,
        "source_mtime_ns": stat.st_mtime_ns if stat and path.is_file() else None,
        "shard_images": per_shard,
        "counts": {name: split.count for name, split in source.splits.items()},
    }


def _prepare(out: Path, fingerprint: dict) -> dict | None:
    """The earlier index of an unfinished pack of the same input to continue (None: start anew)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"--out {out}: not a directory (give a new or empty folder)")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / INDEX).exists():
        if any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise UserError(f"--out {out}: not empty and not a pack (give a new or empty folder)")
        return None
    index = read_index(out)
    if index.get("input") != fingerprint:
        raise UserError(f"--out {out}: holds a pack of another source or shard size (give a new folder)")
    return index


def _kept_shards(out: Path, entry: dict, shape: tuple[int, ...]) -> list[dict]:
    """The shards of an unfinished pack that are whole and match their sha256 (in order, up to
    the first bad one)."""
    kept = []
    for shard in entry.get("shards", []):
        try:
            images = _check_file(out, shard["images"], int(shard["count"]), shape, "uint8")
            labels = _check_file(out, shard["labels"], int(shard["count"]), (), "int64")
        except UserError:
            break
        if sha256_of(images) != shard["sha256"] or sha256_of(labels) != shard["labels_sha256"]:
            break
        kept.append(shard)
    return kept


def _write_shard(out: Path, split: str, number: int, images: np.ndarray, labels: np.ndarray) -> dict:
    """Write one shard's two files atomically; its index entry (with per-channel sums)."""
    name = f"{split}-{number:05d}"
    image_bytes, label_bytes = _npy_bytes(images), _npy_bytes(labels)
    write_bytes(out / f"{name}.npy", image_bytes)
    write_bytes(out / f"{name}.labels.npy", label_bytes)
    total, squares = _pixel_sums(images)
    return {
        "images": f"{name}.npy", "labels": f"{name}.labels.npy", "count": len(labels),
        "sha256": hashlib.sha256(image_bytes).hexdigest(),
        "labels_sha256": hashlib.sha256(label_bytes).hexdigest(),
        "sum": total, "sumsq": squares,
    }  # fmt: skip


def _pixel_sums(images: np.ndarray, chunk_bytes: int = 16 << 20) -> tuple[list[int], list[int]]:
    """Exact per-channel sums of the uint8 values and of their squares (integers; in chunks of
    about ``chunk_bytes``, so a shard never needs more than a few times that in memory)."""
    step = max(1, chunk_bytes // max(1, images[0].size))
    total = np.zeros(images.shape[1], dtype=np.int64)
    squares = np.zeros(images.shape[1], dtype=np.int64)
    for start in range(0, len(images), step):
        part = images[start : start + step].astype(np.int64)
        total += part.sum(axis=(0, 2, 3))
        squares += (part * part).sum(axis=(0, 2, 3))
    return [int(v) for v in total], [int(v) for v in squares]


def _channel_stats(shards: list[dict], pixels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) std in [0, 1] units from the shards' exact integer sums."""
    n = sum(int(s["count"]) for s in shards) * pixels
    total = np.array([sum(v) for v in zip(*(s["sum"] for s in shards), strict=True)], dtype=np.float64)
    squares = np.array([sum(v) for v in zip(*(s["sumsq"] for s in shards), strict=True)], dtype=np.float64)
    mean = total / 255.0 / n
    var = np.maximum(squares / 255.0**2 - n * mean * mean, 0.0) / max(n - 1, 1)
    return mean.tolist(), np.maximum(np.sqrt(var), 1e-6).tolist()


def _pack_split(out: Path, index: dict, split: str, reader: SplitReader, per_shard: int) -> tuple[int, int]:
    """Write split ``split`` shard by shard after the ones kept; (written, kept)."""
    entry = index["splits"].setdefault(split, {"count": reader.count, "shards": []})
    entry["shards"] = _kept_shards(out, entry, tuple(index["shape"]))
    kept = len(entry["shards"])
    start = sum(int(s["count"]) for s in entry["shards"])
    while start < reader.count:
        images, labels = reader.read(start, min(start + per_shard, reader.count))
        if labels.size and (labels.min() < 0 or labels.max() >= index["classes"]):
            raise UserError(f"{split}: label outside [0, {index['classes']}) near image {start}")
        entry["shards"].append(_write_shard(out, split, len(entry["shards"]), images, labels))
        start += len(labels)
        write_json(out / INDEX, index)  # complete: false until the last shard
        log.info("%s: %d/%d images packed", split, start, reader.count)
    return len(entry["shards"]) - kept, kept


def pack(
    src: str,
    out: str | Path,
    *,
    shard_mb: int = DEFAULT_SHARD_MB,
    image_size: int | None = None,
    channels: int | None = None,
    layout: str = "auto",
    root: str | Path | None = None,
) -> PackResult:
    """Pack ``src`` (an ``.npz``, an ImageFolder directory or a data set name) into ``out``.

    Args:
        shard_mb: about this many MiB of images per shard.
        image_size, channels: ImageFolder: resize to this square size / force 1 or 3 channels.
        layout: ``.npz``: the axis order (``auto``: from the shape).
        root: where a registered data set's files are.
    Raises:
        UserError: unreadable input, an ``out`` that holds something else, a bad label.
    """
    if shard_mb < 1:
        raise UserError("--shard-mb must be >= 1")
    source = pack_source(src, image_size=image_size, channels=channels, layout=layout,
                         root=Path(root) if root else None)  # fmt: skip
    if "train" not in source.splits or source.splits["train"].count == 0:
        raise UserError(f"ratt data pack {src}: no training images")
    out = Path(out)
    per_shard = max(1, (shard_mb << 20) // int(np.prod(source.shape)))
    fingerprint = _fingerprint(src, source, per_shard)
    earlier = _prepare(out, fingerprint)
    with DirectoryLock(out / ".lock", "ratt data pack"):
        remove_temp_files(out)
        index = earlier or {
            "format": FORMAT, "version": VERSION, "complete": False, "shape": list(source.shape),
            "classes": source.classes, "class_names": source.class_names, "input": fingerprint, "splits": {},
        }  # fmt: skip
        index["complete"] = False
        written = kept = 0
        for split, reader in source.splits.items():
            w, k = _pack_split(out, index, split, reader, per_shard)
            written, kept = written + w, kept + k
        pixels = source.shape[1] * source.shape[2]
        index["mean"], index["std"] = _channel_stats(index["splits"]["train"]["shards"], pixels)
        index["complete"] = True
        write_json(out / INDEX, index)
    counts = {name: reader.count for name, reader in source.splits.items()}
    return PackResult(out, counts, written, kept, source.quantized)
