"""Read what a run directory holds and aggregate runs into groups (mean ± std over seeds)."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ratt.attacks import ATTACKS
from ratt.config import from_dict, load_yaml, resolve_key
from ratt.core.files import read_regular_text
from ratt.core.stats import mean_std, paired_summary
from ratt.errors import UserError
from ratt.runs import RunFiles

ROBUST = "robust"  # the per-point worst case over the attacks run
NAMED_PARTS = {"method": "method", "dataset": "data", "model": "model"}  # group part -> config section

log = logging.getLogger(__name__)


def _attack_order(name: str) -> tuple:
    """Registered attacks in the registry's order; unknown names after them, alphabetically."""
    return ATTACKS.get(name).sort_key if name in ATTACKS else (len(ATTACKS.names()), 0, 0, name)


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
        accuracy: test accuracy per attack (fractions) and ``robust``, the per-point worst
            case over exactly those attacks, all from ONE evaluation: ``eval.json`` when it
            holds accuracies, else ``summary.json`` (never a mix of the two).
        source: the file ``accuracy`` came from (``eval.json``, ``summary.json`` or ``""``).
        train_seconds: training wall time.
        n: test points behind ``accuracy`` (None when unknown).
        threat: ``(norm, eps)`` of that evaluation (None when the file does not say).
        weights: the checkpoint evaluated (``best``, ``last``, ...; None when not recorded).
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
    source: str = ""
    threat: tuple[str, float] | None = None
    weights: str | None = None
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

    @property
    def protocol(self) -> tuple[int | None, tuple[str, ...], tuple[str, float] | None]:
        """What makes two runs' accuracies comparable: (test points, attacks, (norm, eps))."""
        return self.n, tuple(accuracy_columns([self.accuracy])), self.threat

    def key(self, group_by: str) -> str:
        """The group this run belongs to, from a comma list of parts (see :func:`group_runs`),
        e.g. ``dataset,method`` -> ``"digits / trades"``, ``method.alpha`` -> ``"alpha=0.05"``."""
        return " / ".join(self.part(part.strip()) for part in group_by.split(","))

    def part(self, part: str) -> str:
        """One part of a group key: ``method``, ``dataset``, ``model`` (their names), ``run``
        (the directory's name), ``sweep`` (the ``ratt sweep`` folder: OUT in
        OUT/DATASET/METHOD/seed-N), or any config key (``method.alpha``, ``alpha``)."""
        if part == "run":
            return self.path.name
        if part == "sweep":
            return self.path.parents[2].name if len(self.path.parents) > 2 else "?"
        if part in NAMED_PARTS:
            return str(self.config.get(NAMED_PARTS[part], {}).get("name", "?"))
        return f"{resolve_key(part)[1]}={self.setting(part)}"

    @cached_property
    def resolved(self) -> dict[str, dict[str, Any]]:
        """``config`` with the defaults filled in (built once per record)."""
        return from_dict(self.config).to_dict()

    def setting(self, key: str) -> Any:
        """The run's value of a config key (``method.alpha`` or ``alpha``; defaults filled in)."""
        section, name = resolve_key(key)
        return self.resolved[section][name]


def _read_json(path: Path, text: str | None = None, line: int = 0) -> Any:
    """``path``'s JSON (None: missing), or ``text``, its line ``line``; one line if malformed."""
    text = read_regular_text(path) if text is None else text
    where = f"{path}{f' line {line}' if line else ''}"
    try:
        data = None if text is None else json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where} is not valid JSON: {exc}") from None
    if line and not isinstance(data, dict):
        raise UserError(f"{where} is not a JSON object (one epoch's metrics)")
    return data


def _flatten_numbers(data: Any, prefix: str = "", depth: int = 0) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(data, dict) and depth < 3:
        for key, value in data.items():
            out.update(_flatten_numbers(value, f"{prefix}{key}.", depth + 1))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix.rstrip(".")] = float(data)
    return out


