"""Accuracy of a model under a list of attacks, and the per-point worst case over them."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ratt.attacks import ThreatModel, parse_attack
from ratt.attacks.autoattack import STAGES
from ratt.attacks.base import eval_mode
from ratt.data.base import TensorDataset, to_float
from ratt.eval.partial import PartialStore, labels_fingerprint

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Accuracies (fractions in [0, 1]) of one evaluation.

    Attributes:
        accuracy: attack name -> accuracy.
        seconds: attack name -> wall time (summed over sessions when resumed).
        robust: per-point worst case over all attacks run (a point counts only if every
            attack, clean included, leaves it correct).
        n: number of points evaluated.
        correct: attack name -> (n,) bool per-point correctness.
        stages: for ``aa``: points still correct before AutoAttack and after each of its stages
            (APGD-CE, APGD-T, FAB-T, Square), summed over batches.
        threat: the threat model's description.
    """

    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    robust: float = float("nan")
    n: int = 0
    correct: dict[str, Tensor] = field(default_factory=dict, repr=False)
    stages: dict[str, list[int]] = field(default_factory=dict)
    threat: str = ""

    def stderr(self, name: str) -> float:
        """Binomial standard error of one accuracy: sqrt(a (1 - a) / n)."""
        acc = self.robust if name == "robust" else self.accuracy[name]
        return math.sqrt(max(acc * (1 - acc), 0.0) / max(self.n, 1))

    def to_dict(self) -> dict:
        """JSON-ready: n, accuracy, robust, seconds, stderr (and threat, stages when known)."""
        out = {
            "n": self.n,
            "accuracy": self.accuracy,
            "robust": self.robust,
            "seconds": self.seconds,
            "stderr": {name: self.stderr(name) for name in [*self.accuracy, "robust"] if self.n},
        }
        if self.threat:
            out["threat_description"] = self.threat
        if self.stages:
            out["stages"] = {
                name: dict(zip(("clean", *STAGES), v, strict=True)) for name, v in self.stages.items()
            }
        return out


def evaluate(
    model: nn.Module,
    dataset: TensorDataset,
    attacks: list[str],
    threat: ThreatModel,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    store: PartialStore | None = None,
) -> EvalResult:
    """Accuracy of ``model`` on ``dataset`` under each attack in ``attacks`` (names in
    :data:`ratt.attacks.ATTACKS`).

    Attacks use ``threat`` (eps, step, norm) with the step count from the name. Batch ``i``'s
    random starts come from a generator seeded with ``(seed, i)``, so the same call gives
    the same numbers, and a batch gives the same numbers whether or not the batches before
    it were just run or read back from ``store`` (a :class:`PartialStore`: finished batches
    are saved after each batch and reused by an identical call). The model is evaluated in
    eval mode; its mode is restored.
    """
    specs = [parse_attack(a) for a in attacks]
    device = torch.device(device)
    n = len(dataset)
    result = EvalResult(n=n, threat=threat.describe())
    correct_all = torch.ones(n, dtype=torch.bool)
    starts = list(range(0, n, batch_size))
    data_key = f"{dataset.info.name}-{labels_fingerprint(dataset.labels)}"
    with eval_mode(model):
        for spec in specs:
            path = store.path(spec.name, threat.key(), data_key, n, seed, batch_size) if store else None
            state = store.load(path) if store else None
            if state is None or state["correct"].shape[0] != n or state["done"].shape[0] != len(starts):
                state = {
                    "correct": torch.zeros(n, dtype=torch.bool),
                    "done": torch.zeros(len(starts), dtype=torch.bool),
                    "seconds": torch.zeros(len(starts), dtype=torch.float64),
                    "stages": torch.zeros(len(starts), len(STAGES) + 1, dtype=torch.long),
                }
            elif state["done"].any():
                log.info(
                    "%s: reusing %d of %d finished batches", spec.name, int(state["done"].sum()), len(starts)
                )
            bar = tqdm(total=len(starts), desc=spec.name, disable=not progress, leave=False)
            bar.update(int(state["done"].sum()))
            for index, lo in enumerate(starts):
                if state["done"][index]:
                    continue
                start = time.perf_counter()
                generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + index)
                x = to_float(dataset.images[lo : lo + batch_size]).to(device)
                y = dataset.labels[lo : lo + batch_size].to(device)
                x_adv, stages = spec.run(model, x, y, threat, generator, seed)
                with torch.no_grad():
                    state["correct"][lo : lo + batch_size] = (model(x_adv).argmax(1) == y).cpu()
                if stages is not None:
                    state["stages"][index] = torch.tensor(stages + [0] * (len(STAGES) + 1 - len(stages)))
                state["seconds"][index] = time.perf_counter() - start
                state["done"][index] = True
                if store:
                    store.save(path, state)
                bar.update(1)
            bar.close()
            correct = state["correct"]
            result.correct[spec.name] = correct
            result.accuracy[spec.name] = correct.float().mean().item()
            result.seconds[spec.name] = float(state["seconds"].sum())
            if spec.kind == "aa":
                result.stages[spec.name] = state["stages"].sum(0).tolist()
            correct_all &= correct
    result.robust = correct_all.float().mean().item() if specs else float("nan")
    return result
