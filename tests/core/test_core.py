"""The low-level helpers: weight noise, statistics, tables, atomic files, units, devices."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from torch import nn

from ratt.core.env import resolve_device
from ratt.core.files import atomic_write, json_ready, write_json
from ratt.core.stats import (
    detectable_difference,
    mean_std,
    paired_summary,
    paired_t_test,
    student_t_cdf,
    student_t_quantile,
)
from ratt.core.table import markdown_table, text_table
from ratt.core.units import as_fraction, parse_magnitude
from ratt.core.weights import perturbable_weights, restored, set_noisy_weights, weight_noise
from ratt.errors import UserError


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_perturbable_weights_are_the_tensors_with_two_or_more_dims():
    names = list(perturbable_weights(_net()))
    assert names == ["0.weight", "3.weight"]  # conv and linear weights; no bias, no BatchNorm


def test_relative_weight_noise_has_the_requested_std():
    weight = torch.randn(200, 300) * 3.0
    gen = torch.Generator().manual_seed(0)
    noise = weight_noise(weight, 0.1, relative=True, generator=gen)
    rms = weight.square().mean().sqrt()
    # 60,000 draws: the sample std is within 1% of sigma * rms with overwhelming probability
    assert noise.std().item() == pytest.approx(0.1 * rms.item(), rel=0.01)
    absolute = weight_noise(weight, 0.1, relative=False, generator=gen)
    assert absolute.std().item() == pytest.approx(0.1, rel=0.01)


def test_noisy_weights_are_origin_plus_noise_and_restored_bit_for_bit():
    model = _net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = perturbable_weights(model)
    origin = {n: p.detach().clone() for n, p in params.items()}
    with restored(model):
        model.eval()
        set_noisy_weights(params, origin, 0.05, torch.Generator().manual_seed(1))
        gen = torch.Generator().manual_seed(1)
        for name, weight in origin.items():  # the same draws, in the same order
            expected = weight + weight_noise(weight, 0.05, True, gen)
            assert torch.equal(params[name].detach(), expected)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_mean_std_matches_the_statistics_module_and_skips_missing_values():
    values = [0.1, 0.25, 0.7, 0.33]
    assert mean_std(values) == (statistics.fmean(values), statistics.stdev(values))
    assert mean_std([*values, None, math.nan]) == mean_std(values)
    mean, std = mean_std([0.5])
    assert mean == 0.5 and math.isnan(std)
    assert mean_std([0.5], single_std=0.0) == (0.5, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def test_tables_align_columns():
    text = text_table(["a", "bb"], [["xxx", "1"], ["y", "22"]], right=[False, True])
    assert text.splitlines() == ["a    bb", "---  --", "xxx   1", "y    22"]
    assert markdown_table(["a", "b"], [["1", "2"]]).splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "f.json"
    write_json(target, {"a": 1})

    def failing(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write("{half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == '{\n "a": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary file left


def test_json_ready_turns_tuples_to_lists_and_nan_to_null():
    assert json_ready({"x": (1.0, math.nan), 2: [math.inf]}) == {"x": [1.0, None], "2": [None]}


def test_magnitudes_read_fractions_and_refuse_pixel_units():
    assert parse_magnitude("8/255") == 8 / 255
    assert parse_magnitude(0.031) == 0.031
    assert as_fraction(8 / 255) == "8/255 (0.0314)"
    for bad in ("8", "-0.1", "nan", "abc", "1/0"):
        with pytest.raises(UserError):
            parse_magnitude(bad)


def test_devices_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="not a device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            resolve_device("cuda")


def test_student_t_cdf_matches_the_closed_forms_of_one_and_two_degrees_of_freedom():
    # df = 1 is Cauchy, df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2)): independent of the series
    for t in (-40.0, -2.5, -0.3, 0.0, 0.4, 1.0, 3.7, 1e3):
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-15)
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-15)
    with pytest.raises(ValueError):
        student_t_cdf(1.0, 0)


def test_student_t_cdf_and_quantile_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 8, 19, 60):
        for t in (-6.0, -2.1, -0.5, 0.0, 0.25, 1.3, 2.776, 9.0):
            assert student_t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-13)
        for p in (0.025, 0.3, 0.8, 0.975, 0.999):
            assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10)
    differences = [0.01, -0.03, -0.05, -0.02, -0.04]
    assert paired_t_test(differences) == pytest.approx(stats.ttest_1samp(differences, 0).pvalue, rel=1e-10)


def test_detectable_difference_is_found_with_about_the_stated_power():
    # simulate paired differences whose true mean is the detectable difference (std 1, 5 pairs):
    # the paired t-test at 5 % must reject in about 80 % of the draws (the formula's central-t
    # approximation gives 0.79 for 5 pairs; a normal-quantile formula would give about 0.6)
    generator = np.random.default_rng(0)
    n, trials = 5, 20000
    shift = detectable_difference(1.0, n)
    draws = generator.normal(shift, 1.0, size=(trials, n))
    rejected = sum(paired_t_test(row) < 0.05 for row in draws)
    assert 0.77 < rejected / trials < 0.81
    assert math.isnan(detectable_difference(1.0, 1))
    assert math.isnan(detectable_difference(0.0, 3))  # equal differences measured no spread
    assert math.isnan(paired_t_test([0.1]))


def test_paired_summary_of_two_differences_matches_the_closed_form():
    # two pairs: t = mean / (std / sqrt 2) = 2 with 1 degree of freedom, whose two-sided p is
    # 1 - (2 / pi) atan(2) (the Cauchy distribution); the sign test of 2 of 2 ahead is 2 / 4
    summary = paired_summary([0.01, 0.03])
    assert summary["mean"] == pytest.approx(0.02) and summary["std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert (summary["ahead"], summary["behind"], summary["p"]) == (2, 0, 0.5)
    assert summary["t_p"] == pytest.approx(1 - 2 / math.pi * math.atan(2.0), rel=1e-12)
    quantiles = math.tan(math.pi * (0.975 - 0.5)) + math.tan(math.pi * (0.8 - 0.5))  # Cauchy quantiles
    assert summary["detectable"] == pytest.approx(quantiles * 0.01, rel=1e-9)
    tied = paired_summary([0.0, -0.01, 0.02])
    assert (tied["ahead"], tied["behind"], tied["p"]) == (1, 1, 1.0)  # a tie counts for neither side


def test_differences_equal_up_to_float32_rounding_measured_no_spread():
    # accuracies on 1,000 points as ratt stores them (float32): the three pairs differ by exactly
    # 8 points each, but the float differences are ~1e-8 apart, which a t-test would read as
    # p ~ 1e-11 and "0.0 points detectable"
    rat = np.float32([0.734, 0.722, 0.745]).astype(float)
    base = np.float32([0.742, 0.730, 0.753]).astype(float)
    differences = list(rat - base)
    assert len(set(differences)) > 1  # not equal as floats
    summary = paired_summary(differences)
    assert summary["std"] == 0.0 and math.isnan(summary["t_p"]) and math.isnan(summary["detectable"])
    assert math.isnan(paired_t_test(differences))
    # one test point of real spread (1e-3 here, 1e-4 on 10,000 points) stays a spread
    real = paired_summary([-0.008, -0.007, -0.008])
    assert real["std"] > 0 and real["t_p"] < 0.01 and math.isfinite(real["detectable"])


def test_mid_ranks_match_scipys_average_ranks():
    import numpy as np
    from scipy.stats import rankdata

    from ratt.core.stats import mid_ranks

    rng = np.random.default_rng(0)
    for values in ([], [3.0], [2.0, 2.0, 1.0, 5.0, 2.0], rng.integers(0, 5, 40).astype(float).tolist(),
                   [1.0, float("inf"), 0.5, float("inf")]):  # fmt: skip
        assert mid_ranks(values) == rankdata(values, method="average").tolist()
