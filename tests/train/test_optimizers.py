"""``optim.optimizer=adamw`` and ``optim.warmup_epochs``: the update written out by hand in
float64, the warmed-up schedule in closed form, bad values refused, and an AdamW run killed
and resumed bit for bit."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from ratt.config import OptimConfig
from ratt.errors import UserError
from ratt.runs import build_config
from ratt.train.schedules import lr_multiplier, with_warmup
from ratt.train.setup import _optimization
from tests.train.test_resume import _assert_same_run, kill_after_a_checkpoint


def test_warmup_rises_linearly_then_leaves_the_schedule_alone():
    cosine = lr_multiplier("cosine", 10, 4, [], 0.1)
    warmed = with_warmup(cosine, 8)
    for step in range(40):
        rise = min(1.0, (step + 1) / 8)
        assert warmed(step) == pytest.approx(rise * 0.5 * (1 + math.cos(math.pi * step / 40)))
    assert with_warmup(cosine, 0) is cosine  # no warmup: the schedule itself, bit for bit


def test_adamw_step_is_the_decoupled_update_written_out():
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    start = [p.detach().clone() for p in model.parameters()]
    opt = OptimConfig(optimizer="adamw", lr=0.01, weight_decay=0.05, epochs=2, schedule="constant",
                      warmup_epochs=1)  # fmt: skip
    optimizer, scheduler, _ = _optimization(opt, model, steps_per_epoch=4)
    x = torch.rand(5, 3, dtype=torch.float64)
    m = [torch.zeros_like(p) for p in start]
    v = [torch.zeros_like(p) for p in start]
    expected = [p.clone() for p in start]
    for t in range(1, 4):
        optimizer.zero_grad()
        model(x).square().sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        rate = 0.01 * min(1.0, t / 4)  # warmup over 4 steps (1 epoch), then constant
        for i, g in enumerate(grads):
            expected[i] = expected[i] * (1 - rate * 0.05)  # decoupled weight decay
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            m_hat, v_hat = m[i] / (1 - 0.9**t), v[i] / (1 - 0.999**t)
            expected[i] = expected[i] - rate * m_hat / (v_hat.sqrt() + 1e-8)
        optimizer.step()
        scheduler.step()
        for p, e in zip(model.parameters(), expected, strict=True):
            torch.testing.assert_close(p.detach(), e, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("optim.optimizer=adam", "optim.optimizer"),
        ("optim.warmup_epochs=-1", "optim.warmup_epochs must be >= 0"),
        ("optim.warmup_epochs=5", "fewer than optim.epochs"),
        ("optim.nesterov=true", "optim.nesterov applies to optim.optimizer=sgd only"),
    ],
)
def test_bad_optimizer_settings_are_refused(override, says):
    with pytest.raises(UserError, match=says):
        build_config(None, ["optim.epochs=5", "optim.optimizer=adamw", override])


def test_an_adamw_run_with_warmup_killed_and_resumed_is_bit_identical(tmp_path):
    args = ["--quiet", "epochs=3", "train_limit=320", "batch_size=64", "steps=2", "val_attack_steps=2",
            "test_attacks=clean", "threads=1", "checkpoint_every=1", "deterministic=true",
            "optim.optimizer=adamw", "optim.lr=0.003", "optim.weight_decay=0.05",
            "optim.warmup_epochs=1"]  # fmt: skip
    reference, out = tmp_path / "reference", tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ratt", "train", "--out", str(reference), *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    kill_after_a_checkpoint(["train", "--out", str(out), *args], out)
    resumed = subprocess.run([sys.executable, "-m", "ratt", "train", "--resume", str(out)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, reference)
