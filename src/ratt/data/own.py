"""Your own data as registered datasets: ``data=imagefolder`` and ``data=npz`` with ``data.root``.

Their description comes from the files (:mod:`ratt.data.custom` reads and checks them): the
shape and the classes, the per-channel normalization statistics of the training split, and
the training threat model ``attack.eps/step/steps`` defaulting to 8/255, 2/255, 10 (said once
in the log). No augmentation unless ``data.augment`` asks for one; a ``val`` split of the
files is used as the validation split, else ``data.val_size`` training images (default: a
tenth, at most 1000) are held out.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from ratt.data.base import DATASETS, DatasetInfo, DatasetSource
from ratt.data.custom import (
    Split,
    channel_stats,
    check_labels,
    image_folder_format,
    read_image_folder,
    read_npz_file,
)
from ratt.errors import UserError

log = logging.getLogger(__name__)

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10
OWN = ("imagefolder", "npz")
LAZY_SOURCES = ("packed", "imagenet")  # read by ratt.data.splits, never whole


def _placeholder(name: str) -> DatasetInfo:
    return DatasetInfo(name, (3, 32, 32), 10, EPS, STEP, STEPS, "none", (0.0,) * 3, (1.0,) * 3, 0)


def _no_read(root, download=True):
    raise UserError("internal: data.own sources are read through ratt.data.own.own_data")


for _name in OWN + LAZY_SOURCES:
    DATASETS.register(_name)(DatasetSource(_placeholder(_name), _no_read, custom=True))


def _read(
    name: str, root: Path, image_size: int | None, channels: int | None, layout: str
) -> dict[str, Split]:
    if name == "imagefolder":
        classes, size, chans = image_folder_format(root, image_size, channels)
        splits = {s: read_image_folder(root, s, classes, size, chans) for s in ("train", "test")}
        if (root / "val").is_dir():
            splits["val"] = read_image_folder(root, "val", classes, size, chans)
        return splits
    splits = read_npz_file(root, layout=layout, channels=channels)
    shape = tuple(splits["train"].images.shape[1:])
    if image_size is not None and shape[1:] != (image_size, image_size):
        raise UserError(
            f"{root}: images are {shape[1]}x{shape[2]}; data.image_size applies to imagefolder only"
        )
    return splits


@functools.lru_cache(maxsize=4)
def own_data(
    name: str,
    root: str | Path | None,
    image_size: int | None = None,
    channels: int | None = None,
    layout: str = "auto",
) -> tuple[dict[str, Split], DatasetInfo]:
    """The splits of your own data set and its description (cached: the files are read once);
    ``layout``: the axis order of an ``.npz`` file's images (``auto``: from the shape)."""
    if not root:
        what = "a folder with train/ and test/" if name == "imagefolder" else "an .npz file"
        raise UserError(f"data={name} needs data.root ({what})")
    splits = _read(name, Path(root), image_size, channels, layout)
    train = splits["train"]
    classes = int(train.labels.max()) + 1 if len(train.labels) else 0
    if name == "imagefolder":
        classes = len(image_folder_format(Path(root), image_size, channels)[0])
    if classes < 2:
        raise UserError(f"{root}: the training split has fewer than 2 classes")
    check_labels(splits, classes, str(root))
    mean, std = channel_stats(train.images)
    shape = tuple(int(v) for v in train.images.shape[1:])
    val_size = 0 if "val" in splits else min(1000, len(train.labels) // 10)
    order = train.layout if name == "npz" else None
    read_as = f" (read as {order.upper()}, data.layout={layout})" if order else ""
    log.info(
        "%s %s: %d classes, %s images%s; training threat model defaults to eps 8/255, step 2/255, "
        "10 steps (set attack.eps/step/steps)", name, root, classes, "x".join(map(str, shape)), read_as,
    )  # fmt: skip
    return splits, DatasetInfo(name, shape, classes, EPS, STEP, STEPS, "none", mean, std, val_size, order)