SOURCES = ("auto", "eval", "summary")


def load_run(path: str | Path, source: str = "auto") -> RunRecord:
    """Read one run directory; ``UserError`` if it is not one.

    ``source`` picks the one evaluation its accuracies come from: ``auto`` (``eval.json`` when it
    holds accuracies, else the training's final test in ``summary.json``), ``eval`` (``eval.json``
    only) or ``summary`` (``summary.json`` only, e.g. the full test set when ``ratt eval`` ran on
    fewer points). A run without that evaluation has no accuracies (reported as unfinished)."""
    if source not in SOURCES:
        raise UserError(f"source {source!r}: choose one of {', '.join(SOURCES)}")
    path = Path(path)
    files = RunFiles(path)
    config_file = files.config
    if not config_file.is_file():
        raise UserError(f"{path} is not a ratt run directory (no config.yaml)")
    record = RunRecord(path=path, config=load_yaml(config_file))
    for number, line in enumerate((read_regular_text(files.metrics) or "").splitlines(), 1):
        if line.strip():
            record.metrics.append(_read_json(files.metrics, line, number))
    summary = _read_json(files.summary)
    if isinstance(summary, dict):
        record.train_seconds = float(summary.get("train_seconds", math.nan))
    evaluation = _read_json(files.eval) if source != "summary" else None
    if isinstance(evaluation, dict) and evaluation.get("accuracy"):
        _take_evaluation(record, evaluation, files.eval, evaluation.get("weights"))
    elif source != "eval":
        if evaluation is not None:
            log.warning("%s holds no accuracies: reporting %s", files.eval, files.summary.name)
        if isinstance(summary, dict) and isinstance(summary.get("test"), dict):
            test = {**summary["test"], "threat": summary.get("threat")}
            _take_evaluation(record, test, files.summary, summary.get("checkpoint"))
    landscape = _read_json(files.landscape)
    if isinstance(landscape, dict):  # the headline numbers `ratt landscape` puts in "summary"
        record.flatness = _flatten_numbers(landscape.get("summary", {}))
        record.noise = landscape.get("noise", {})
    record.versions = _read_json(files.versions) or {}
    record.figures = sorted(path.glob("*.png"))
    return record


def _take_evaluation(record: RunRecord, result: dict[str, Any], path: Path, weights: Any) -> None:
    """Fill ``record``'s accuracies, n, threat and weights from one evaluation's result
    (``eval.json``, or ``summary.json["test"]``); ``UserError`` naming ``path`` when a value
    is not what ratt writes (an accuracy outside [0, 1] or not a number, a bad n)."""
    accuracy = result.get("accuracy")
    if not isinstance(accuracy, dict):
        raise UserError(f"{path}: 'accuracy' is not a table of attack -> accuracy")
    values = {**accuracy, ROBUST: result[ROBUST]} if ROBUST in result else accuracy
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise UserError(f"{path}: the accuracy of {name!r} is {value!r}, not a number in [0, 1]")
    n = result.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise UserError(f"{path}: n={n!r} is not a number of test points")
    threat = result.get("threat")
    record.accuracy = {k: float(v) for k, v in values.items()}
    record.n, record.source = n, path.name
    record.weights = weights if isinstance(weights, str) else None
    if isinstance(threat, dict) and "norm" in threat and "eps" in threat:
        record.threat = (str(threat["norm"]), round(float(threat["eps"]), 8))


def group_runs(records: list[RunRecord], group_by: str = "method") -> dict[str, list[RunRecord]]:
    """Runs grouped by ``group_by``, in first-seen order: a comma list of ``method``,
    ``dataset``, ``model``, ``run``, ``sweep`` or config keys (``method.alpha``)."""
    parts = [p.strip() for p in group_by.split(",")]
    for part in parts:
        if part not in (*NAMED_PARTS, "run", "sweep"):
            try:
                resolve_key(part)
            except UserError:
                raise UserError(
                    f"--group-by {group_by!r}: {part!r} is neither method, dataset, model, run, sweep "
                    "nor a config key (e.g. method.alpha)"
                ) from None
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.key(group_by), []).append(record)
    return groups


