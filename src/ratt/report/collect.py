"""Read what a run directory holds and aggregate runs into groups (mean ± std over seeds)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ratt.attacks import ATTACKS
from ratt.core.stats import mean_std
from ratt.errors import UserError
from ratt.runs import RunFiles

ROBUST = "robust"  # the per-point worst case over the attacks run


def _attack_order(name: str) -> tuple:
    """Registered attacks in the registry's order; unknown names after them, alphabetically."""
    return ATTACKS.get(name).sort_key if name in ATTACKS else (len(ATTACKS.names()), 0, name)


def accuracy_columns(accuracies: Iterable[dict[str, Any]]) -> list[str]:
    """Every attack found in ``accuracies`` (dicts keyed by attack name), in the registry's
    order (clean, fgsm, pgdN by N, cwN by N, aa), then the worst case."""
    names = {name for acc in accuracies for name in acc if name != ROBUST}
    columns = sorted(names, key=_attack_order)
    return [*columns, ROBUST] if any(ROBUST in acc for acc in accuracies) else columns


def column_label(name: str) -> str:
    """A column's title: the attack's label (``PGD-20``), ``worst case`` for the worst case."""
    if name == ROBUST:
        return "worst case"
    return ATTACKS.get(name).label if name in ATTACKS else name


@dataclass
class RunRecord:
    """Everything a report needs from one run directory.

    Attributes:
        path: the run directory.
        config: the resolved config (``config.yaml``) as nested dicts.
        metrics: rows of ``metrics.jsonl``.
        accuracy: test accuracy per attack (fractions): ``summary.json``, overridden by the
            more complete ``eval.json`` when present; ``robust`` is the per-point worst case.
        train_seconds: training wall time.
        n: test points behind ``accuracy`` (None when unknown).
        flatness: the scalar flatness measures of ``landscape.json["summary"]``.
        noise: ``landscape.json["noise"]``: loss name -> weight-noise curve (see
            ``ratt.flatness.noise.noise_curve``), when ``ratt landscape`` measured it.
        versions: ``versions.json``.
        figures: PNG files found in the run directory.
    """

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    train_seconds: float = math.nan
    n: int | None = None
    flatness: dict[str, float] = field(default_factory=dict)
    noise: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return str(self.config.get("data", {}).get("name", "?"))

    @property
    def method(self) -> str:
        return str(self.config.get("method", {}).get("name", "?"))

    @property
    def seed(self) -> int | None:
        return self.config.get("run", {}).get("seed")

    def key(self, group_by: str) -> str:
        """The group this run belongs to: a comma list of ``method``, ``dataset``, ``model``,
        ``run`` (e.g. ``dataset,method`` -> ``"digits / trades"``)."""
        parts = []
        for part in group_by.split(","):
            if part == "run":
                parts.append(self.path.name)
            else:
                section = {"method": "method", "dataset": "data", "model": "model"}[part]
                parts.append(str(self.config.get(section, {}).get("name", "?")))
        return " / ".join(parts)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None


def _flatten_numbers(data: Any, prefix: str = "", depth: int = 0) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(data, dict) and depth < 3:
        for key, value in data.items():
            out.update(_flatten_numbers(value, f"{prefix}{key}.", depth + 1))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix.rstrip(".")] = float(data)
    return out


def load_run(path: str | Path) -> RunRecord:
    """Read one run directory; ``UserError`` if it is not one."""
    path = Path(path)
    files = RunFiles(path)
    config_file = files.config
    if not config_file.is_file():
        raise UserError(f"{path} is not a ratt run directory (no config.yaml)")
    record = RunRecord(path=path, config=yaml.safe_load(config_file.read_text()) or {})
    metrics_file = files.metrics
    if metrics_file.exists():
        for line in metrics_file.read_text().splitlines():
            if line.strip():
                record.metrics.append(json.loads(line))
    summary = _read_json(files.summary)
    if summary:
        record.accuracy.update(summary["test"]["accuracy"])
        record.accuracy["robust"] = summary["test"]["robust"]
        record.train_seconds = float(summary.get("train_seconds", math.nan))
        record.n = summary["test"].get("n")
    evaluation = _read_json(files.eval)
    if evaluation and isinstance(evaluation.get("accuracy"), dict):
        record.accuracy.update(evaluation["accuracy"])
        if "robust" in evaluation:
            record.accuracy["robust"] = evaluation["robust"]
        record.n = evaluation.get("n", record.n)
    landscape = _read_json(files.landscape)
    if landscape:  # the headline numbers `ratt landscape` puts in "summary"
        record.flatness = _flatten_numbers(landscape.get("summary", {}))
        record.noise = landscape.get("noise", {})
    record.versions = _read_json(files.versions) or {}
    record.figures = sorted(path.glob("*.png"))
    return record


