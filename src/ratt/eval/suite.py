"""Accuracy of a model under a list of attacks, and the per-point worst case over them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ratt.attacks import Attack, ThreatModel, parse_attack
from ratt.attacks.autoattack import MAX_STAGES
from ratt.attacks.base import eval_mode
from ratt.data.base import TensorDataset, to_float
from ratt.data.stream import LazyDataset, for_evaluation
from ratt.errors import UserError
from ratt.eval import chunks as chunking
from ratt.eval.partial import PartialStore, labels_fingerprint
from ratt.eval.progress import StageProgress

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
                name: dict(zip(("clean", *parse_attack(name).stages), v, strict=False))
                for name, v in self.stages.items()
            }
        return out

    def merged(self, other: EvalResult) -> EvalResult:
        """This evaluation and ``other`` (other attacks on the same points, e.g. at another
        radius) as one: every accuracy, and the per-point worst case over all of them."""
        if other.n != self.n:
            raise ValueError(f"cannot merge evaluations of {self.n} and {other.n} points")
        correct = {**self.correct, **other.correct}
        worst = torch.stack(list(correct.values())).all(dim=0)
        return EvalResult(
            {**self.accuracy, **other.accuracy}, {**self.seconds, **other.seconds},
            worst.float().mean().item(), self.n, correct, {**self.stages, **other.stages},
            "; ".join(t for t in (self.threat, other.threat) if t),
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class EvalPlan:
    """What an evaluation runs on and how, built by name once and handed on (to the eps sweep,
    the weight-noise table, AutoAttack at its own radius) instead of a loose tuple.

    Attributes:
        model: the classifier, [0, 1] images (B, C, H, W) -> logits (B, classes).
        dataset: the points evaluated; a lazy one (packed shards, image files) is read batch by
            batch, once per attack, and never held whole.
        threat: the threat model every attack uses (the step count comes from the name).
        batch_size: points through the model at once (no result depends on it).
        seed: seeds each chunk's randomness (see :func:`evaluate`).
        device: where the model and the batches are.
        progress: show a progress bar per attack.
        store: keeps finished chunks (None: nothing kept).
    """

    model: nn.Module
    dataset: TensorDataset | LazyDataset
    threat: ThreatModel
    batch_size: int = 500
    seed: int = 0
    device: torch.device | str = "cpu"
    progress: bool = False
    store: PartialStore | None = None

    def run(self, attacks: list[str]) -> EvalResult:
        """Accuracy under each attack and the per-point worst case (:func:`evaluate`)."""
        specs = list({spec.name: spec for spec in map(parse_attack, attacks)}.values())  # each once
        if not specs:
            raise UserError("no attacks to evaluate: name at least one, e.g. clean,pgd20")
        batch_size = self.batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"batch size {batch_size!r} must be a whole number >= 1")
        if (dataset := for_evaluation(self.dataset)) is not self.dataset:  # n known once read
            return replace(self, dataset=dataset).run(attacks)
        n = len(self.dataset)
        if n == 0:
            raise UserError("no points to evaluate (the data set is empty)")
        result = EvalResult(n=n, threat=self.threat.describe())
        correct_all = torch.ones(n, dtype=torch.bool)
        with eval_mode(self.model):
            for spec in specs:
                state = _run_attack(self, spec)
                correct = state["correct"]
                result.correct[spec.name] = correct
                result.accuracy[spec.name] = correct.float().mean().item()
                result.seconds[spec.name] = float(state["seconds"].sum())
                if spec.kind == "aa":
                    result.stages[spec.name] = state["stages"].sum(0).tolist()[: len(spec.stages) + 1]
                correct_all &= correct
        result.robust = correct_all.float().mean().item()
        return result


def evaluate(
    model: nn.Module,
    dataset: TensorDataset | LazyDataset,
    attacks: list[str],
    threat: ThreatModel,
    *,
    batch_size: int = 500,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    store: PartialStore | None = None,
) -> EvalResult:
    """Accuracy of ``model`` on ``dataset`` under each attack in ``attacks`` (names in
    :data:`ratt.attacks.ATTACKS`) and the per-point worst case over them.

    Attacks use ``threat`` (eps, step, norm) with the step count from the name. Randomness is
    per fixed chunk of :data:`~ratt.eval.chunks.CHUNK` points, not per batch: chunk ``c``'s
    PGD/CW starts come from a generator seeded ``(seed, c)`` and AutoAttack runs one chunk at
    a time with that seed. A point's result therefore does not depend on ``batch_size`` (how
    many points go through the model at once; AutoAttack always takes one chunk), and the
    first ``k * CHUNK`` points give the same results as part of a larger set. With ``store``
    (a :class:`PartialStore`), every finished chunk is saved and an identical call, whatever
    its batch size, reuses them. The model is evaluated in eval mode; its mode is restored.
    A :class:`~ratt.data.stream.LazyDataset` is read batch by batch (decoded ahead by loader
    workers) and gives the numbers its in-memory copy gives.

    Raises:
        UserError: no attacks, no points, or ``batch_size < 1`` (an attack named twice runs once).
    """
    plan = EvalPlan(
        model=model, dataset=dataset, threat=threat, batch_size=batch_size, seed=seed,
        device=torch.device(device), progress=progress, store=store,
    )  # fmt: skip
    return plan.run(attacks)


def _run_attack(plan: EvalPlan, spec: Attack) -> dict[str, Tensor]:
    """One attack over every chunk not finished in ``plan.store``: its state (per-point
    ``correct``, per-chunk ``done``, ``seconds`` and AutoAttack ``stages``), saved after each
    batch that finishes a chunk."""
    model, dataset, threat, seed, store = plan.model, plan.dataset, plan.threat, plan.seed, plan.store
    n, chunks = len(dataset), chunking.chunk_bounds(len(dataset))
    data_key = f"{dataset.info.name}-{labels_fingerprint(dataset.labels)}"
    key = (threat.key(), data_key, n, seed, f"chunk{chunking.CHUNK}")
    path = store.path(spec.name, *key) if store else None
    state = _load_state(store, path, n, len(chunks))
    if state["done"].any():
        log.info("%s: reusing %d of %d finished chunks", spec.name, int(state["done"].sum()), len(chunks))
    pending = [c for c in range(len(chunks)) if not state["done"][c]]
    size = chunking.CHUNK if spec.kind == "aa" else plan.batch_size  # AutoAttack: one chunk at a time
    work = max(len(spec.stages), 1)  # AutoAttack's bar moves once per stage of each chunk
    todo = sum(chunks[c][1] - chunks[c][0] for c in pending)
    with tqdm(total=n * work, desc=spec.name, disable=None if plan.progress else True, leave=False) as bar:
        bar.update((n - todo) * work)
        stage_progress = None
        if work > 1:
            stage_progress = StageProgress(
                bar, spec, chunks=len(chunks), todo=todo * work, log_lines=plan.progress
            )
        batches = list(_batches(pending, chunks, size))
        points = _points(dataset, [index for index, _ in batches])
        for (index, finished), (images, labels) in zip(batches, points, strict=True):
            start = time.perf_counter()
            x, y = to_float(images).to(plan.device), labels.to(plan.device)
            chunk = int(index[0]) // chunking.CHUNK  # the batch's only chunk for AutoAttack
            starts = None
            if spec.random_start and threat.random_start and threat.eps > 0:
                starts = chunking.start_points(x, index, threat, seed)
            on_stage = stage_progress.for_chunk(chunk, len(index)) if stage_progress else None
            x_adv, stages = spec.run(
                model, x, y, threat, seed=chunking.chunk_seed(seed, chunk), start=starts, on_stage=on_stage
            )
            with torch.no_grad():
                state["correct"][index] = (model(x_adv).argmax(1) == y).cpu()
            if stages is not None:
                state["stages"][chunk] = torch.tensor(stages + [0] * (MAX_STAGES + 1 - len(stages)))
            per_point = torch.full((len(index),), (time.perf_counter() - start) / len(index))
            state["seconds"].index_add_(0, index // chunking.CHUNK, per_point.double())
            state["done"][finished] = True
            if store and finished:
                store.save(path, state)
            if stage_progress is None:
                bar.update(len(index))
    return state


def _points(dataset: TensorDataset | LazyDataset, indices: list[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
    """(images as stored, labels) at each of ``indices`` in turn."""
    if isinstance(dataset, LazyDataset):
        return dataset.batches([index.numpy() for index in indices])
    return ((dataset.images[index], dataset.labels[index]) for index in indices)


def _load_state(store: PartialStore | None, path, n: int, chunks: int) -> dict[str, Tensor]:
    """The saved per-chunk state of one attack, or a fresh one (no store, no file, or a file
    that does not fit this evaluation)."""
    state = store.load(path) if store else None
    shapes = {"correct": (n,), "done": (chunks,), "seconds": (chunks,), "stages": (chunks, MAX_STAGES + 1)}
    if isinstance(state, dict) and all(
        isinstance(state.get(k), Tensor) and tuple(state[k].shape) == v for k, v in shapes.items()
    ):
        return state
    return {
        "correct": torch.zeros(n, dtype=torch.bool),
        "done": torch.zeros(chunks, dtype=torch.bool),
        "seconds": torch.zeros(chunks, dtype=torch.float64),
        "stages": torch.zeros(chunks, MAX_STAGES + 1, dtype=torch.long),
    }


def _batches(
    pending: list[int], chunks: list[tuple[int, int]], size: int
) -> Iterator[tuple[Tensor, list[int]]]:
    """The points of the ``pending`` chunks in batches of ``size``: (point positions, the
    chunks that the batch completes)."""
    points = torch.cat([torch.arange(*chunks[c]) for c in pending]) if pending else torch.empty(0)
    ends = {chunks[c][1] - 1: c for c in pending}  # a chunk is complete once its last point is
    for lo in range(0, len(points), size):
        index = points[lo : lo + size].long()
        yield index, [ends[p] for p in index.tolist() if p in ends]
