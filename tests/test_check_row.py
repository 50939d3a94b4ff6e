"""experiments/check_row.py: which reproducibility case applies."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "check_row.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_row", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bit_identity_is_expected_only_on_the_same_machine_kind():
    check = _module()
    same = {k: "x" for k in check.DECIDING}
    assert check.same_machine_kind(same, dict(same)) == (True, "")
    other_isa = {**same, "cpu_capability": "AVX2"}
    exact, why = check.same_machine_kind(same, other_isa)
    assert not exact and "cpu_capability: x vs AVX2" in why
    exact, why = check.same_machine_kind({"torch": "x"}, same)  # an older study: not recorded
    assert not exact and "did not record" in why


def test_the_approximation_script_correlates_like_the_textbook():
    spec = importlib.util.spec_from_file_location("approximation", SCRIPT.with_name("approximation.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.pearson([1, 2, 3, 4], [2, 4, 6, 8]) == 1.0
    assert module.pearson([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert module.mid_ranks([10.0, 30.0, 20.0, 20.0]) == [1.0, 4.0, 2.5, 2.5]  # ratt.core.stats
    row = module.correlations([[[0.1, 0.2, 1.0], [0.2, 0.1, 2.0]], [[0.3, 0.4, 3.0]]])  # two epochs
    assert row["pairs"] == 3 and row["spearman_taylor"] == 1.0
    # within epochs: the epochs' means move against each other, the batches inside with each other
    row = module.correlations([[[1.0, 0.0, 10.0], [2.0, 0.0, 20.0]], [[5.0, 0.0, 0.0], [6.0, 0.0, 10.0]]])
    assert row["pearson_taylor"] < 0 and row["pearson_taylor_within_epoch"] == pytest.approx(1.0)
    assert row["mc_mean"] == 10.0 and row["mc_negative_fraction"] == 0.0 and row["taylor_mean"] == 3.5
