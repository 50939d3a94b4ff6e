"""Image folders at native resolution, decoded on demand (in the loader's workers).

Training images: torchvision's ``RandomResizedCrop(image_size)`` and a horizontal flip, their
random numbers drawn from the image's own seed (:func:`ratt.data.stream.sample_seeds`) inside
a forked RNG, so no global generator moves and any worker count gives the same batch.
Evaluation images: ``Resize(resize)`` and ``CenterCrop(image_size)``. Images stay uint8
(C, H, W); normalization is inside the model.

Decoders (``data.decoder``): ``pil`` opens the file with PIL and transforms the PIL image;
``torchvision`` decodes JPEG, PNG, GIF and WebP with ``torchvision.io.decode_image`` (other
formats, e.g. BMP or TIFF, with PIL) into a uint8 tensor and applies the same transforms
(``torchvision.transforms.v2``) to the tensor, with the same random numbers: the same crop box
and flip as ``pil``.

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
TENSOR_BAD_IMAGE_ERRORS = (*BAD_IMAGE_ERRORS, RuntimeError)  # torchvision.io's decoders raise RuntimeError
TORCHVISION_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")  # JPEG, PNG, GIF


def torchvision_reads(head: bytes) -> bool:
    """Whether ``torchvision.io.decode_image`` decodes a file starting with ``head`` (JPEG,
    PNG, GIF, WebP: the formats it reads, told by their first bytes as it tells them)."""
    return head.startswith(TORCHVISION_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


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
        decoder: ``pil`` or ``torchvision`` (``data.decoder``; a plain string, so the source
            pickles into the loader's workers as it is).
    """

    files: list[str]
    labels: np.ndarray
    channels: int
    image_size: int
    resize: int
    on_bad_image: str = "fail"
    decoder: str = "pil"
    skipped: int = 0  # files left out so far (in this process)
    _transforms: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    def all_labels(self) -> np.ndarray:
        """Every file's class (n,) int64, without decoding an image."""
        return np.asarray(self.labels, dtype=np.int64)

    def _transform(self, train: bool):
        if train not in self._transforms:
            self._transforms[train] = self._build_transform(train)
        return self._transforms[train]

    @property
    def _tensors(self) -> bool:
        return self.decoder == "torchvision"

    def _build_transform(self, train: bool):
        """The training or evaluation pipeline: torchvision's v2 transforms on the decoded
        uint8 tensor (``torchvision``), or its v1 transforms on the PIL image, then to a tensor."""
        if self._tensors:
            from torchvision.transforms import v2 as T

            last = []
        else:
            from torchvision import transforms as T

            last = [T.PILToTensor()]
        if train:
            steps = [T.RandomResizedCrop(self.image_size, antialias=True), T.RandomHorizontalFlip()]
        else:
            steps = [T.Resize(self.resize, antialias=True), T.CenterCrop(self.image_size)]
        return T.Compose([*steps, *last])

    def _decode(self, path: str):
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            return image.convert("L" if self.channels == 1 else "RGB")

    def _decode_tensor(self, path: str) -> Tensor:
        """The file as a uint8 (C, H, W) tensor: ``torchvision.io.decode_image`` (an animated
        GIF's first frame, as PIL reads it; a 16-bit PNG scaled to 8 bits), PIL for the formats
        torchvision does not read."""
        import warnings

        from torchvision.io import ImageReadMode, decode_image
        from torchvision.transforms.v2.functional import pil_to_tensor, to_dtype

        raw = Path(path).read_bytes()
        if not torchvision_reads(raw[:12]):
            return pil_to_tensor(self._decode(path))
        mode = ImageReadMode.GRAY if self.channels == 1 else ImageReadMode.RGB
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (for TorchCodec)
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(torch.frombuffer(bytearray(raw), dtype=torch.uint8), mode=mode)
        image = image[0] if image.ndim == 4 else image
        return image if image.dtype == torch.uint8 else to_dtype(image, torch.uint8, scale=True)

    def _one(self, i: int, seed: np.uint64 | None) -> Tensor | None:
        decode = self._decode_tensor if self._tensors else self._decode
        errors = TENSOR_BAD_IMAGE_ERRORS if self._tensors else BAD_IMAGE_ERRORS
        try:
            image = decode(self.files[i])
        except errors as exc:
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
