"""The FLOP cost model (docs/scaling.md): forward FLOPs against hand counts, the pass counts of
every method against torch's own FLOP formulas over a real training step, and the docs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ratt.bench import BenchConfig, bench_methods
from ratt.bench.flops import forward_flops, has_flop_model, model_forward_flops, step_flops, step_passes
from ratt.bench.steps import make_step
from ratt.cli import main
from ratt.methods import METHODS

DOCS = Path(__file__).resolve().parents[2] / "docs"
ALL_METHODS = list(METHODS) + [f"awp+{name}" for name in METHODS]


def test_forward_flops_of_a_tiny_conv_net_match_a_hand_count():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # out 4x8x8: 2 * 256 * 3*3*3 = 13,824
        nn.Conv2d(4, 8, 3, stride=2, padding=1),  # out 8x4x4: 2 * 128 * 4*3*3 = 9,216
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 2 * 128 * 1*3*3 = 2,304
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(128, 10),  # 2 * 10 * 128 = 2,560
    )
    net.train()
    assert forward_flops(net, (3, 8, 8)) == 13_824 + 9_216 + 2_304 + 2_560
    assert net.training  # mode restored


def test_cifar_models_have_the_forward_flops_of_docs_scaling_md():
    text = (DOCS / "scaling.md").read_text()
    assert model_forward_flops("preact_resnet18", 10, (3, 32, 32)) == 1_110_845_440
    assert model_forward_flops("wrn-34-10", 10, (3, 32, 32)) == 13_317_812_736
    assert "PreActResNet-18 1.111 GFLOPs, WRN-34-10\n13.318 GFLOPs" in text


def test_docs_script_uses_the_library_and_prints_the_tables_numbers():
    spec = importlib.util.spec_from_file_location("scaling_flops", DOCS / "scaling_flops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.METHODS == {
        "trades": 27,
        "rat_trades": 27,
        "awp+trades": 33,
        "awp+rat_trades": 33,
        "pgd_at": 23,
    }
    text = (DOCS / "scaling.md").read_text()
    for model, label in (("preact_resnet18", "PreActResNet-18"), ("wrn-34-10", "WRN-34-10")):
        for method in ("trades", "awp+trades", "pgd_at"):
            rows = [line for line in text.splitlines() if line.startswith(f"| {label} | {method}")]
            tflop = step_flops(model, method, 128, 10, numerics="paper") / 1e12
            assert len(rows) == 1 and f"| {tflop:.2f} |" in rows[0], (model, method, rows)


class _CountFlops(TorchDispatchMode):
    """Sums torch's own FLOP formulas (torch.utils.flop_counter) over every op that has one."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


@pytest.mark.parametrize("method", ALL_METHODS)
def test_step_passes_match_the_flops_a_real_step_executes(method):
    """Exact, for a step after the first: the model counts the first convolution's input
    gradient in every training backward, which autograd skips (the input needs no gradient):
    2 * 16 * 8*8 * 3*3*3 FLOPs per image for wrn-10-1's first convolution on 3x8x8 inputs."""
    batch, steps, shape = 2, 2, (3, 8, 8)
    config = BenchConfig(methods=[method], model="wrn-10-1", batch=batch, steps=steps, shape=shape)
    step, x, y = make_step(config, method, torch.device("cpu"))
    step(x, y)  # one-time work (e.g. RAT finding its classifier) is not part of the per-step model
    with _CountFlops() as counter:
        step(x, y)
    first_conv_input_grad = 2 * 16 * 8 * 8 * 3 * 3 * 3
    skipped = step_passes(method, steps).trained_forwards * first_conv_input_grad * batch
    expected = step_flops("wrn-10-1", method, batch, steps, shape=shape) - skipped
    if "gradalign" in method:  # double backpropagation: counted 6F, torch's formulas give 6.2F here
        forward = model_forward_flops("wrn-10-1", 10, shape) * batch
        assert 0 < counter.total - expected < 0.25 * forward
    else:
        assert counter.total == expected


def test_every_registered_method_has_a_flop_model():
    assert all(has_flop_model(name) for name in ALL_METHODS)
    assert not has_flop_model("awp+unknown")
    with pytest.raises(ValueError, match="no FLOP model"):
        step_passes("unknown", 10)


def test_bench_reports_images_per_second_and_tflops_per_second():
    config = BenchConfig(
        methods=["trades", "rat_trades"], model="smallcnn", batch=2, steps=1, repeats=1, warmup=0
    )
    out = bench_methods(config)
    for name, row in out.items():
        assert row["images_per_second"] == pytest.approx(2 / row["seconds"])
        assert row["flops_per_step"] == step_flops("smallcnn", name, 2, 1)
        assert row["tflops_per_second"] == pytest.approx(row["flops_per_step"] / row["seconds"] / 1e12)


def test_bench_cli_prints_throughput_columns(capsys):
    argv = ["bench", "--model", "smallcnn", "--batch", "2", "--steps", "1", "--repeats", "1", "--warmup", "0"]
    assert main([*argv, "--methods", "trades,rat_trades", "--no-memory", "--quiet"]) == 0
    header = [line for line in capsys.readouterr().out.splitlines() if line.startswith("method")][0]
    assert header.split()[:6] == ["method", "s/step", "×", "trades", "img/s", "TFLOP/s"]
