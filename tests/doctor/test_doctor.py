"""``ratt doctor --gpu``: the dry run (the same script on the CPU with tiny sizes) writes one
table and a JSON file with every check passing; failing checks are rows and exit 1; the
checks themselves catch what they are for; user errors are one line."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch

from ratt import data
from ratt.bench.flops import step_flops
from ratt.cli import main
from ratt.doctor import checks, dry_run_sizes, gpu_quick_sizes, gpu_sizes, run
from ratt.doctor.result import CheckWarning, SkipCheck, run_check
from ratt.doctor.synthetic import NAME, make_split, synthetic_batch, template_classifier

CUDA_CHECKS = 12  # 4 precision/memory-format combos + 8 other checks
VARIANTS = ["fp32", "bf16", "bf16+cl", "bf16+cl+fused", "bf16+cl+compile", "bf16+cl+compile-ro"]
CELLS = len(dry_run_sizes().bench_models) * len(VARIANTS)  # bench rows: (model, variant)
METHOD_LINES = CELLS * len(dry_run_sizes().bench_methods)  # table lines of the bench section


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """``ratt doctor --gpu --dry-run`` in a fresh process: (stdout, JSON document, .md text)."""
    out = tmp_path_factory.mktemp("doctor") / "doctor.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ratt", "doctor", "--gpu", "--dry-run", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text()), out.with_suffix(".md").read_text()


def test_dry_run_passes_every_check_of_every_section(dry_run):
    _, doc, _ = dry_run
    assert doc["format"] == "ratt-doctor-1" and doc["dry_run"] and doc["ok"]
    sections = [r["section"] for r in doc["results"]]
    assert sections == ["cuda"] * CUDA_CHECKS + ["run"] + ["bench"] * CELLS + ["profile"] * 2 + [
        "epoch",
        "aa",
    ]
    assert doc["complete"]
    bad = {r["name"]: r["detail"] for r in doc["results"] if r["status"] != "pass"}
    assert not bad
    assert doc["counts"]["pass"] == len(doc["results"])
    assert doc["environment"]["device"] == "cpu" and doc["environment"]["torch"] == torch.__version__


def test_dry_run_issue_34_rows_add_up(dry_run):
    """profile: the categories add up to the wall time; epoch: every step counted, the parts
    add up to the epoch, the overhead is its wall over steps x the bench step; aa: every
    stage timed, the 10,000-point figure is the sum of the stages' times at their rates."""
    _, doc, _ = dry_run
    rows = {r["section"]: r["data"] for r in doc["results"]}
    profiles = [r["data"] for r in doc["results"] if r["section"] == "profile"]
    assert [p["method"] for p in profiles] == ["trades", "rat_trades"]
    for p in profiles:
        assert sum(p["fraction"][c] for c in ("matmul/conv", "norm/elementwise", "other", "idle")) == (
            pytest.approx(1)
        )
    epoch, sizes = rows["epoch"], dry_run_sizes()
    assert epoch["steps"] == sizes.epoch_steps
    assert sum(epoch["parts"].values()) == pytest.approx(epoch["wall"])
    assert epoch["overhead"] == pytest.approx(epoch["wall"] / (epoch["steps"] * epoch["bench_step"]) - 1)
    rates = rows["aa"]["stage_images_per_s"]
    assert list(rates) == ["apgd-ce", "apgd-t", "fab-t", "square"] and all(r > 0 for r in rates.values())
    assert rows["aa"]["full_test_seconds_every_point_every_stage"] == pytest.approx(
        sum(10_000 / r for r in rates.values())
    )


def test_dry_run_table_has_one_line_per_check_and_per_benchmarked_method(dry_run):
    stdout, doc, markdown = dry_run
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("section"))
    table = lines[header + 2 : header + 2 + CUDA_CHECKS + METHOD_LINES + 1 + 4]
    for result in doc["results"]:
        assert any(result["name"] in line and result["status"] in line for line in table), result["name"]
    assert sum(line.startswith("bench") for line in table) == METHOD_LINES
    assert "TFLOP/s" in lines[header] and "img/s" in lines[header]
    assert markdown.startswith("| section | check | status |")
    assert markdown.count("\n| bench ") == METHOD_LINES