def group_runs(records: list[RunRecord], group_by: str = "method") -> dict[str, list[RunRecord]]:
    """Runs grouped by ``group_by`` (a comma list of ``method``, ``dataset``, ``model``, ``run``),
    in first-seen order."""
    parts = group_by.split(",")
    if not parts or any(p not in ("method", "dataset", "model", "run") for p in parts):
        raise UserError(f"--group-by {group_by!r}: a comma list of method, dataset, model, run")
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.key(group_by), []).append(record)
    return groups


def summarize(groups: dict[str, list[RunRecord]]) -> list[dict[str, Any]]:
    """One row per group: number of runs, mean/std of each accuracy, train time and flatness."""
    rows = []
    for name, records in groups.items():
        points = sorted({r.n for r in records if r.n})
        row: dict[str, Any] = {"group": name, "runs": len(records), "n": points}
        row["columns"] = accuracy_columns([r.accuracy for r in records])
        for column in row["columns"]:
            row[column] = mean_std([r.accuracy.get(column, math.nan) for r in records])
        row["train_seconds"] = mean_std([r.train_seconds for r in records])
        flat_keys = sorted({k for r in records for k in r.flatness})
        row["flatness"] = {k: mean_std([r.flatness.get(k, math.nan) for r in records]) for k in flat_keys}
        rows.append(row)
    return rows


def rat_base(method: str) -> str | None:
    """The method RAT's Taylor terms were added to (``awp+rat_trades`` -> ``awp+trades``), or None."""
    wrapper, _, name = method.rpartition("+")
    if not name.startswith("rat_") or name == "rat_mc":
        return None
    return f"{wrapper}+{name[4:]}" if wrapper else name[4:]


def rat_effects(records: list[RunRecord]) -> list[dict[str, Any]]:
    """RAT minus its base method, paired by (dataset, seed): per pair of methods, the mean and
    sample std over seeds of each accuracy difference, and how many seeds RAT was ahead.

    Returns:
        rows ``{"dataset", "method", "base", "seeds": [s], column: {"diffs": [..], "mean",
        "std", "ahead", "behind"}}`` with differences as fractions (0.01 = one point); the
        worst case (``robust``) only where both runs of every pair ran the same attacks.
    """
    by_cell = {(r.dataset, r.method, r.seed): r for r in records}
    pairs: dict[tuple[str, str, str], list[tuple[RunRecord, RunRecord]]] = {}
    for (dataset, method, seed), record in by_cell.items():
        base = rat_base(method)
        if base is not None and (dataset, base, seed) in by_cell:
            pairs.setdefault((dataset, method, base), []).append((record, by_cell[(dataset, base, seed)]))
    rows = []
    for (dataset, method, base), matched in pairs.items():
        matched.sort(key=lambda pair: pair[0].seed or 0)
        row: dict[str, Any] = {"dataset": dataset, "method": method, "base": base,
                               "seeds": [rat.seed for rat, _ in matched]}  # fmt: skip
        row["columns"] = []
        for column in accuracy_columns([r.accuracy for pair in matched for r in pair]):
            comparable = (
                set(rat.accuracy) == set(ref.accuracy)  # the worst case is over the same attacks
                if column == "robust"
                else column in rat.accuracy and column in ref.accuracy
                for rat, ref in matched
            )
            if all(comparable):
                diffs = [rat.accuracy[column] - ref.accuracy[column] for rat, ref in matched]
                mean, std = mean_std(diffs)
                ahead, behind = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
                row[column] = {"diffs": diffs, "mean": mean, "std": std, "ahead": ahead, "behind": behind}
                row["columns"].append(column)
        rows.append(row)
    return rows
