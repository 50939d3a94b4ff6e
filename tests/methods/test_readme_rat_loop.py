"""The README's "RAT in your own training loop" snippet, run verbatim, is RAT: it crafts x_adv
on noisy weights and gives ``method=rat_trades``'s loss on the same batch and seed."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ratt.attacks import ThreatModel
from ratt.config import MethodConfig
from ratt.data import load
from ratt.methods import build_method
from ratt.models import create_model

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    text = README.read_text()
    start = text.index("RAT in your own training loop")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_the_readme_rat_snippet_run_verbatim_is_method_rat_trades():
    snippet = _snippet()
    assert "perturbed(" in snippet  # crafts on noisy weights (fails where it crafts on clean ones)
    digits = load("digits", "train")
    x, y = digits.images[:32].float(), digits.labels[:32]
    torch.manual_seed(0)
    model = create_model("smallcnn", 10, (1, 8, 8)).train()
    scope = {"model": model, "x": x, "y": y}
    torch.manual_seed(1)
    exec(compile(snippet, str(README), "exec"), scope)  # noqa: S102  (the README's own code)

    threat = ThreatModel(eps=8 / 255, step=2 / 255, steps=10, random_start=True)
    method = build_method("rat_trades", model, threat, MethodConfig(name="rat_trades"), 10)
    model.zero_grad()
    torch.manual_seed(1)
    loss, _ = method.loss(x, y)
    assert torch.equal(scope["loss"].detach(), loss.detach())
