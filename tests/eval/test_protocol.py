"""``ratt eval --protocol paper``: the published tables' attacks at their radii, labelled."""

from __future__ import annotations

import pytest
import torch

from ratt.cli import main
from ratt.errors import UserError
from ratt.eval import EvalOptions, evaluate_run
from ratt.eval import protocol as paper
from ratt.eval.suite import EvalResult


def test_the_papers_radii_and_steps():
    white, aa = paper.paper_threats("cifar10")
    assert (white.norm, white.eps, white.step, white.steps) == ("linf", 0.031, 0.003, 20)
    assert aa.eps == 8 / 255
    svhn, aa_svhn = paper.paper_threats("svhn")
    assert (svhn.eps, svhn.step) == (4 / 255, 1 / 255) and aa_svhn.eps == 8 / 255
    with pytest.raises(UserError, match="no published protocol"):
        paper.paper_threats("digits")
    with pytest.raises(UserError, match="drop --eps"):
        EvalOptions(protocol="paper", eps="8/255").check()


def test_merged_results_take_the_worst_case_over_both_evaluations():
    a = EvalResult({"clean": 0.75}, {"clean": 0.0}, 0.75, 4, {"clean": torch.tensor([1, 1, 1, 0]).bool()})
    b = EvalResult({"aa": 0.5}, {"aa": 1.0}, 0.5, 4, {"aa": torch.tensor([1, 0, 1, 1]).bool()})
    merged = a.merged(b)
    assert merged.accuracy == {"clean": 0.75, "aa": 0.5} and merged.robust == 0.5  # points 0 and 2


def test_a_run_evaluated_with_the_paper_protocol_says_so(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    tiny = ["epochs=1", "train_limit=64", "steps=1", "val_attack_steps=1", "test_attacks=clean", "threads=1"]
    assert main(["train", "--quiet", "--out", str(run), *tiny]) == 0
    monkeypatch.setitem(paper.RADII, "digits", (0.031, 0.003))  # as if digits had a published table
    report = evaluate_run(run, EvalOptions(protocol="paper", n=20, progress=False))
    assert set(report.result.accuracy) == {"clean", "pgd20", "cw20", "aa"}
    assert report.threat.eps == 0.031 and report.threat.step == 0.003
    assert "AutoAttack at eps 0.03137" in report.protocol
    worst = torch.stack(list(report.result.correct.values())).all(0).float().mean().item()
    assert report.result.robust == worst
    assert report.to_dict()["protocol"] == report.protocol and "paper protocol" in report.header()
