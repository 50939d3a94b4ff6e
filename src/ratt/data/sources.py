"""The registered datasets: scikit-learn digits, (Fashion-)MNIST, CIFAR-10/100, SVHN."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ratt.data.base import DATASETS, DatasetInfo, DatasetSource
from ratt.data.idx import find_idx_files, read_idx_pair
from ratt.errors import UserError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

Arrays = tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]


def default_root() -> Path:
    """Where downloaded data goes: ``$RATT_DATA`` or ``~/.cache/ratt/data``."""
    return Path(os.environ.get("RATT_DATA", Path.home() / ".cache" / "ratt" / "data"))


def _register(info: DatasetInfo):
    def deco(read):
        DATASETS.register(info.name)(DatasetSource(info, read))
        return read

    return deco


GRAY = ((0.0,), (1.0,))
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
SVHN_MEAN_STD = ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))


@_register(DatasetInfo("digits", (1, 8, 8), 10, 0.2, 0.05, 10, "none", *GRAY, val_size=180))
def read_digits(root: Path | None, download: bool = True) -> Arrays:
    """scikit-learn's 8x8 digits (1,797 images, ships with the package): a stratified
    80/20 train/test split with a fixed seed; pixels 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
    return (
        (torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
        (torch.from_numpy(x_te), torch.from_numpy(y_te)),
    )


def _read_idx_dataset(folders: list[Path]) -> Arrays | None:
    for folder in folders:
        files = find_idx_files(folder)
        if files is not None:
            return read_idx_pair(*files["train"]), read_idx_pair(*files["test"])
    return None


def _torchvision(cls_name: str, root: Path, download: bool, **kwargs):
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    try:
        return cls(str(root), download=download, **kwargs)
    except Exception as exc:  # network errors come in many types
        if not download:
            raise _MissingData("data.download=false") from None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _MissingData(f"download failed: {first}") from None


class _MissingData(Exception):
    pass


def _missing(name: str, searched: list[Path], hint: str, reason: str) -> UserError:
    where = ", ".join(str(p) for p in searched)
    return UserError(f"dataset {name!r} not found (searched {where}; {reason}); {hint}")


@_register(DatasetInfo("fashion-mnist", (1, 28, 28), 10, 0.1, 0.01, 40, "none", *GRAY, 5000))
def read_fashion_mnist(root: Path | None, download: bool = True) -> Arrays:
    """Fashion-MNIST from the four IDX files: in ``root`` (or ``root/FashionMNIST/raw``),
    else Debian's ``dataset-fashion-mnist``, else a torchvision download into ``root``."""
    base = root or default_root()
    folders = [base, base / "fashion-mnist", base / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]
    hint = "install Debian's dataset-fashion-mnist or put the four IDX .gz files in data.root"
    return _idx_or_download("fashion-mnist", "FashionMNIST", base, folders, download=download, hint=hint)


@_register(DatasetInfo("mnist", (1, 28, 28), 10, 0.3, 0.01, 40, "none", *GRAY, 5000))
def read_mnist(root: Path | None, download: bool = True) -> Arrays:
    """MNIST from IDX files in ``root`` or ``root/MNIST/raw``, else a torchvision download."""
    base = root or default_root()
    folders = [base, base / "mnist", base / "MNIST" / "raw"]
    hint = "put the four IDX files in data.root"
    return _idx_or_download("mnist", "MNIST", base, folders, download=download, hint=hint)


def _idx_or_download(
    name: str, torchvision_name: str, base: Path, folders: list[Path], *, download: bool, hint: str
) -> Arrays:
    """The four IDX files from the first of ``folders`` holding them, else torchvision's
    ``torchvision_name`` downloaded into ``base`` (``download``); ``hint`` says how to provide them."""
    found = _read_idx_dataset(folders)
    if found is not None:
        return found
    try:
        _torchvision(torchvision_name, base, download, train=True)
    except _MissingData as exc:
        raise _missing(name, folders, hint, str(exc)) from None
    return _read_idx_dataset([base / torchvision_name / "raw"])  # type: ignore[return-value]


def _cifar(cls_name: str, name: str, root: Path | None, download: bool) -> Arrays:
    base = root or default_root()
    splits = []
    for train in (True, False):
        try:
            ds = _torchvision(cls_name, base, download, train=train)
        except _MissingData as exc:
            raise _missing(
                name,
                [base],
                "download it once on a machine with internet into data.root",
                str(exc),
            ) from None
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        splits.append((images, torch.tensor(ds.targets, dtype=torch.long)))
    return splits[0], splits[1]


EPS8 = 8 / 255


@_register(DatasetInfo("cifar10", (3, 32, 32), 10, EPS8, 2 / 255, 10, "crop_flip", *CIFAR_MEAN_STD, 1000))
def read_cifar10(root: Path | None, download: bool = True) -> Arrays:
    """CIFAR-10 through torchvision (downloaded into ``root`` if absent)."""
    return _cifar("CIFAR10", "cifar10", root, download)


@_register(
    DatasetInfo("cifar100", (3, 32, 32), 100, EPS8, 2 / 255, 10, "crop_flip", *CIFAR100_MEAN_STD, 1000)
)
def read_cifar100(root: Path | None, download: bool = True) -> Arrays:
    """CIFAR-100 through torchvision (downloaded into ``root`` if absent)."""
    return _cifar("CIFAR100", "cifar100", root, download)


@_register(DatasetInfo("svhn", (3, 32, 32), 10, EPS8, 1 / 255, 10, "crop", *SVHN_MEAN_STD, 1000))
def read_svhn(root: Path | None, download: bool = True) -> Arrays:
    """SVHN (train + test, no extra) through torchvision. The authors train at 8/255 and
    evaluate at 4/255: pass ``eps=4/255`` to ``ratt eval`` for their table."""
    base = root or default_root()
    splits = []
    for split in ("train", "test"):
        try:
            ds = _torchvision("SVHN", base, download, split=split)
        except _MissingData as exc:
            raise _missing(
                "svhn",
                [base],
                "download it once on a machine with internet into data.root",
                str(exc),
            ) from None
        splits.append((torch.from_numpy(ds.data), torch.from_numpy(ds.labels.astype(np.int64))))
    return splits[0], splits[1]
