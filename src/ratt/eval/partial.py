"""Per-chunk results of an evaluation on disk, so an interrupted run continues where it stopped."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ratt.core.files import atomic_write


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of every tensor in ``model``'s state dict (names, shapes, values)."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def labels_fingerprint(labels: Tensor) -> str:
    """A short hash of the evaluated labels (tells two subsets of a split apart)."""
    return hashlib.blake2b(labels.cpu().numpy().tobytes(), digest_size=8).hexdigest()


class PartialStore:
    """Files ``ROOT/ATTACK-HASH.pt`` holding one attack's per-point correctness and which
    chunks (:data:`ratt.eval.chunks.CHUNK` points each) are finished.

    The hash covers the model, the data, the attack, the threat model, ``n``, the seed and the
    chunk size (not the batch size, which does not change the numbers): any change starts
    afresh; an identical call reuses every finished chunk. Each file is rewritten atomically
    (temp file + rename) whenever a chunk finishes, so a kill at any moment leaves either the
    previous or the new state, never a torn file, and loses at most the unfinished chunks.
    """

    def __init__(self, root: str | Path, model: nn.Module) -> None:
        self.root = Path(root)
        self.model_hash = model_fingerprint(model)

    def path(self, attack: str, *parts: Any) -> Path:
        """The file of ``attack`` for the evaluation described by ``parts``."""
        text = "|".join([self.model_hash, attack, *map(str, parts)])
        return self.root / f"{attack}-{hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}.pt"

    def load(self, path: Path) -> dict[str, Tensor] | None:
        """The saved state, or None when there is none (or it cannot be read)."""
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a file from an incompatible version: start this attack again
            return None

    def save(self, path: Path, state: dict[str, Tensor]) -> None:
        """Write ``state`` atomically."""
        atomic_write(path, lambda tmp: torch.save(state, tmp))
