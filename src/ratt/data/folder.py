"""Image folders at native resolution, decoded on demand (in the loader's workers).

Training images: torchvision's ``RandomResizedCrop(image_size)`` and a horizontal flip, their
random numbers drawn from the image's own seed (:func:`ratt.data.stream.sample_seeds`) inside
a forked RNG, so no global generator moves and any worker count gives the same batch.
Evaluation images: ``Resize(resize)`` and ``CenterCrop(image_size)``. Images stay uint8
(C, H, W); normalization is inside the model.

A file that cannot be decoded: ``data.on_bad_image=fail`` (one line naming it) or ``skip``
(left out of its batch, counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ratt.data.custom import _class_folders, _image_files
from ratt.errors import UserError

BAD_IMAGE_ERRORS = (OSError, ValueError, SyntaxError)  # PIL's UnidentifiedImageError is an OSError


class BadImage(UserError):
    """An image file that cannot be decoded (``data.on_bad_image=fail``)."""


def class_files(
    root: Path, split: str, classes: list[str] | None = None
) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(file, label)]) of ``root/split`` in ImageFolder layout; with ``classes``
    given, the split's class folders must be exactly those (one line otherwise)."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise UserError(f"data.root={root}: no {split}/ folder (the layout is ROOT/{split}/CLASS/IMAGE)")
    found = [p.name for p in _class_folders(folder)]
    if not found:
        raise UserError(f"{folder}: no class folders (expected one folder per class)")
    if classes is not None and found != classes:
        differ = sorted(set(found) ^ set(classes))
        raise UserError(
            f"{folder}: class folders differ from train/ ({len(found)} vs {len(classes)}; e.g. "
            f"{differ[0]!r}); every split needs the same class folders"
        )
    files = [(str(f), label) for label, name in enumerate(found) for f in _image_files(folder / name)]
    if not files:
        raise UserError(f"{folder}: no images found")
    return found, files


@dataclass
class FolderSource:
    """Image files decoded on demand; ``fetch(index, seeds)`` -> uint8 (b, C, H, W), labels.

    Attributes:
        files: image paths; labels: their classes.
        channels: 1 (grayscale) or 3 (RGB).
        image_size: the side of the square images returned.
        resize: evaluation images are resized so their short side is this, then center-cropped.
        on_bad_image: ``fail`` or ``skip``.
    """

    files: list[str]
    labels: np.ndarray
    channels: int
    image_size: int
    resize: int
    on_bad_image: str = "fail"
    skipped: int = 0  # files left out so far (in this process)
    _transforms: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    def _transform(self, train: bool):
        if train not in self._transforms:
            from torchvision import transforms as T

            if train:
                steps = [T.RandomResizedCrop(self.image_size, antialias=True), T.RandomHorizontalFlip()]
            else:
                steps = [T.Resize(self.resize, antialias=True), T.CenterCrop(self.image_size)]
            self._transforms[train] = T.Compose([*steps, T.PILToTensor()])
        return self._transforms[train]

    def _decode(self, path: str):
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            return image.convert("L" if self.channels == 1 else "RGB")

    def _one(self, i: int, seed: np.uint64 | None) -> Tensor | None:
        try:
            image = self._decode(self.files[i])
        except BAD_IMAGE_ERRORS as exc:
            if self.on_bad_image == "fail":
                raise BadImage(
                    f"{self.files[i]}: not a readable image ({type(exc).__name__}); "
                    "set data.on_bad_image=skip to leave such files out"
                ) from None
            return None
        if seed is None:
            return self._transform(False)(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) & ((1 << 63) - 1))
            return self._transform(True)(image)

    def fetch(self, index: np.ndarray, seeds: np.ndarray | None) -> tuple[Tensor, Tensor]:
        """Decoded images (training transform with ``seeds``, evaluation transform without),
        and their labels; skipped files are left out (``skipped`` counts them)."""
        images, labels = [], []
        for k, i in enumerate(np.asarray(index, dtype=np.int64)):
            image = self._one(int(i), None if seeds is None else seeds[k])
            if image is None:
                self.skipped += 1
                continue
            images.append(image)
            labels.append(int(self.labels[i]))
        if not images:
            size = (0, self.channels, self.image_size, self.image_size)
            return torch.empty(size, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
        return torch.stack(images), torch.tensor(labels, dtype=torch.long)