def test_dry_run_bench_numbers_follow_the_flop_model(dry_run):
    _, doc, _ = dry_run
    sizes = dry_run_sizes()
    cells = [r for r in doc["results"] if r["section"] == "bench"]
    eager = [v for v in VARIANTS if "compile" not in v]
    assert [c["data"]["variant"] for c in cells] == eager * len(sizes.bench_models) + [
        v for v in VARIANTS if "compile" in v
    ] * len(sizes.bench_models)  # compiles last: a time limit cuts them first
    for cell in cells:
        model, batch = cell["data"]["model"], cell["data"]["batch"]
        for method, row in cell["data"]["time"].items():
            flops = step_flops(model, method, batch, sizes.bench_steps)
            assert row["flops_per_step"] == flops
            assert row["tflops_per_second"] == pytest.approx(flops / row["seconds"] / 1e12)
            assert row["images_per_second"] == pytest.approx(batch / row["seconds"])
        ratio = cell["data"]["time"]["rat_trades"]["seconds"] / cell["data"]["time"]["trades"]["seconds"]
        assert doc["rat_trades_ratios"][cell["name"]]["rat_trades/trades"] == pytest.approx(ratio)
    compiled = [c for c in cells if c["data"]["compile"]]
    assert compiled and all(c["data"]["time"][m]["compiled"] for c in compiled for m in sizes.bench_methods)


def test_dry_run_resume_is_bit_identical(dry_run):
    _, doc, _ = dry_run
    run_row = next(r for r in doc["results"] if r["section"] == "run")
    assert run_row["data"]["max_abs_diff_last"] == 0.0 and run_row["data"]["max_abs_diff_best"] == 0.0
    assert run_row["data"]["interrupt"] < run_row["data"]["steps"]


