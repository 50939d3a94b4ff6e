"""The doctor's issue-34 rows: where a step's time goes (``profile``), a whole epoch against
its steps (``epoch``) and evaluation throughput (``aa``). The arithmetic is checked on
hand-built profiler events; the rows themselves run in the dry run, whose numbers
tests/doctor/test_doctor.py checks against each other."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch.autograd import DeviceType

from ratt.doctor.fast_options import BF16_RTOL, relative_difference
from ratt.doctor.profile import CATEGORIES, _busy, kernel_category, split_time


@pytest.mark.parametrize(
    ("name", "category"),
    [
        (
            "sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64",
            "matmul/conv",
        ),
        ("ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_32x6_nn", "matmul/conv"),
        ("cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1, true>", "norm/elementwise"),
        (
            "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>",
            "norm/elementwise",
        ),
        (
            "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<TensorListMetadata<3>>",
            "norm/elementwise",
        ),
        ("aten::mkldnn_convolution", "matmul/conv"),
        ("aten::native_batch_norm", "norm/elementwise"),
        ("aten::empty_strided", "other"),
    ],
)
def test_kernels_are_sorted_by_what_they_compute(name, category):
    assert kernel_category(name) == category


def test_busy_time_is_the_union_of_the_intervals():
    assert _busy([(0, 10), (5, 15), (20, 30), (22, 25)]) == 25
    assert _busy([]) == 0


@dataclass
class _Range:
    start: float
    end: float

    def elapsed_us(self) -> float:
        return self.end - self.start


@dataclass
class _Event:
    name: str
    start: float = 0.0
    end: float = 0.0
    device_type: DeviceType = DeviceType.CUDA
    device_time_total: float = 0.0

    @property
    def time_range(self) -> _Range:
        return _Range(self.start, self.end)


def test_a_hand_built_cuda_timeline_splits_into_its_categories_and_idle_gaps():
    """100 us of wall: a 40 us GEMM, a 20 us elementwise kernel overlapping it by 10 us on a
    second stream, a 10 us unknown kernel, an optimizer range whose kernels took 10 us: busy 60,
    idle 40; the 70 us of kernel time are scaled onto the 60 busy ones."""
    events = [
        _Event("sm90_xmma_gemm", 0, 40), _Event("vectorized_elementwise_kernel", 30, 50),
        _Event("mystery_kernel", 70, 80),
        _Event("Optimizer.step#SGD.step", device_type=DeviceType.CPU, device_time_total=10),
    ]  # fmt: skip
    split = split_time(events, wall_us=100.0, device=torch.device("cuda"))
    scale = 60 / 70
    assert split["matmul/conv"] == pytest.approx(40 * scale)
    assert split["norm/elementwise"] == pytest.approx(20 * scale)
    assert split["other"] == pytest.approx(10 * scale)
    assert split["idle"] == pytest.approx(40)
    assert sum(split[c] for c in CATEGORIES) == pytest.approx(100)
    assert split["optimizer"] == 10


def test_the_fast_options_check_measures_against_the_largest_weight():
    eager = {"w": torch.tensor([4.0, -2.0]), "b": torch.tensor([0.5]), "steps": torch.tensor([3])}
    fast = {"w": torch.tensor([4.0, -2.0]), "b": torch.tensor([0.52]), "steps": torch.tensor([3])}
    assert relative_difference(eager, fast) == pytest.approx(0.02 / 4)
    assert relative_difference(eager, fast) > BF16_RTOL  # 5e-3 is more than one bf16 step


def test_fused_sgd_and_compile_modes_are_options_of_a_run(tmp_path, capsys):
    from ratt.cli import main
    from ratt.runs import build_config

    config = build_config(None, ["optim.fused=true", "run.compile=true", "run.compile_mode=reduce-overhead"])
    assert config.optim.fused and config.run.compile_mode == "reduce-overhead"
    assert main(["train", "--out", str(tmp_path / "r"), "run.compile_mode=fastest"]) == 2
    assert "reduce-overhead" in capsys.readouterr().err  # the choices, from the one definition


def test_fused_sgd_steps_like_the_default_update_on_the_cpu():
    from ratt.doctor import dry_run_sizes
    from ratt.doctor.fast_options import weights_after

    sizes = dry_run_sizes()
    assert relative_difference(weights_after(sizes), weights_after(sizes, fused=True)) < 1e-6
