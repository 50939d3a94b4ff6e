"""Flatness analysis: Hessian spectrum on an exact quadratic, filter normalization, landscapes,
weight noise, AWP sharpness, and that every measure gives the weights back bit-for-bit."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ratt.attacks import ThreatModel, pgd
from ratt.flatness import (
    Objective,
    awp_sharpness,
    cheap_measures,
    filter_normalize,
    hessian_eigenvalues,
    hessian_trace,
    hvp,
    interpolate,
    landscape_1d,
    landscape_2d,
    noise_curve,
    random_direction,
)
from ratt.flatness.hessian import hutchinson, lanczos, power_iteration


class Quadratic(nn.Module):
    """``L(w) = 1/2 w^T A w + b^T w`` for every input; forward returns it per point, (B, 1)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)
        self.w = nn.Parameter(torch.randn(a.shape[0], dtype=a.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = 0.5 * self.w @ self.a @ self.w + self.b @ self.w
        return value.expand(x.shape[0], 1)


def mean_output(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return out.mean()


def symmetric(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """Dense symmetric matrix with the given spectrum (random orthogonal basis)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


SPECTRUM = [12.0, 7.0, 4.0] + torch.linspace(-0.5, 2.0, 27).tolist()


@pytest.fixture
def quadratic():
    a = symmetric(SPECTRUM)
    b = torch.randn(a.shape[0], dtype=torch.float64)
    model = Quadratic(a, b)
    x = torch.zeros(10, 1)
    y = torch.zeros(10, dtype=torch.long)
    return model, a, Objective(model, x, y, batch_size=4, criterion=mean_output)


class TinyNet(nn.Module):
    """conv + BN + linear on 1x8x8 inputs: every kind of parameter a direction must handle."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.classifier = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.classifier(h.flatten(1))


@pytest.fixture
def tiny():
    torch.manual_seed(1)
    model = TinyNet()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.1, 0.1)
    x = torch.rand(40, 1, 8, 8)
    y = torch.randint(0, 10, (40,))
    return model.eval(), x, y


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


THREAT = ThreatModel("linf", 0.1, 0.03, 3)


# ------------------------------------------------------------------------------ Hessian
def test_hessian_top_eigenvalues_of_exact_quadratic(quadratic):
    model, a, objective = quadratic
    top = torch.linalg.eigvalsh(a).flip(0)[:3]
    for method, iters in (("lanczos", 30), ("power", 500)):
        out = hessian_eigenvalues(objective, k=3, iters=iters, method=method)
        got = torch.tensor(out["eigenvalues"], dtype=torch.float64)
        assert torch.allclose(got, top, rtol=1e-3), (method, got, top)


def test_hessian_trace_of_exact_quadratic_within_three_stderr(quadratic):
    model, a, objective = quadratic
    out = hessian_trace(objective, samples=200, seed=3)
    exact = float(torch.trace(a))
    assert out["stderr"] > 0
    assert abs(out["trace"] - exact) <= 3 * out["stderr"], (out, exact)


def test_hvp_matches_autograd_hessian_of_small_net(tiny):
    model, x, y = tiny
    params = [model.classifier.bias, model.conv.weight]
    objective = Objective(model, x, y, batch_size=16)  # 3 chunks accumulated
    v = [torch.randn_like(p) for p in params]
    got = torch.cat([t.flatten() for t in hvp(objective, params, v)])

    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]

    def loss_of(flat):
        b_fc, w_conv = (t.view(s) for t, s in zip(flat.split(sizes), shapes, strict=True))
        out = torch.func.functional_call(model, {"classifier.bias": b_fc, "conv.weight": w_conv}, (x,))
        return F.cross_entropy(out, y)

    flat = torch.cat([p.detach().flatten() for p in params])
    h = torch.autograd.functional.hessian(loss_of, flat)
    want = h @ torch.cat([t.flatten() for t in v])
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_linear_algebra_on_explicit_matrices():
    a = symmetric([5.0, 3.0, 1.0, 0.5, -2.0], seed=4)
    g = torch.Generator().manual_seed(0)
    values, residuals = lanczos(lambda v: a @ v, 5, 5, g)
    assert torch.allclose(values, torch.tensor([5.0, 3.0, 1.0, 0.5, -2.0], dtype=torch.float64), atol=1e-9)
    assert residuals.max() < 1e-8
    assert power_iteration(lambda v: a @ v, 5, 1, 300, 1e-12, g)[0] == pytest.approx(5.0, rel=1e-6)
    diagonal = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    estimate, stderr, _ = hutchinson(lambda v: diagonal @ v, 3, 10, g)
    assert estimate == pytest.approx(6.0) and stderr == pytest.approx(0.0, abs=1e-12)


def test_hessian_runs_bn_in_eval_mode_and_restores_train_mode(tiny):
    model, x, y = tiny
    model.train()
    saved = snapshot(model)
    out = hessian_eigenvalues(Objective(model, x, y), k=1, iters=5)
    assert math.isfinite(out["eigenvalues"][0])
    assert model.training
    assert_same_state(model, saved)  # BN running statistics untouched


# ------------------------------------------------------------------------------ directions
def test_filter_normalized_direction_has_per_filter_norms_of_weights(tiny):
    model, _, _ = tiny
    d = random_direction(model, torch.Generator().manual_seed(0))
    assert set(d) == {"conv.weight", "classifier.weight"}  # biases and BN left out
    for name, p in model.named_parameters():
        if name in d:
            assert torch.allclose(d[name].flatten(1).norm(dim=1), p.flatten(1).norm(dim=1), rtol=1e-5)
    bias = torch.randn(7)
    assert torch.equal(filter_normalize(torch.randn(7), bias), torch.zeros(7))


def test_landscape_1d_at_zero_and_along_direction_match_independent_losses(tiny):
    model, x, y = tiny
    objectives = {
        "clean": Objective(model, x, y, batch_size=16),
        "adv": Objective(model, x, y, "fixed", THREAT, batch_size=64, seed=5),
    }
    res = landscape_1d(objectives, [-0.5, 0.0, 0.5], directions=1, seed=7)
    with torch.no_grad():
        clean = float(F.cross_entropy(model(x), y))
    x_adv = pgd(model, x, y, THREAT, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        adv = float(F.cross_entropy(model(x_adv), y))
    assert res["loss"]["clean"][0][1] == pytest.approx(clean, rel=1e-5)
    assert res["loss"]["adv"][0][1] == pytest.approx(adv, rel=1e-5)
    # alpha = 0.5: rebuild the same direction and move a copy by hand
    d = random_direction(model, torch.Generator().manual_seed(7))
    moved = TinyNet().eval()
    moved.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, p in moved.named_parameters():
            if name in d:
                p.add_(0.5 * d[name])
        want = float(F.cross_entropy(moved(x), y))
    assert res["loss"]["clean"][0][2] == pytest.approx(want, rel=1e-5)
    assert res["loss"]["clean"][0][2] != pytest.approx(clean, rel=1e-3)  # the step moved the weights


def test_landscapes_leave_biases_and_bn_untouched_and_restore_weights(tiny):
    model, x, y = tiny
    saved = snapshot(model)
    seen = []

    def spy(out, target):  # records the 1-dim parameters at every grid point
        seen.append([p.detach().clone() for p in (model.conv.bias, model.bn.weight, model.bn.bias)])
        return F.cross_entropy(out, target)

    objectives = {"clean": Objective(model, x, y, criterion=spy)}
    landscape_1d(objectives, [-1.0, 0.3, 1.0], directions=2)
    landscape_2d(objectives, [-1.0, 1.0])
    noise_curve(objectives["clean"], [0.0, 0.5], draws=2)
    awp_sharpness(objectives["clean"], rho=0.05, steps=2)
    assert len(seen) > 10
    for values in seen:
        for now, before in zip(values, ("conv.bias", "bn.weight", "bn.bias"), strict=True):
            assert torch.equal(now, saved[before])
    assert_same_state(model, saved)


def test_interpolation_endpoints_are_each_checkpoints_loss(tiny):
    model, x, y = tiny
    other = TinyNet().eval()
    state_a, state_b = snapshot(model), snapshot(other)
    res = interpolate({"clean": Objective(model, x, y)}, state_a, state_b, [0.0, 0.5, 1.0])
    with torch.no_grad():
        la, lb = (float(F.cross_entropy(m(x), y)) for m in (model, other))
    assert res["loss"]["clean"][0] == pytest.approx(la, rel=1e-5)
    assert res["loss"]["clean"][2] == pytest.approx(lb, rel=1e-5)
    assert_same_state(model, state_a)


# ------------------------------------------------------------------------------ noise, AWP
def test_noise_curve_at_zero_is_clean_loss_and_grows(tiny):
    model, x, y = tiny
    curve = noise_curve(Objective(model, x, y), [0.0, 1.0], draws=3, seed=0)
    with torch.no_grad():
        out = model(x)
    assert curve["loss_mean"][0] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6)
    assert curve["acc_mean"][0] == pytest.approx(float((out.argmax(1) == y).float().mean()))
    assert curve["loss_std"][0] == 0.0 and curve["loss_std"][1] > 0
    again = noise_curve(Objective(model, x, y), [0.0, 1.0], draws=3, seed=0)
    assert again == curve  # deterministic given the seed


class LinearLoss(nn.Module):
    """Loss ``<b, W>`` with a (3, 4) weight: the worst case within ``||D|| <= rho ||W||`` is
    ``rho ||W|| ||b||``, reached along b."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, 4, dtype=torch.float64))
        self.register_buffer("b", torch.randn(3, 4, dtype=torch.float64))

    def forward(self, x):
        return (self.weight * self.b).sum().expand(x.shape[0], 1)


def test_awp_sharpness_reaches_the_worst_case_of_a_linear_loss():
    model = LinearLoss()
    objective = Objective(model, torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), criterion=mean_output)
    out = awp_sharpness(objective, rho=0.1, steps=4)
    want = 0.1 * float(model.weight.detach().norm() * model.b.norm())
    assert out["increase"] == pytest.approx(want, rel=1e-6)


# ------------------------------------------------------------------------------ cheap + CLI
def test_cheap_measures_leave_model_grads_and_global_rng_untouched(tiny):
    model, x, y = tiny
    model.train()
    model.classifier.weight.grad = torch.ones_like(model.classifier.weight)
    saved = snapshot(model)
    rng = torch.get_rng_state()
    out = cheap_measures(model, x, y, sigma=0.05, draws=2, hessian_iters=4, threat=THREAT)
    assert set(out) == {
        f"{p}{k}" for p in ("", "adv_") for k in ("loss", "hessian_top", "noise_loss", "noise_rise")
    }
    assert all(math.isfinite(v) for v in out.values())
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(model.classifier.weight.grad, torch.ones_like(model.classifier.weight))
    assert model.training
    assert_same_state(model, saved)


def _checkpoint(tmp_path, name: str, seed: int):
    from ratt import data
    from ratt.runs import build_config, build_model, save_weights

    config = build_config(None, [f"run.seed={seed}"])
    torch.manual_seed(seed)
    model = build_model(config, data.info("digits"))
    run = tmp_path / name
    save_weights(model, run / "checkpoints" / "best.safetensors", {"config": config.to_dict()})
    return run


def _landscape(argv: list[str]) -> int:
    from ratt.cli import landscape

    parser = argparse.ArgumentParser()
    landscape.add_parser(parser.add_subparsers())
    args = parser.parse_args(["landscape", *argv])
    return args.func(args)


TINY = ["--n", "24", "--points", "3", "--grid", "3", "--directions", "1", "--lanczos-iters", "2",
        "--samples", "2", "--sigmas", "0,0.1", "--draws", "2", "--rho", "0.01", "--awp-steps", "1",
        "--attack-steps", "1", "--quiet"]  # fmt: skip


def test_landscape_command_writes_json_overlaid_plots_and_is_deterministic(tmp_path, capsys):
    runs = [_checkpoint(tmp_path, "a", 0), _checkpoint(tmp_path, "b", 1)]
    argv = [*map(str, runs), "--what", "1d,noise", "--adv", "fixed", *TINY, "--json"]
    assert _landscape(argv) == 0
    stdout = capsys.readouterr().out
    assert "noise σ=0.1 loss/acc [adv]" in stdout
    assert len(json.loads(stdout.strip().splitlines()[-1])["runs"]) == 2
    first = []
    for run in runs:
        saved = json.loads((run / "landscape.json").read_text())
        assert saved["n"] == 24 and saved["1d"]["alphas"] == [-1.0, 0.0, 1.0]
        assert saved["noise"]["clean"]["loss_mean"][0] == pytest.approx(saved["clean"]["loss"])
        for png in ("landscape_1d.png", "landscape_noise.png"):
            assert (run / png).stat().st_size > 1000
        first.append(saved)
    assert _landscape(argv) == 0  # deterministic given --seed
    for run, before in zip(runs, first, strict=True):
        again = json.loads((run / "landscape.json").read_text())
        before.pop("seconds"), again.pop("seconds")
        assert again == before


@pytest.mark.slow
def test_landscape_command_all_measures(tmp_path, capsys):
    runs = [_checkpoint(tmp_path, "a", 0), _checkpoint(tmp_path, "b", 1)]
    assert _landscape([*map(str, runs), "--what", "1d,2d,hessian,noise,awp,interp", *TINY]) == 0
    assert "hessian top eig [adv]" in capsys.readouterr().out
    for run in runs:
        saved = json.loads((run / "landscape.json").read_text())
        assert {"1d", "2d", "hessian", "noise", "awp"} <= set(saved)
        for png in ("landscape_1d.png", "landscape_2d.png", "landscape_noise.png", "landscape_interp.png"):
            assert (run / png).stat().st_size > 1000
    assert "interp" in json.loads((runs[1] / "landscape.json").read_text())


def test_landscape_command_user_errors(tmp_path):
    from ratt.errors import UserError

    with pytest.raises(UserError, match="--what"):
        _landscape([str(tmp_path), "--what", "3d"])
    with pytest.raises(UserError, match="two or more"):
        _landscape([str(tmp_path), "--what", "interp"])
    with pytest.raises(UserError, match="does not exist"):
        _landscape([str(tmp_path / "missing")])
    with pytest.raises(UserError, match="--sigmas"):
        _landscape([str(tmp_path), "--sigmas", "a,b"])