def protocol_label(protocol: tuple, differs: tuple[bool, bool, bool] = (True, True, True)) -> str:
    """``n=10; clean, PGD-20; linf eps=0.2``: the parts of a run's evaluation ``protocol``
    (:attr:`RunRecord.protocol`) flagged in ``differs``."""
    n, attacks, threat = protocol
    parts = [f"n={n or '?'}", ", ".join(column_label(a) for a in attacks if a != ROBUST)]
    parts.append(f"{threat[0]} eps={threat[1]:g}" if threat else "threat ?")
    return "; ".join(p for p, show in zip(parts, differs, strict=True) if show)


def split_by_protocol(name: str, records: list[RunRecord]) -> list[tuple[str, list[RunRecord]]]:
    """``[(name, records)]`` when every run of a group was evaluated the same way (test
    points, attacks, threat model); else one ``("name [what differs]", runs)`` per evaluation,
    in first-seen order, so that no row mixes evaluations."""
    parts: dict[tuple, list[RunRecord]] = {}
    for record in records:
        parts.setdefault(record.protocol, []).append(record)
    if len(parts) == 1:
        return [(name, records)]
    differs = tuple(len({p[i] for p in parts}) > 1 for i in range(3))
    return [(f"{name} [{protocol_label(p, differs)}]", rs) for p, rs in parts.items()]


def mixed_groups(groups: dict[str, list[RunRecord]]) -> list[str]:
    """One line per group whose runs were evaluated differently (shown as one row each)."""
    lines = []
    for name, records in groups.items():
        parts = split_by_protocol(name, records)
        if len(parts) > 1:
            labels = "; ".join(f"{label.removeprefix(name).strip()} x{len(rs)}" for label, rs in parts)
            lines.append(f"runs of {name!r} were evaluated differently, one row each: {labels}")
    return lines


def summarize(groups: dict[str, list[RunRecord]]) -> list[dict[str, Any]]:
    """One row per group (per evaluation protocol within a group whose runs were evaluated
    differently, see :func:`split_by_protocol`): number of runs, test points, mean/std of each
    accuracy (every figure of a row from runs evaluated on the same points with the same
    attacks and threat model; the worst case over exactly those attacks), train time and
    flatness."""
    rows = []
    for name, records in (part for group in groups.items() for part in split_by_protocol(*group)):
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


def _setting(record: RunRecord) -> dict[str, Any]:
    """A run's setting as ``{"section.key": value}``: the config with defaults filled in,
    without its seed and the ``run`` section (threads, logging, progress) except the
    checkpoint choice ``run.select``."""
    config = {**record.resolved, "run": {"select": record.resolved.get("run", {}).get("select")}}
    return {f"{section}.{key}": value for section, values in config.items() for key, value in values.items()}


def _context(record: RunRecord) -> str:
    """Everything of a run's setting but its method's name (see :func:`_setting`): two runs
    pair as RAT and its base only when this matches."""
    setting = _setting(record)
    setting.pop("method.name", None)
    return json.dumps(setting, sort_keys=True, default=str)


def mixed_settings(groups: dict[str, list[RunRecord]]) -> list[str]:
    """One line per group whose runs differ in more than their seed (e.g. ``--group-by method``
    over an ablation folder): its mean is over several settings, named by the keys that differ."""
    lines = []
    for name, records in groups.items():
        settings = [_setting(r) for r in records]
        differing = sorted(
            key for key in set().union(*settings) if len({repr(s.get(key)) for s in settings}) > 1
        )
        if differing:
            more = f" and {len(differing) - 5} more" if len(differing) > 5 else ""
            shown = ", ".join(differing[:5]) + more
            lines.append(
                f"runs of {name!r} differ in {shown}: its row is a mean over those settings; "
                "group by more (e.g. --group-by sweep,method) to see each"
            )
    return lines


