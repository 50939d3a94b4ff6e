"""Your own data: an ImageFolder tree or an ``.npz`` file, checked and held in memory as uint8.

- ``imagefolder``: ``data.root`` holds ``train/`` and ``test/`` (``val/`` optional), each in
  torchvision's ImageFolder layout (one folder per class, the same class folders in every
  split); images are resized to ``data.image_size`` (default: the first training image's
  size, square) and kept as uint8; channels come from the files (grayscale -> 1, anything
  else -> 3) unless ``data.channels`` forces 1 or 3.
- ``npz``: ``data.root`` is a file with ``x_train``, ``y_train``, ``x_test``, ``y_test``
  (``x_val``/``y_val`` optional): images uint8 or float32 in [0, 1], (N, H, W), (N, C, H, W)
  or (N, H, W, C), the axis order read from the shape (:mod:`ratt.data.layout`) or said with
  ``data.layout``; integer labels in [0, classes).

Every problem — a missing split, an empty class folder, a corrupt image, NaN pixels, a label
out of range, shapes that do not agree — is one ``UserError`` naming the file.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ratt.data.layout import image_layout
from ratt.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass
class Split:
    """One split in memory: images (N, C, H, W) uint8 or float32 in [0, 1], labels (N,) int64;
    ``layout``: the axis order of the file's array (``nchw``, ``nhwc``, ``nhw``; None: not an array)."""

    images: Tensor
    labels: Tensor
    layout: str | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _open(path: Path, channels: int, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def image_folder_format(
    root: Path, image_size: int | None, channels: int | None
) -> tuple[list[str], int, int]:
    """(class names, image size, channels) of an ImageFolder tree, from its ``train/`` split."""
    from PIL import Image

    train = Path(root) / "train"
    if not train.is_dir():
        raise UserError(
            f"data.root={root}: no train/ folder (the ImageFolder layout: ROOT/train/CLASS/*.png)"
        )
    classes = [p.name for p in _class_folders(train)]
    if not classes:
        raise UserError(f"{train}: no class folders (expected one folder per class)")
    first = next((f for c in _class_folders(train) for f in _image_files(c)), None)
    if first is None:
        raise UserError(f"{train}: no images found")
    if image_size is None or channels is None:
        try:
            with Image.open(first) as image:
                width, height = image.size
                mode = image.mode
        except OSError as exc:
            raise UserError(f"{first}: not a readable image ({exc})") from None
        image_size = image_size or max(width, height)
        channels = channels or (1 if mode in ("1", "L", "I", "I;16", "F") else 3)
    return classes, image_size, channels


def read_image_folder(root: Path, split: str, classes: list[str], image_size: int, channels: int) -> Split:
    """One split of an ImageFolder tree, every image resized to ``image_size`` square."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise UserError(f"data.root={root}: no {split}/ folder")
    found = [p.name for p in _class_folders(folder)]
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise UserError(f"{folder}: class folder {unknown[0]!r} is not in train/ (classes must match)")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = _image_files(folder / name) if (folder / name).is_dir() else []
        if not files and split == "train":
            raise UserError(f"{folder / name}: empty class folder (no images)")
        for path in files:
            images.append(_open(path, channels, image_size))
            labels.append(label)
    if not images:
        raise UserError(f"{folder}: no images found")
    return Split(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long))


def _to_nchw(
    x: np.ndarray, where: str, layout: str = "auto", channels: int | None = None
) -> tuple[Tensor, str]:
    """(N, C, H, W) images of an array and the axis order it was read in (``nhw`` for (N, H, W));
    the order comes from the shape (:func:`ratt.data.layout.image_layout`), never the dtype."""
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{where} has dtype {x.dtype}; expected uint8 or float32")
    if x.ndim == 3:
        order, x = "nhw", x[:, None]
        if channels not in (None, 1):
            raise UserError(
                f"{where} has shape {x.shape[:1] + x.shape[2:]} (one channel), not data.channels={channels}"
            )
    else:
        order = image_layout(x.shape, layout, channels, where)
        if order == "nhwc":
            x = x.transpose(0, 3, 1, 2)
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x)), order
    if not np.isfinite(x).all():
        raise UserError(f"{where} has NaN or infinite pixels")
    if x.min() < 0 or x.max() > 1:
        raise UserError(f"{where} has pixels outside [0, 1] (min {x.min():g}, max {x.max():g})")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), order


def _nchw_shape(shape: tuple[int, ...], order: str) -> tuple[int, ...]:
    """(C, H, W) of one image of a 4-D array of ``shape`` read in ``order``."""
    return tuple(shape[1:]) if order == "nchw" else (shape[3], shape[1], shape[2])


def _labels(y: np.ndarray, path: Path, key: str, n: int) -> Tensor:
    if y.ndim != 1 or len(y) != n:
        raise UserError(f"{path}: {key} has shape {y.shape}; expected ({n},), one label per image")
    if not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: {key} has dtype {y.dtype}; labels must be integers")
    return torch.from_numpy(y.astype(np.int64))


def read_npz_file(
    path: Path,
    names: tuple[str, ...] = ("train", "test", "val"),
    *,
    layout: str = "auto",
    channels: int | None = None,
) -> dict[str, Split]:
    """The splits of an ``.npz`` file (``x_SPLIT``, ``y_SPLIT``); train and test are required,
    and every split must have the same image shape. ``layout`` (``auto``, ``nchw``, ``nhwc``)
    and ``channels`` say how a 4-D array's axes are read (:func:`ratt.data.layout.image_layout`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.root={path}: not a file (data=npz wants data.root=FILE.npz)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    out: dict[str, Split] = {}
    with archive:
        for split in names:
            x_key, y_key = f"x_{split}", f"y_{split}"
            if x_key not in archive.files:
                if split in ("train", "test"):
                    raise UserError(f"{path}: no {x_key} (it holds {', '.join(archive.files)})")
                continue
            if y_key not in archive.files:
                raise UserError(f"{path}: {x_key} without {y_key}")
            try:
                x, y = archive[x_key], archive[y_key]
            except ValueError as exc:  # an object array: would need unpickling
                raise UserError(
                    f"{path}: {x_key}/{y_key} cannot be read without unpickling ({exc})"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # truncated, damaged
                raise UserError(f"{path}: {x_key}/{y_key} is damaged or truncated ({exc})") from None
            images, order = _to_nchw(x, f"{path}: {x_key}", layout, channels)
            out[split] = Split(images, _labels(y, path, y_key, len(images)), order)
    _check_not_empty(out, path)
    shapes = {tuple(s.images.shape[1:]) for s in out.values()}
    if len(shapes) > 1:
        raise UserError(f"{path}: the splits' image shapes differ: {sorted(shapes)}")
    return out


def _check_not_empty(splits: dict[str, Split], path: Path) -> None:
    """Train and test hold images, and no image has a zero-size side (one line otherwise)."""
    for name, split in splits.items():
        if name in ("train", "test") and len(split.images) == 0:
            raise UserError(f"{path}: x_{name} holds no images; the {name} split must not be empty")
        if 0 in split.images.shape[1:]:
            raise UserError(f"{path}: x_{name} has zero-size images ({list(split.images.shape[1:])})")


def check_labels(splits: dict[str, Split], classes: int, source: str) -> None:
    """Every label in [0, classes); ``UserError`` naming the split otherwise."""
    for name, split in splits.items():
        if len(split.labels) and (split.labels.min() < 0 or split.labels.max() >= classes):
            bad = int(split.labels.max() if split.labels.max() >= classes else split.labels.min())
            raise UserError(f"{source}: y_{name} has label {bad}, outside [0, {classes})")


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) images in [0, 1] units (uint8 divided by 255),
    computed in float64 over every pixel."""
    x = images.double() / 255.0 if images.dtype == torch.uint8 else images.double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def read_extra(path: Path, shape: tuple[int, ...], classes: int, layout: str = "auto") -> Split:
    """Extra training images from an ``.npz`` file with ``x`` and ``y`` (the layouts of
    :func:`read_npz_file`; ``auto`` takes the channel count from the training images'
    ``shape``), checked against that ``shape`` and ``classes``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.extra={path}: not a file (an .npz with x and y)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files or "y" not in archive.files:
                raise UserError(
                    f"{path}: data.extra needs arrays x and y (it holds {', '.join(archive.files)})"
                )
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npz file without pickles ({exc})") from None
    if layout == "auto" and x.ndim == 4:  # the order that gives the training images' shape
        fits = [o for o in ("nchw", "nhwc") if _nchw_shape(x.shape, o) == tuple(shape)]
        layout = fits[0] if len(fits) == 1 else layout
    images, order = _to_nchw(x, f"{path}: x", layout, shape[0])
    split = Split(images, _labels(y, path, "y", len(images)), order)
    if tuple(images.shape[1:]) != tuple(shape):
        raise UserError(
            f"{path}: extra images are {list(images.shape[1:])}, the training images {list(shape)}"
        )
    check_labels({"extra": split}, classes, str(path))
    return split
