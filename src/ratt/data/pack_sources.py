"""What ``ratt data pack`` reads: an ``.npz`` file, an ImageFolder tree or a registered data set,
each as splits that give any range of images as uint8 (n, C, H, W) without loading the rest.

- ``.npz`` with ratt's keys (``x_train``, ``y_train``, ``x_test``, ``y_test``, ``x_val``/``y_val``),
  DM-Improves-AT's ``image``/``label`` or ``x``/``y`` (one ``train`` split): arrays stored
  uncompressed (``np.savez``) are memory-mapped inside the zip file, so a 60 GB file packs in
  little memory; compressed ones are read whole. Float images in [0, 1] are rounded to uint8.
- a directory with ``train/`` (and ``test/``, ``val/``) in ImageFolder layout: each image
  decoded and resized to ``image_size`` square (default: the first image's size).
- a registered data set name (``cifar10``, ``digits``...): its train and test splits.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ratt.data.base import DATASETS
from ratt.data.custom import _class_folders, _image_files, _open, image_folder_format
from ratt.data.layout import image_layout
from ratt.data.packed import read_npy_header
from ratt.errors import UserError

NPZ_KEYS = (
    [("train", "x_train", "y_train"), ("test", "x_test", "y_test"), ("val", "x_val", "y_val")],
    [("train", "image", "label")],
    [("train", "x", "y")],
)


@dataclass
class SplitReader:
    """One split of a source: ``count`` images; ``read(start, stop)`` -> uint8 (n, C, H, W), int64 (n,)."""

    count: int
    read: Callable[[int, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class PackSource:
    """A source's splits, image shape (C, H, W), class count and names (folders only)."""

    splits: dict[str, SplitReader]
    shape: tuple[int, int, int]
    classes: int
    class_names: list[str] = field(default_factory=list)
    quantized: bool = False  # float pixels were rounded to uint8


def _member(archive: zipfile.ZipFile, path: Path, key: str) -> np.ndarray:
    """The array ``key`` of an ``.npz``: memory-mapped when stored uncompressed, else read."""
    info = archive.getinfo(f"{key}.npy")
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as handle:
            handle.seek(info.header_offset)
            local = handle.read(30)
            start = info.header_offset + 30 + int.from_bytes(local[26:28], "little")
            start += int.from_bytes(local[28:30], "little")
            handle.seek(start)
            shape, fortran, dtype = read_npy_header(handle)
            offset = handle.tell()
        if dtype.hasobject:
            raise UserError(f"{path}: {key} holds Python objects (would need unpickling)")
        order = "F" if fortran else "C"
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
    with archive.open(info) as handle:
        return np.lib.format.read_array(handle, allow_pickle=False)


def _as_uint8(x: np.ndarray, where: str) -> tuple[np.ndarray, bool]:
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x), False
    if not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{where} has dtype {x.dtype}; expected uint8 or float in [0, 1]")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise UserError(f"{where} has pixels outside [0, 1] (or NaN)")
    return np.round(x * 255.0).astype(np.uint8), True


def _array_split(x: np.ndarray, y: np.ndarray, order: str, where: str) -> SplitReader:
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{where}: labels {y.dtype} {y.shape}; expected ({len(x)},) integers")

    def read(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        chunk = x[start:stop]
        if order != "nchw":
            chunk = chunk[:, None] if order == "nhw" else chunk.transpose(0, 3, 1, 2)
        return _as_uint8(chunk, where)[0], np.asarray(y[start:stop], dtype=np.int64)

    return SplitReader(len(x), read)


def _shape_of(x: np.ndarray, order: str) -> tuple[int, int, int]:
    if order == "nhw":
        return (1, int(x.shape[1]), int(x.shape[2]))
    c, h, w = x.shape[1:] if order == "nchw" else (x.shape[3], x.shape[1], x.shape[2])
    return (int(c), int(h), int(w))


def npz_source(path: Path, layout: str = "auto", channels: int | None = None) -> PackSource:
    """An ``.npz`` file's splits (ratt's, DM-Improves-AT's ``image``/``label`` or ``x``/``y`` keys)."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    with archive:
        names = {n.removesuffix(".npy") for n in archive.namelist()}
        keys = next((k for k in NPZ_KEYS if {k[0][1], k[0][2]} <= names), None)
        if keys is None:
            raise UserError(
                f"{path}: no x_train/y_train, image/label or x/y arrays (it holds {', '.join(sorted(names))})"
            )
        splits, shapes, top, quantized = {}, set(), 0, False
        for split, x_key, y_key in keys:
            if x_key not in names:
                continue
            x, y = _member(archive, path, x_key), _member(archive, path, y_key)
            order = "nhw" if x.ndim == 3 else image_layout(x.shape, layout, channels, f"{path}: {x_key}")
            splits[split] = _array_split(x, y, order, f"{path}: {x_key}")
            shapes.add(_shape_of(x, order))
            quantized = quantized or bool(np.issubdtype(x.dtype, np.floating))
            top = max(top, int(np.max(y)) + 1 if len(y) else 0)
    if len(shapes) != 1:
        raise UserError(f"{path}: the splits' image shapes differ: {sorted(shapes)}")
    return PackSource(splits, shapes.pop(), top, quantized=quantized)


def folder_source(root: Path, image_size: int | None = None, channels: int | None = None) -> PackSource:
    """An ImageFolder tree's splits (train/, test/, val/), each image resized to a square."""
    classes, size, chans = image_folder_format(root, image_size, channels)
    splits = {}
    for split in ("train", "test", "val"):
        folder = root / split
        if not folder.is_dir():
            continue
        unknown = sorted({p.name for p in _class_folders(folder)} - set(classes))
        if unknown:
            raise UserError(f"{folder}: class folder {unknown[0]!r} is not in train/ (classes must match)")
        files = [(f, label) for label, name in enumerate(classes) for f in _image_files(folder / name)]
        splits[split] = _files_split(files, chans, size)
    return PackSource(splits, (chans, size, size), len(classes), classes)


def _files_split(files: list[tuple[Path, int]], channels: int, size: int) -> SplitReader:
    def read(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        chunk = files[start:stop]
        images = np.stack([_open(path, channels, size) for path, _ in chunk])
        return images, np.array([label for _, label in chunk], dtype=np.int64)

    return SplitReader(len(files), read)


def registered_source(name: str, root: Path | None) -> PackSource:
    """A registered data set's train and test splits (downloaded as ``ratt train`` would)."""
    source = DATASETS.get(name)
    if source.custom:
        raise UserError(f"ratt data pack {name}: give the file or folder itself as the source")
    (x_tr, y_tr), (x_te, y_te) = source.read(root, True)
    splits = {
        "train": _array_split(x_tr.numpy(), y_tr.numpy(), "nchw", f"{name} train"),
        "test": _array_split(x_te.numpy(), y_te.numpy(), "nchw", f"{name} test"),
    }
    quantized = x_tr.dtype.is_floating_point
    return PackSource(splits, tuple(source.info.shape), source.info.num_classes, quantized=quantized)


def pack_source(src: str, *, image_size: int | None, channels: int | None, layout: str, root: Path | None):
    """The :class:`PackSource` that ``src`` names: an ``.npz`` file, an ImageFolder directory
    or a registered data set."""
    path = Path(src)
    if path.is_file():
        return npz_source(path, layout, channels)
    if path.is_dir():
        return folder_source(path, image_size, channels)
    if src in DATASETS:
        return registered_source(src, root)
    raise UserError(f"ratt data pack {src}: not a file, a folder or a data set name (`ratt list datasets`)")