def test_gpu_without_cuda_says_to_use_dry_run(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    assert main(["doctor", "--gpu", "--out", str(tmp_path / "d.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dry-run" in err
    assert not (tmp_path / "d.json").exists()


@pytest.mark.parametrize("argv", [["doctor"], ["doctor", "--gpu", "--dry-run", "--only", "cuda,bnech"]])
def test_user_errors_are_one_line(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "d.json")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _raise(exc):
    raise exc


def test_failing_and_crashing_checks_are_rows_and_exit_1(monkeypatch, tmp_path, capsys):
    fake = [
        ("fine", lambda: ("ok", {"x": 1})),
        ("wrong", lambda: _raise(AssertionError("g differs\nmore"))),
        ("crash", lambda: _raise(RuntimeError("CUDA error: out of memory"))),
        ("n/a", lambda: _raise(SkipCheck("needs 2 GPUs"))),
        ("fallback", lambda: _raise(CheckWarning("fell back", {"compiled": False}))),
    ]
    monkeypatch.setattr(run, "device_checks", lambda sizes, work: fake)
    out = tmp_path / "d.json"
    assert main(["doctor", "--gpu", "--dry-run", "--only", "cuda", "--quiet", "--out", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert [r["status"] for r in doc["results"]] == ["pass", "fail", "error", "skip", "warn"]
    assert [r["detail"] for r in doc["results"]][:3] == [
        "ok",
        "g differs",
        "RuntimeError: CUDA error: out of memory",
    ]
    assert not doc["ok"] and doc["results"][4]["data"] == {"compiled": False}
    assert "1 pass, 1 warn, 1 fail, 1 error, 1 skip" in capsys.readouterr().out


def test_a_doctor_killed_part_way_leaves_the_rows_it_finished(monkeypatch, tmp_path):
    fake = [
        ("first", lambda: ("ok", {"x": 1})),
        ("second", lambda: ("ok", {"x": 2})),
        ("hung", lambda: _raise(KeyboardInterrupt())),  # a kill is not a row: the doctor stops
    ]
    monkeypatch.setattr(run, "device_checks", lambda sizes, work: fake)
    out = tmp_path / "d.json"
    with pytest.raises(KeyboardInterrupt):
        run.run_doctor(run.DoctorOptions(dry_run=True, sections=("cuda",), out=out))
    doc = json.loads(out.read_text())
    assert not doc["complete"] and [r["name"] for r in doc["results"]] == ["first", "second"]
    assert out.with_suffix(".md").read_text().count("\n| cuda ") == 2


def test_a_failed_torchrun_is_named_by_the_workers_error_not_its_banner():
    from ratt.doctor.ddp import failure_line

    stderr = (
        '[rank0]: Traceback (most recent call last):\n[rank0]:   File "x.py", line 1\n'
        "[rank0]: RuntimeError: one of the variables needed for gradient computation\n"
        "E1126 failed (exitcode: 1) local_rank: 0\ntorch...errors.ChildFailedError: \n"
        + "=" * 60
        + "\nratt.doctor.ddp FAILED\n"
        + "-" * 60
        + "\n  exitcode  : 1\n"
        + "=" * 60
        + "\n"
    )
    assert failure_line(stderr).startswith("[rank0]: RuntimeError: one of the variables")
    assert failure_line("just this\n" + "=" * 10) == "just this" and failure_line("") == "no output"


def test_quick_sizes_run_every_check_and_cell_smaller():
    full, quick = gpu_sizes(), gpu_quick_sizes()
    assert set(quick.bench_models) == set(full.bench_models)
    assert quick.bench_methods == full.bench_methods and quick.check_model == full.check_model
    assert quick.bench_repeats < full.bench_repeats and quick.run_steps < full.run_steps
    assert quick.run_steps % quick.run_steps_per_epoch == 0 and 0 < quick.run_interrupt < quick.run_steps
    assert quick.run_interrupt % quick.run_steps_per_epoch != 0  # mid-epoch, like the full run's


def test_a_check_cannot_leave_global_torch_state_behind():
    # a known start, whatever an earlier in-process run left (tests run in random order)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    threads, rng = torch.get_num_threads(), torch.get_rng_state()

    def meddle():
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)
        torch.rand(3)
        return "", {}

    try:
        assert run_check("cuda", "meddle", meddle).status == "pass"
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng)
    finally:
        torch.use_deterministic_algorithms(before)


# ----------------------------------------------------------- the checks catch what they are for
def test_rat_stats_check_catches_a_relative_error_of_1e_4(monkeypatch):
    original = checks.last_layer_grad_stats
    monkeypatch.setattr(checks, "last_layer_grad_stats", lambda h, z, y: original(h, z, y) * (1 + 1e-4))
    with pytest.raises(AssertionError, match=r"\|g - g_ref\|"):
        checks.check_rat_stats(torch.device("cpu"), dry_run_sizes())


def test_awp_check_catches_a_restore_that_is_off_by_one_ulp(monkeypatch):
    from ratt.methods.awp import AWP

    original = AWP.restore

    def sloppy(self):
        perturbed = self._perturbed
        original(self)
        if perturbed:
            weight = next(iter(self.model.parameters()))
            with torch.no_grad():
                weight.view(-1)[0] = torch.nextafter(weight.view(-1)[0], torch.tensor(1.0))

    monkeypatch.setattr(AWP, "restore", sloppy)
    with pytest.raises(AssertionError, match="differs after the restore"):
        checks.check_awp_restore(torch.device("cpu"), dry_run_sizes())


def test_projection_check_catches_an_attack_that_leaves_the_ball(monkeypatch):
    cases = checks._attack_cases()
    name, threat, attack = cases[0]
    leaky = (name, threat, lambda m, x, y: (attack(m, x, y) + 2 * threat.eps).clamp(0, 1))
    monkeypatch.setattr(checks, "_attack_cases", lambda: [leaky])
    with pytest.raises(AssertionError, match="> eps"):
        checks.check_attack_projection(torch.device("cpu"), dry_run_sizes())


def test_one_step_catches_a_method_whose_loss_is_not_finite(monkeypatch):
    from ratt.methods.standard import TRADES

    monkeypatch.setattr(
        TRADES, "loss_terms", lambda self, z_nat, z_adv, y: (z_nat.sum() * float("nan"),) * 2 + ({},)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AssertionError, match="not finite"):
            checks.one_step("trades", "fp32", False, torch.device("cpu"), dry_run_sizes())


# ---------------------------------------------------------------------------- synthetic data
def test_synthetic_data_is_cifar_shaped_reproducible_and_needs_no_files():
    info = data.info(NAME)
    assert info.shape == (3, 32, 32) and info.num_classes == 10
    a, b = make_split(64, 5), make_split(64, 5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].dtype == torch.uint8
    assert not torch.equal(make_split(64, 6)[0], a[0])
    test = data.load(NAME, "test", download=False)
    assert test.images.shape[1:] == (3, 32, 32) and set(test.labels.tolist()) == set(range(10))


def test_template_classifier_separates_the_synthetic_classes():
    x, y = synthetic_batch(256)
    accuracy = (template_classifier()(x).argmax(1) == y).float().mean()
    assert accuracy > 0.99
