"""Every `ratt eval` option is checked before any work: one line, exit 2, no file touched;
`EvalOptions.check` raises the same error (a ValueError) for Python callers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ratt.attacks import ThreatModel
from ratt.cli import main
from ratt.config import TrainConfig
from ratt.data import info as dataset_info
from ratt.errors import UserError
from ratt.eval import EvalOptions, evaluate, evaluate_run, weight_noise_accuracy
from ratt.runs import RunFiles, build_model, save_weights
from tests.helpers import trained_linear_digits


@pytest.fixture()
def run_dir(tmp_path):
    """A run directory holding an untrained model's best and last weights."""
    config = TrainConfig()
    model = build_model(config, dataset_info("digits"))
    meta = {"config": config.to_dict(), "epoch": 0, "ratt_version": "0", "format": "ratt-checkpoint-1"}
    for name in ("best", "last"):
        save_weights(model, tmp_path / "run" / "checkpoints" / f"{name}.safetensors", meta)
    return tmp_path / "run"


BAD_OPTIONS = [
    (["--batch", "-1"], "--batch=-1"),
    (["--batch", "0"], "--batch=0"),
    (["--attacks", ""], "--attacks is empty"),
    (["--attacks", ",,"], "--attacks is empty"),
    (["--attacks", "clean,pgd5,PGD5"], "twice"),
    (["--attacks", "pgd0"], "at least one step"),
    (["--attacks", "pgd"], "unknown attack"),
    (["--n", "0"], "--n=0"),
    (["--n", "-5"], "--n=-5"),
    (["--weight-noise", "abc"], "--weight-noise"),
    (["--weight-noise", ","], "--weight-noise"),
    (["--weight-noise", "-0.5"], "sigma -0.5"),
    (["--weight-noise", "nan"], "sigma nan"),
    (["--weight-noise", "0.1,inf"], "sigma inf"),
    (["--weight-noise", "0.1,0.1"], "repeats"),
    (["--weight-noise", "0.1", "--draws", "0"], "--draws=0"),
    (["--draws", "-2"], "--draws=-2"),
    (["--eps", "8"], "8/255"),
    (["--eps", "abc"], "--eps"),
    (["--eps", "-0.1"], "--eps"),
    (["--eps", "nan"], "--eps"),
    (["--step", "0"], "--step=0"),
    (["--step", "1/0"], "--step"),
    (["--eps-sweep", ","], "--eps-sweep"),
    (["--eps-sweep", "0.1,abc"], "--eps-sweep"),
    (["--eps-sweep", "0.1,2"], "2/255"),
    (["--eps-sweep", "0.1,0.1"], "repeats"),
    (["--seed", "-1"], "--seed=-1"),
    (["--seed", str(2**40)], "--seed"),
    (["--checkpoint", "../best"], "--checkpoint"),
    (["--checkpoint", "epoch-0003"], "no epoch-0003 checkpoint"),
    (["--device", "tpu"], "--device"),
]


@pytest.mark.parametrize("args,needle", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_a_bad_option_is_one_line_exit_2_and_touches_no_file(run_dir, capsys, args, needle):
    previous = '{"accuracy": {"clean": 0.5}, "robust": 0.5}'
    (run_dir / "eval.json").write_text(previous)
    lock = RunFiles(run_dir).lock  # the run directory's lock file may stay behind
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p != lock)
    assert main(["eval", str(run_dir), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and needle in err, err
    assert (run_dir / "eval.json").read_text() == previous  # not wiped, not overwritten
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p != lock) == before


PYTHON_BAD = [
    {"attacks": []},
    {"attacks": "clean,pgd20"},
    {"n": 0},
    {"n": 2.5},
    {"n": True},
    {"batch": -1},
    {"draws": 0},
    {"weight_noise": [-0.5]},
    {"weight_noise": [float("nan")]},
    {"weight_noise": ["0.1"]},
    {"eps": "8"},
    {"step": 0},
    {"norm": "l1"},
    {"eps_sweep": []},
    {"seed": -3},
    {"checkpoint": "a/b"},
]


@pytest.mark.parametrize("fields", PYTHON_BAD, ids=[str(f) for f in PYTHON_BAD])
def test_eval_options_check_raises_a_value_error_for_python_callers(fields):
    with pytest.raises(ValueError) as caught:
        EvalOptions(**fields).check()
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)


def test_evaluate_run_checks_the_options_before_reading_the_checkpoint(tmp_path):
    """A bad option is reported even when the checkpoint does not exist: nothing is read first."""
    with pytest.raises(UserError, match="--batch"):
        evaluate_run(tmp_path / "missing", EvalOptions(batch=0))


def test_good_options_pass_the_check():
    EvalOptions(
        attacks=["clean", "pgd20", "cw10", "aa"], eps="8/255", step=0.01, norm="l2", n=10, batch=7, seed=0,
        eps_sweep=[0.1, 0.2], weight_noise=[0.0, 0.01], draws=1, checkpoint="epoch-0010",
    ).check()  # fmt: skip
    EvalOptions(eps_sweep="auto").check()


def test_evaluate_refuses_to_report_nan(digits_test):
    """No attack, no point or a batch size < 1 is an error, never a NaN or a 0% worst case."""
    model = trained_linear_digits()
    threat = ThreatModel("linf", 0.1, 0.025, 2)
    with pytest.raises(UserError, match="no attacks"):
        evaluate(model, digits_test, [], threat)
    with pytest.raises(UserError, match="no points"):
        evaluate(model, digits_test.subset(torch.arange(0)), ["clean"], threat)
    with pytest.raises(UserError, match="batch size"):
        evaluate(model, digits_test, ["clean"], threat, batch_size=-1)
    result = evaluate(model, digits_test.subset(torch.arange(5)), ["clean"], threat, batch_size=2)
    assert math.isfinite(result.robust) and result.robust == result.accuracy["clean"]


def test_eval_json_never_holds_nan(run_dir, capsys):
    assert main(["eval", str(run_dir), "--attacks", "clean", "--n", "3", "--quiet", "--json"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    text = (run_dir / "eval.json").read_text()
    for data in (printed, text):
        assert "NaN" not in data and "Infinity" not in data
    assert json.loads(text)["robust"] == json.loads(text)["accuracy"]["clean"]


@pytest.mark.parametrize("sigmas,draws", [([-0.1], 2), ([float("nan")], 2), ([0.1], 0)])
def test_weight_noise_accuracy_refuses_what_would_give_nan_or_nonsense(digits_test, sigmas, draws):
    model, data = trained_linear_digits(), digits_test.subset(torch.arange(4))
    with pytest.raises(UserError):
        weight_noise_accuracy(model, data, sigmas, ThreatModel(), attacks=("clean",), draws=draws)
