"""Accuracy of a model under a list of attacks, and the per-point worst case over them."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ratt.attacks import ThreatModel, fgsm, pgd
from ratt.attacks.base import eval_mode
from ratt.data.base import TensorDataset, to_float
from ratt.errors import UserError

ATTACK_PATTERN = re.compile(r"(clean|fgsm|pgd|cw)(\d*)")


@dataclass(frozen=True)
class AttackSpec:
    """A parsed attack name: ``clean``, ``fgsm``, ``pgd20``, ``cw20`` (kind + steps)."""

    name: str
    kind: str
    steps: int


def parse_attack(spec: str) -> AttackSpec:
    """``"pgd20"`` -> AttackSpec("pgd20", "pgd", 20); ``UserError`` for an unknown name."""
    match = ATTACK_PATTERN.fullmatch(spec.strip().lower())
    if (
        not match
        or (match.group(1) in ("pgd", "cw") and not match.group(2))
        or (match.group(1) in ("clean", "fgsm") and match.group(2))
    ):
        raise UserError(f"unknown attack {spec!r}; use clean, fgsm, pgdN or cwN (e.g. pgd20, cw20)")
    kind, steps = match.group(1), int(match.group(2) or (1 if match.group(1) == "fgsm" else 0))
    if kind in ("pgd", "cw") and steps < 1:
        raise UserError(f"attack {spec!r} needs at least one step")
    return AttackSpec(spec.strip().lower(), kind, steps)


@dataclass
class EvalResult:
    """Accuracies (fractions in [0, 1]) of one evaluation.

    Attributes:
        accuracy: attack name -> accuracy.
        seconds: attack name -> wall time.
        robust: per-point worst case over all attacks run (a point counts only if every
            attack, clean included, leaves it correct).
        n: number of points evaluated.
    """

    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    robust: float = float("nan")
    n: int = 0

    def stderr(self, name: str) -> float:
        """Binomial standard error of one accuracy."""
        acc = self.robust if name == "robust" else self.accuracy[name]
        return math.sqrt(max(acc * (1 - acc), 0.0) / max(self.n, 1))

    def to_dict(self) -> dict:
        return {"n": self.n, "accuracy": self.accuracy, "robust": self.robust, "seconds": self.seconds}


def run_attack(
    model: nn.Module,
    spec: AttackSpec,
    x: Tensor,
    y: Tensor,
    threat: ThreatModel,
    generator: torch.Generator | None,
) -> Tensor:
    """Adversarial (or clean) inputs for one batch under ``spec``."""
    if spec.kind == "clean":
        return x
    if spec.kind == "fgsm":
        return fgsm(model, x, y, threat)
    loss = "ce" if spec.kind == "pgd" else "cw"
    return pgd(model, x, y, threat.with_steps(spec.steps), loss=loss, generator=generator)


def evaluate(
    model: nn.Module,
    dataset: TensorDataset,
    attacks: list[str],
    threat: ThreatModel,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> EvalResult:
    """Accuracy of ``model`` on ``dataset`` under each attack in ``attacks``.

    Attacks use ``threat`` (eps, step, norm) with the step count from the name. Random
    starts come from a generator seeded with ``seed``, so the same call gives the same
    numbers. The model is evaluated in eval mode; its mode is restored.
    """
    specs = [parse_attack(a) for a in attacks]
    device = torch.device(device)
    result = EvalResult(n=len(dataset))
    correct_all = torch.ones(len(dataset), dtype=torch.bool)
    with eval_mode(model):
        for spec in specs:
            generator = torch.Generator(device=device).manual_seed(seed)
            start = time.perf_counter()
            correct = torch.zeros(len(dataset), dtype=torch.bool)
            batches = range(0, len(dataset), batch_size)
            for lo in tqdm(batches, desc=spec.name, disable=not progress, leave=False):
                x = to_float(dataset.images[lo : lo + batch_size]).to(device)
                y = dataset.labels[lo : lo + batch_size].to(device)
                x_adv = run_attack(model, spec, x, y, threat, generator)
                with torch.no_grad():
                    correct[lo : lo + batch_size] = (model(x_adv).argmax(1) == y).cpu()
            result.accuracy[spec.name] = correct.float().mean().item()
            result.seconds[spec.name] = time.perf_counter() - start
            correct_all &= correct
    result.robust = correct_all.float().mean().item() if specs else float("nan")
    return result


def format_table(result: EvalResult) -> str:
    """A plain-text table: attack, accuracy (%), +- std-error, seconds."""
    lines = [f"{'attack':<10} {'accuracy':>9} {'± s.e.':>7} {'seconds':>8}"]
    for name, acc in result.accuracy.items():
        lines.append(
            f"{name:<10} {100 * acc:>8.2f}% {100 * result.stderr(name):>6.2f} {result.seconds[name]:>8.1f}"
        )
    lines.append(
        f"{'worst-case':<10} {100 * result.robust:>8.2f}% "
        f"{100 * result.stderr('robust'):>6.2f} {'':>8}  (n={result.n})"
    )
    return "\n".join(lines)
