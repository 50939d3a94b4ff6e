"""What a CUDA machine must get right, each checked against an independent computation: every
method's step in fp32/bf16 with and without channels_last, RAT's statistics vs CPU float64,
AWP's exact restore, the attacks' projection, torch.compile and its fallback, AutoAttack,
DDP over NCCL through torchrun, a checkpoint moved GPU -> CPU -> GPU, an exact resume."""

from __future__ import annotations

import pytest
import torch

from ratt.bench import BenchConfig, benchmark
from ratt.bench.flops import step_flops
from ratt.doctor import checks, ddp, runs

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(
    "precision,channels_last", [pytest.param(p, cl, id=checks.combo_name(p, cl)) for p, cl in checks.COMBOS]
)
@pytest.mark.parametrize("method", checks.all_methods())
def test_every_method_takes_a_finite_step_on_cuda(method, precision, channels_last, device, sizes):
    checks.one_step(method, precision, channels_last, device, sizes)  # finite, fp32, moved, NHWC, bf16


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_rat_last_layer_stats_on_cuda_match_cpu_float64(precision, device, sizes):
    error, tolerance = checks.rat_stats_error(device, sizes, precision)
    assert error <= tolerance


def test_awp_restores_the_weights_exactly_on_cuda(device, sizes):
    checks.check_awp_restore(device, sizes)


def test_attacks_keep_the_projection_on_cuda(device, sizes):
    checks.check_attack_projection(device, sizes)


def test_autoattack_runs_on_a_tiny_model_on_cuda(device, sizes):
    _, data = checks.check_autoattack(device, sizes)
    assert data["aa"] <= data["pgd20"] <= data["clean"]


def test_compile_runs_and_a_compile_failure_falls_back(sizes, tmp_path):
    _, data = runs.check_compile(sizes, tmp_path)  # a fallback on CUDA is a CheckWarning: a failure here
    assert data["compiled"]


def test_ddp_with_nccl_through_torchrun_at_world_size_1(sizes, tmp_path):
    _, data = ddp.check_ddp(sizes, tmp_path)
    assert data["backend"] == "nccl" and data["relative_diff"] <= ddp.DDP_RTOL


def test_a_gpu_checkpoint_resumes_on_cpu_and_back(sizes, tmp_path):
    runs.check_checkpoint_devices(sizes, tmp_path)


def test_an_interrupted_gpu_run_resumes_bit_for_bit(sizes, tmp_path):
    _, data = runs.check_interrupted_run(sizes, tmp_path)
    assert data["max_abs_diff_last"] == 0.0


def test_bench_on_cuda_reports_memory_throughput_and_flop_rate():
    config = BenchConfig(
        methods=["trades", "rat_trades"], model="wrn-16-2", batch=32, steps=2, device="cuda", repeats=2
    )
    out = benchmark(config)
    for name, row in out["time"].items():
        flops = step_flops("wrn-16-2", name, 32, 2)
        assert row["tflops_per_second"] == pytest.approx(flops / row["seconds"] / 1e12)
        assert row["images_per_second"] == pytest.approx(32 / row["seconds"])
        assert out["memory"][name]["step_bytes"] > 0
        assert out["memory"][name]["peak_bytes"] >= out["memory"][name]["step_bytes"]