def comparable(a: RunRecord, b: RunRecord, column: str) -> bool:
    """Whether two runs' ``column`` accuracies may be subtracted: the same test points and threat
    model, and both have the column; the worst case (``robust``) only over the same attacks."""
    if (a.n, a.threat) != (b.n, b.threat):
        return False
    if column == ROBUST:
        return set(a.accuracy) == set(b.accuracy)
    return column in a.accuracy and column in b.accuracy


def paired_columns(matched: list[tuple[RunRecord, RunRecord]]) -> dict[str, Any]:
    """Per accuracy column, :func:`ratt.core.stats.paired_summary` of the differences
    ``run - reference`` over the ``matched`` pairs, for the columns where every pair is
    :func:`comparable`: ``{"columns": [names], name: summary, ...}``."""
    out: dict[str, Any] = {"columns": []}
    for column in accuracy_columns([r.accuracy for pair in matched for r in pair]):
        if all(comparable(run, reference, column) for run, reference in matched):
            out[column] = paired_summary(
                [run.accuracy[column] - ref.accuracy[column] for run, ref in matched]
            )
            out["columns"].append(column)
    return out


def rat_effects(records: list[RunRecord]) -> list[dict[str, Any]]:
    """RAT minus its base method, paired by (dataset, seed) among runs whose settings differ in
    nothing but the method (so an ablation's ``rat_trades taylor=none`` is not paired with
    TRADES as if it were RAT, and TRADES with label smoothing is not RAT's base): per pair of
    methods and setting, the mean and sample std over seeds of each accuracy difference, and how
    many seeds RAT was ahead. Two runs of one method, seed and setting (a repeated run) make
    that seed ambiguous: it is left out, with a warning.

    Returns:
        rows ``{"dataset", "method", "base", "seeds": [s], column: {"diffs": [..], "mean",
        "std", "ahead", "behind", "p", "t_p", "detectable"}}`` (see
        :func:`ratt.core.stats.paired_summary`) with differences as fractions (0.01 = one
        point), a column only where every pair is :func:`comparable`;
        ``"setting"`` (the RAT runs' sweep folders) where one pair of methods has rows for
        several settings.
    """
    cells: dict[tuple[str, str, int | None, str], list[RunRecord]] = {}
    for record in records:
        cells.setdefault((record.dataset, record.method, record.seed, _context(record)), []).append(record)
    for (_, method, seed, _), found in cells.items():
        if len(found) > 1:
            log.warning(
                "RAT's effect: %d runs of %s seed %s with one setting (%s): that seed is not paired",
                len(found), method, seed, ", ".join(str(r.path) for r in found),
            )  # fmt: skip
    by_cell = {key: found[0] for key, found in cells.items() if len(found) == 1}
    pairs: dict[tuple[str, str, str, str], list[tuple[RunRecord, RunRecord]]] = {}
    for (dataset, method, seed, context), record in by_cell.items():
        base = rat_base(method)
        if base is not None and (dataset, base, seed, context) in by_cell:
            reference = by_cell[(dataset, base, seed, context)]
            pairs.setdefault((dataset, method, base, context), []).append((record, reference))
    settings = Counter((dataset, method, base) for dataset, method, base, _ in pairs)
    rows = []
    for (dataset, method, base, _), matched in pairs.items():
        matched.sort(key=lambda pair: pair[0].seed or 0)
        row: dict[str, Any] = {"dataset": dataset, "method": method, "base": base,
                               "seeds": [rat.seed for rat, _ in matched]}  # fmt: skip
        if settings[(dataset, method, base)] > 1:
            row["setting"] = ", ".join(sorted({rat.part("sweep") for rat, _ in matched}))
        row.update(paired_columns(matched))
        rows.append(row)
    return rows
