"""Randomness per fixed chunk of points: per-point results independent of the batch size,
equal to each chunk attacked on its own, and resumable chunk by chunk."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ratt import data
from ratt.attacks import Attack, ThreatModel, cw, pgd, run_autoattack
from ratt.eval import PartialStore, chunks, evaluate
from ratt.eval.chunks import CHUNK, chunk_bounds, start_points
from tests.helpers import trained_linear_digits

SEED = 3


class Killed(Exception):
    """Stands in for a kill signal in the middle of an evaluation."""


def _chunk_start(x: torch.Tensor, chunk: int, threat: ThreatModel) -> torch.Tensor:
    """The documented rule, written out: chunk ``c``'s L-inf starts are ``x + eps * (2u - 1)``
    with ``u`` drawn for (restarts, CHUNK) points from a CPU generator seeded
    ``SEED * 1_000_003 + c``; a shorter last chunk takes the first rows."""
    generator = torch.Generator().manual_seed(SEED * 1_000_003 + chunk)
    u = torch.rand((threat.restarts * CHUNK, *x.shape[1:]), generator=generator)
    noise = ((2 * u - 1) * threat.eps).view(threat.restarts, CHUNK, *x.shape[1:])[:, : len(x)]
    return (x + noise).clamp(0, 1)


@pytest.mark.parametrize("attack", ["pgd5", "cw5"])
def test_per_point_results_do_not_depend_on_the_batch_size(attack, digits_test):
    model = trained_linear_digits()
    threat = ThreatModel("linf", 0.1, 0.025, 5, restarts=2)
    correct = {
        size: evaluate(model, digits_test, [attack], threat, batch_size=size, seed=SEED).correct[attack]
        for size in (30, 100, 360)
    }
    assert torch.equal(correct[30], correct[100]) and torch.equal(correct[30], correct[360])
    assert 0.2 < correct[30].float().mean() < 0.9  # the attack decides some points, not all
    # independent: every chunk attacked on its own, from starts drawn by the documented rule
    attack_fn = pgd if attack.startswith("pgd") else cw
    for chunk, (lo, hi) in enumerate(chunk_bounds(len(digits_test))):
        x, y = digits_test.images[lo:hi].float(), digits_test.labels[lo:hi]
        x_adv = attack_fn(model, x, y, threat, start=_chunk_start(x, chunk, threat))
        with torch.no_grad():
            assert torch.equal(model(x_adv).argmax(1) == y, correct[30][lo:hi]), chunk


def test_the_first_chunks_give_the_same_results_alone_as_in_the_whole_set(digits_test):
    """``--n 200`` gives the first 200 points the results they have in a full evaluation."""
    model = trained_linear_digits()
    threat = ThreatModel("l2", 1.0, 0.25, 5)
    full = evaluate(model, digits_test, ["clean", "pgd5"], threat, batch_size=360, seed=SEED)
    first = evaluate(
        model, digits_test.subset(torch.arange(200)), ["clean", "pgd5"], threat, batch_size=64, seed=SEED
    )
    assert torch.equal(first.correct["pgd5"], full.correct["pgd5"][:200])


def test_start_points_are_in_the_ball_and_depend_only_on_the_point():
    x = torch.rand(250, 1, 4, 4)
    for norm, eps in (("linf", 0.1), ("l2", 0.5)):
        threat = ThreatModel(norm, eps, eps / 4, 3, restarts=2)
        whole = start_points(x, torch.arange(250), threat, seed=1)
        assert whole.shape == (2, 250, 1, 4, 4) and whole.min() >= 0 and whole.max() <= 1
        delta = (whole - x).flatten(2)
        size = delta.abs().amax(-1) if norm == "linf" else delta.norm(dim=-1)
        assert (size <= eps + 1e-6).all()
        pick = torch.tensor([3, 120, 249, 7])  # any subset, in any order, gets the same starts
        torch.testing.assert_close(start_points(x[pick], pick, threat, seed=1), whole[:, pick])
        assert not torch.equal(start_points(x, torch.arange(250), threat, seed=2), whole)


def test_resume_after_an_interruption_gives_the_uninterrupted_numbers(digits_test, tmp_path, monkeypatch):
    """Killed mid-chunk with batch 30, resumed with batch 100: the finished chunks are reused,
    the numbers are those of an uninterrupted evaluation with batch 360."""
    model = trained_linear_digits()
    threat = ThreatModel("linf", 0.1, 0.025, 5)
    reference = evaluate(model, digits_test, ["clean", "pgd5"], threat, batch_size=360, seed=SEED)
    original, calls, kill = Attack.run, [], [True]

    def counting(self, model, x, *args, **kwargs):
        calls.append((self.name, len(x)))
        if kill[0] and self.name == "pgd5" and len(calls) > 12 + 5:
            raise Killed  # pgd5 at points 150-179: chunk 0 finished, chunk 1 half done
        return original(self, model, x, *args, **kwargs)

    monkeypatch.setattr(Attack, "run", counting)
    store = PartialStore(tmp_path / "eval_partial", model)
    with pytest.raises(Killed):
        evaluate(model, digits_test, ["clean", "pgd5"], threat, batch_size=30, seed=SEED, store=store)
    calls.clear()
    kill[0] = False
    resumed = evaluate(model, digits_test, ["clean", "pgd5"], threat, batch_size=100, seed=SEED, store=store)
    assert calls == [("pgd5", 100), ("pgd5", 100), ("pgd5", 60)]  # clean done; pgd5 chunks 1-3
    assert resumed.accuracy == reference.accuracy and resumed.robust == reference.robust
    for name in ("clean", "pgd5"):
        assert torch.equal(resumed.correct[name], reference.correct[name])


# ---------------------------------------------------------------- AutoAttack, one chunk at a time
@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    """A small ReLU network on digits (10 classes): unlike a linear model, AutoAttack's random
    choices change its stage counts."""
    torch.manual_seed(0)
    train = data.load("digits", "train")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(model(train.images.float()), train.labels).backward()
        opt.step()
    return model.eval()


@pytest.fixture()
def small_chunks(monkeypatch):
    """Chunks of 20 points, 20 iterations and 100 Square queries instead of 100 and 5000, to
    keep AutoAttack fast on 2 CPU cores: the chunking is under test, not the protocol."""
    autoattack = importlib.import_module("ratt.attacks.autoattack")
    monkeypatch.setattr(autoattack, "STANDARD_ITERATIONS", 20)
    monkeypatch.setattr(autoattack, "STANDARD_SQUARE_QUERIES", 100)
    monkeypatch.setattr(chunks, "CHUNK", 20)


AA_THREAT = ThreatModel("linf", 0.15, 0.0375, 10)


def _aa_per_chunk(model, dataset):
    """AutoAttack on each chunk alone, seeded (SEED, chunk): per-point correctness, stage sums."""
    correct, stages = [], torch.zeros(5, dtype=torch.long)
    for chunk, (lo, hi) in enumerate(chunk_bounds(len(dataset))):
        x, y = dataset.images[lo:hi].float(), dataset.labels[lo:hi]
        result = run_autoattack(model, x, y, AA_THREAT, seed=SEED * 1_000_003 + chunk)
        with torch.no_grad():
            correct.append(model(result.x_adv).argmax(1) == y)
        stages += torch.tensor(result.remaining + [0] * (5 - len(result.remaining)))
    return torch.cat(correct), stages.tolist()


def test_autoattack_runs_chunk_by_chunk_whatever_the_batch_size(mlp, digits_test, small_chunks):
    subset = digits_test.subset(torch.arange(30))  # chunks of 20 and 10 points
    small = evaluate(mlp, subset, ["aa"], AA_THREAT, batch_size=7, seed=SEED)
    correct, stages = _aa_per_chunk(mlp, subset)
    assert torch.equal(small.correct["aa"], correct) and small.stages["aa"] == stages
    assert 0 < small.accuracy["aa"] < 0.5


def test_an_interrupted_autoattack_loses_at_most_one_chunk(
    mlp, digits_test, tmp_path, monkeypatch, small_chunks
):
    """With the default batch (500) all points were one AutoAttack batch, so a kill saved
    nothing; now each finished chunk is saved and only the interrupted one is run again."""
    subset = digits_test.subset(torch.arange(30))  # chunks of 20 and 10 points
    original, calls, kill = Attack.run, [], [True]

    def counting(self, model, x, *args, **kwargs):
        calls.append(len(x))
        if kill[0] and len(calls) == 2:
            raise Killed  # in the second chunk
        return original(self, model, x, *args, **kwargs)

    monkeypatch.setattr(Attack, "run", counting)
    store = PartialStore(tmp_path / "eval_partial", mlp)
    with pytest.raises(Killed):
        evaluate(mlp, subset, ["aa"], AA_THREAT, batch_size=500, seed=SEED, store=store)
    calls.clear()
    kill[0] = False
    resumed = evaluate(mlp, subset, ["aa"], AA_THREAT, batch_size=500, seed=SEED, store=store)
    assert calls == [10]  # only the second chunk (points 20-29) ran again
    correct, stages = _aa_per_chunk(mlp, subset)
    assert torch.equal(resumed.correct["aa"], correct) and resumed.stages["aa"] == stages
