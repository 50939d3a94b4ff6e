"""``ratt export RUN --robustbench DIR``: a run's model in RobustBench's layout.

Writes ``DIR/DATASET/THREAT/NAME.pt`` (``{"state_dict": ...}``, the normalization inside the
model as RobustBench expects, loaded with ``torch.load(weights_only=True)``) and
``DIR/model_info/DATASET/THREAT/NAME.json`` with RobustBench's fields, filled from the run's
config and its ``eval.json``: the clean and AutoAttack accuracies come from one evaluation
(``ratt eval RUN --attacks clean,aa``), which must have run standard AutoAttack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ratt.core.files import atomic_write, write_json
from ratt.core.units import as_fraction
from ratt.errors import UserError
from ratt.runs import RunFiles, load_checkpoint

THREATS = {"linf": "Linf", "l2": "L2"}
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


def export_robustbench(
    run: str | Path, out: str | Path, name: str | None = None, venue: str = "", test_size: int | None = None
) -> Export:
    """Export ``run``'s evaluated checkpoint for RobustBench (see the module doc).

    Args:
        run: a ratt run directory with ``eval.json`` holding ``clean`` and ``aa``.
        out: RobustBench's model folder (``model_dir``) to write into.
        name: the model's name (default: the run directory's name).
        venue: where it was published, if anywhere.
        test_size: the test split's size; an evaluation on fewer points is said in the footnote.
    Raises:
        UserError: no eval.json, or one without standard AutoAttack.
    """
    files = RunFiles(run)
    if not files.eval.is_file():
        raise UserError(f"{run} has no eval.json: run `ratt eval {run} --attacks clean,aa` first")
    evaluation = json.loads(files.eval.read_text())
    accuracy = evaluation.get("accuracy", {})
    if "aa" not in accuracy or "clean" not in accuracy:
        raise UserError(
            f"{files.eval} has no standard AutoAttack result: run `ratt eval {run} --attacks clean,aa`"
        )
    weights_file = evaluation.get("weights_file") or str(files.weights("best"))
    model, config = load_checkpoint(weights_file)
    threat = evaluation.get("threat", {})
    norm = THREATS.get(threat.get("norm", config.attack.norm), "Linf")
    name = name or Path(run).resolve().name
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
