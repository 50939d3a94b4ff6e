"""``ratt export RUN --robustbench DIR``: a run's model in RobustBench's layout.

Writes ``DIR/DATASET/THREAT/NAME.pt`` (``{"state_dict": ...}``, the normalization inside the
model as RobustBench expects, loaded with ``torch.load(weights_only=True)``) and
``DIR/model_info/DATASET/THREAT/NAME.json`` with RobustBench's fields, filled from the run's
config and its ``eval.json``: the clean and AutoAttack accuracies come from one evaluation
(``ratt eval RUN --attacks clean,aa``), which must have run standard AutoAttack.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ratt.attacks import reference_norm
from ratt.config.sections import NORMS
from ratt.core.files import atomic_write, write_json
from ratt.core.units import as_fraction
from ratt.errors import UserError
from ratt.runs import RunFiles, load_checkpoint

ARCHITECTURES = {"smallcnn": "SmallCNN", "preact_resnet18": "PreActResNet-18", "resnet18": "ResNet-18"}


@dataclass
class Export:
    """What :func:`export_robustbench` wrote."""

    weights: Path
    info: Path
    fields: dict[str, Any]


def _architecture(name: str) -> str:
    if name.startswith("wrn-"):
        depth, width = name.split("-")[1:3]
        return f"WideResNet-{depth}-{width}"
    return ARCHITECTURES.get(name, name)


def check_file_name(name: str) -> str:
    """``name`` as one file name (no directory part, no ``..``); ``UserError`` otherwise."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UserError(f"--name {name!r}: give a plain file name (no '/', not '.' or '..')")
    if len(f"{name}.json".encode()) > 255:
        raise UserError(f"--name is {len(name.encode())} bytes long: a file name holds at most 250")
    return name


def _fraction(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def read_evaluation(files: RunFiles, run: str | Path) -> dict[str, Any]:
    """``eval.json`` as ratt writes it (a mapping; ``clean`` and ``aa`` accuracies in [0, 1]);
    a one-line ``UserError`` naming the file otherwise."""
    again = f"run `ratt eval {run} --attacks clean,aa`"
    if not files.eval.is_file():
        raise UserError(f"{run} has no eval.json: {again} first")
    try:
        evaluation = json.loads(files.eval.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{files.eval} is not readable JSON ({type(exc).__name__}): {again} again") from None
    accuracy = evaluation.get("accuracy") if isinstance(evaluation, dict) else None
    if not isinstance(accuracy, dict):
        raise UserError(f"{files.eval} holds no accuracy mapping (not written by ratt eval): {again} again")
    if "aa" not in accuracy or "clean" not in accuracy:
        raise UserError(f"{files.eval} has no standard AutoAttack result: {again}")
    for key in ("clean", "aa"):
        if not _fraction(accuracy[key]) or math.isnan(accuracy[key]):
            raise UserError(f"{files.eval}: accuracy {key}={accuracy[key]!r} is not a fraction in [0, 1]")
    threat = evaluation.get("threat", {})
    eps = threat.get("eps", 0.0) if isinstance(threat, dict) else None
    if not isinstance(evaluation.get("n", 0), int) or not isinstance(eps, (int, float)) or eps != eps:
        raise UserError(f"{files.eval}: its threat or n is malformed: {again} again")
    weights_file = evaluation.get("weights_file")
    if weights_file is not None and not isinstance(weights_file, str):
        raise UserError(f"{files.eval}: weights_file is not a path: {again} again")
    return evaluation


def export_robustbench(
    run: str | Path,
    out: str | Path,
    name: str | None = None,
    venue: str = "",
    test_size: int | None = None,
    *,
    trust_code: bool = False,
) -> Export:
    """Export ``run``'s evaluated checkpoint for RobustBench (see the module doc).

    Args:
        run: a ratt run directory with ``eval.json`` holding ``clean`` and ``aa``.
        out: RobustBench's model folder (``model_dir``) to write into.
        name: the model's name (default: the run directory's name).
        venue: where it was published, if anywhere.
        test_size: the test split's size; an evaluation on fewer points is said in the footnote.
        trust_code: follow a model spec in the weights' metadata that runs code (``file.py:fn``).
    Raises:
        UserError: no eval.json, a malformed one or one without standard AutoAttack; a name
            that is not a plain file name; weights that cannot be loaded or are not finite.
    """
    files = RunFiles(run)
    name = check_file_name(name if name is not None else Path(run).resolve().name)
    evaluation = read_evaluation(files, run)
    accuracy = evaluation["accuracy"]
    weights_file = evaluation.get("weights_file") or str(files.weights("best"))
    model, config = load_checkpoint(weights_file, trust_code=trust_code)
    threat = evaluation.get("threat", {})
    norm = threat.get("norm", config.attack.norm)
    norm = reference_norm(norm) if norm in NORMS else "Linf"
    dataset = config.data.name
    n = int(evaluation.get("n", 0))
    notes = [f"Trained with ratt ({config.method.name}); evaluated by ratt eval on {n} test points."]
    if test_size is not None and n < test_size:
        notes.append(f"Not the full test set ({test_size} points): not comparable with the leaderboard.")
    if config.run.select == "test":
        notes.append("The checkpoint was selected on the test split.")
    fields = {
        "name": name,
        "architecture": _architecture(config.model.name),
        "eps": as_fraction(float(threat.get("eps", 0.0))).split(" ")[0],
        "clean_acc": f"{100 * accuracy['clean']:.2f}",
        "reported": f"{100 * accuracy['aa']:.2f}",
        "autoattack_acc": f"{100 * accuracy['aa']:.2f}",
        "additional_data": bool(config.data.extra),
        "number_forward_passes": 1,
        "dataset": dataset,
        "venue": venue,
        "footnote": " ".join(notes),
    }
    weights_path = Path(out) / dataset / norm / f"{name}.pt"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(weights_path, lambda tmp: torch.save({"state_dict": state}, tmp))
    info_path = Path(out) / "model_info" / dataset / norm / f"{name}.json"
    write_json(info_path, fields)
    return Export(weights_path, info_path, fields)
