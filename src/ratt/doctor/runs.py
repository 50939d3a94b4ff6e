"""Checks through the trainer on synthetic data: ``run.compile=true``, a checkpoint moved between
devices, and a training run interrupted by SIGTERM and resumed, against an uninterrupted one.

Runs use :mod:`ratt.doctor.synthetic` and ``run.deterministic=true`` (deterministic kernels;
on CUDA ``CUBLAS_WORKSPACE_CONFIG=:4096:8``), so an exact resume is bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

from ratt import config as cfg
from ratt.doctor.result import CheckWarning, Sizes, compile_backend
from ratt.doctor.synthetic import NAME, synthetic_batch
from ratt.runs import RunFiles, build_config, read_weights
from ratt.train import Trainer, TrainingInterrupted
from ratt.train.checkpointing import TIMING_FIELDS, run_lock
from ratt.train.precision import CompiledOrEager

Outcome = tuple[str, dict[str, Any]]


def run_config(
    sizes: Sizes, device: str, steps_per_epoch: int, epochs: int, *extra: str, small: bool = False
) -> cfg.TrainConfig:
    """A training config on the synthetic data: ``epochs`` of ``steps_per_epoch`` steps.

    The training run's model, method, batch and precision (``small``: the check model and batch,
    ``check_steps`` attack steps and validation only after the last epoch, for runs that also
    take steps on the CPU). The dry run validates only after the last epoch.
    """
    dry = sizes.device == "cpu"
    model, batch = (sizes.check_model, sizes.check_batch) if small else (sizes.run_model, sizes.run_batch)
    overrides = [
        f"data.name={NAME}", f"data.batch_size={batch}", f"data.train_limit={batch * steps_per_epoch}",
        f"data.val_size={32 if dry else 512}", f"model.name={model}", f"method.name={sizes.run_method}",
        "method.awp_warmup=0", f"optim.epochs={epochs}", "optim.lr=0.05",
        f"attack.steps={sizes.check_steps if dry or small else 10}",
        f"run.device={device}", f"run.precision={sizes.run_precision}",
        f"run.channels_last={str(sizes.run_channels_last).lower()}", "run.deterministic=true",
        "run.progress=false", f"run.val_attack_steps={1 if dry else 10}", "run.test_attacks=clean",
        f"run.eval_batch_size={256 if dry else 500}", f"run.val_every={epochs if dry or small else 1}",
        *extra,
    ]  # fmt: skip
    return build_config(None, overrides)


def _stop_after(trainer: Trainer, steps: int) -> None:
    """Send this process SIGTERM after the trainer's ``steps``-th step (the trainer's own
    handler turns it into a saved stop); off the main thread, set the flag it would set."""
    original, calls = trainer.setup.step, [0]

    def step(*args: Any, **kwargs: Any) -> Any:
        outcome = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == steps:
            if threading.current_thread() is threading.main_thread():
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                trainer.signals.received = signal.SIGTERM
        return outcome

    trainer.setup.step = step  # type: ignore[assignment]


def train_part(
    config: cfg.TrainConfig, out: Path, resume: bool, stop_after: int | None
) -> tuple[Trainer, bool]:
    """Train (or resume) ``config`` into ``out``, stopped by SIGTERM after ``stop_after`` steps
    of this part; returns the trainer and whether it was interrupted."""
    with run_lock(out):
        trainer = Trainer(config, out)
        try:
            if resume:
                trainer.resume()
            if stop_after is not None:
                _stop_after(trainer, stop_after)
            try:
                trainer.train_and_test()
            except TrainingInterrupted:
                return trainer, True
            return trainer, False
        finally:
            trainer.close()


def _metrics(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in RunFiles(out).metrics.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def weight_difference(a: Path, b: Path, name: str = "last") -> float:
    """Largest absolute difference between the ``name`` checkpoints of run directories a and b."""
    wa, _ = read_weights(RunFiles(a).weights(name))
    wb, _ = read_weights(RunFiles(b).weights(name))
    assert wa.keys() == wb.keys(), f"{name}: the checkpoints hold different tensors"
    return max(
        (float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if wa[k].numel()), default=0.0
    )


def check_interrupted_run(sizes: Sizes, work: Path) -> Outcome:
    """``run_steps`` steps uninterrupted vs the same run stopped by SIGTERM after
    ``run_interrupt`` steps and resumed: weights, metrics and test accuracy bit for bit."""
    epochs = sizes.run_steps // sizes.run_steps_per_epoch
    config = run_config(sizes, sizes.device, sizes.run_steps_per_epoch, epochs)
    whole, parts = work / "uninterrupted", work / "interrupted"
    _, stopped = train_part(config, whole, False, None)
    assert not stopped, "the uninterrupted run was interrupted"
    _, stopped = train_part(config, parts, False, sizes.run_interrupt)
    assert stopped, f"SIGTERM after step {sizes.run_interrupt} did not stop the run"
    train_part(config, parts, True, None)
    diffs = {name: weight_difference(whole, parts, name) for name in ("last", "best")}
    data: dict[str, Any] = {"steps": epochs * sizes.run_steps_per_epoch, "interrupt": sizes.run_interrupt}
    data.update({f"max_abs_diff_{k}": v for k, v in diffs.items()})
    assert all(v == 0.0 for v in diffs.values()), f"resumed weights differ: max |dw| {diffs}"
    assert _metrics(whole) == _metrics(parts), "metrics.jsonl differs after the resume"
    acc = [json.loads(RunFiles(p).summary.read_text())["test"]["accuracy"] for p in (whole, parts)]
    assert acc[0] == acc[1], f"test accuracy differs: {acc}"
    data["test_accuracy"] = acc[0]
    what = f"{sizes.run_method} {sizes.run_model} {sizes.run_precision}"
    return f"{data['steps']} steps of {what}, SIGTERM after {sizes.run_interrupt}: bit-identical", data


def _snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The weights and the optimizer's momentum buffers, on the CPU."""
    out = {f"w.{k}": v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
    for index, state in trainer.setup.optimizer.state_dict()["state"].items():
        if state.get("momentum_buffer") is not None:
            out[f"m.{index}"] = state["momentum_buffer"].detach().cpu().clone()
    return out


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert a.keys() == b.keys(), f"{what}: different state entries"
    for key in a:
        assert torch.equal(a[key], b[key]), f"{what}: {key} changed in the move"


def check_checkpoint_devices(sizes: Sizes, work: Path) -> Outcome:
    """Train on the device, stop mid-epoch, resume on the CPU (weights and momentum equal bit for
    bit), train across an epoch end, stop, resume on the device (equal again) and finish."""
    device, out = sizes.device, work / "devices"
    on_device = run_config(sizes, device, 2, 3, small=True)  # 3 epochs of 2 steps
    on_cpu = run_config(sizes, "cpu", 2, 3, small=True)
    first, stopped = train_part(on_device, out, False, 3)  # stops at epoch 2, step 1
    assert stopped, "the first part was not interrupted"
    saved = _snapshot(first)
    second = Trainer(on_cpu, out)
    second.resume()
    assert next(second.model.parameters()).device.type == "cpu", "resumed on the CPU, but not there"
    _assert_same(saved, _snapshot(second), f"{device} -> cpu")
    second.close()
    second, stopped = train_part(on_cpu, out, True, 2)  # steps 4 and 5: epoch 3, step 1
    assert stopped, "the CPU part was not interrupted"
    saved = _snapshot(second)
    third = Trainer(on_device, out)
    third.resume()
    _assert_same(saved, _snapshot(third), f"cpu -> {device}")
    third.close()
    _, stopped = train_part(on_device, out, True, None)
    assert not stopped and RunFiles(out).summary.exists(), "the run did not finish after the moves"
    return f"{device} -> cpu -> {device}: weights and momentum bit-identical at each move, run finished", {}


def check_compile(sizes: Sizes, work: Path) -> Outcome:
    """``run.compile=true`` trains (through the trainer); the compiled attack model matches eager
    within 1e-3; a compile error falls back to eager with one warning and eager's outputs."""
    config = run_config(sizes, sizes.device, 2, 1, "run.compile=true", "run.deterministic=false", small=True)
    with compile_backend(sizes.compile_backend), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(config, work / "compile")
        try:
            metrics = trainer.train_epoch()
        finally:
            trainer.close()
        attack_model = trainer.setup.method.attack_model
        assert isinstance(attack_model, CompiledOrEager), "run.compile=true did not wrap the attack model"
        assert torch.isfinite(torch.tensor(metrics["train_loss"])), "non-finite loss with run.compile=true"
        x, _ = synthetic_batch(8, trainer.device)
        compiled = attack_model.compiled is not None
        data: dict[str, Any] = {"compiled": compiled, "backend": sizes.compile_backend}
        if compiled:
            trainer.model.eval()
            with torch.no_grad():
                eager, fast = trainer.model(x), attack_model(x)
            data["max_abs_diff"] = float((eager - fast).abs().max())
            assert torch.allclose(eager, fast, rtol=1e-3, atol=1e-3), (
                f"compiled != eager: {data['max_abs_diff']}"
            )
    _check_fallback(trainer.model, x)
    if not compiled:
        reasons = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
        raise CheckWarning(f"fell back to eager: {(reasons or ['?'])[0][:200]}", data)
    return f"compiled ({sizes.compile_backend}), matches eager; forced failure falls back", data


def _check_fallback(model: torch.nn.Module, x: torch.Tensor) -> None:
    original = torch.compile

    def broken(module: Any, **kwargs: Any) -> Any:
        def call(*args: Any) -> Any:
            raise RuntimeError("doctor: simulated compiler failure")

        return call

    torch.compile = broken  # type: ignore[assignment]
    try:
        wrapped = CompiledOrEager(model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.no_grad():
                out = wrapped(x)
    finally:
        torch.compile = original  # type: ignore[assignment]
    assert any("running eagerly" in str(w.message) for w in caught), "no warning on a compile failure"
    with torch.no_grad():
        assert torch.equal(out, model(x)), "the fallback's output differs from eager"
