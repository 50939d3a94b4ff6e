"""Time and peak memory of one optimizer step of each method on the same model and batch.

Time: all methods in one process, interleaved (method A, B, C, A, B, C, ...) after warm-up
steps, median over repeats, so slow drifts of the machine hit every method alike.
Throughput: images per second, and achieved TFLOP/s against the cost model of
:mod:`ratt.bench.flops` (docs/scaling.md) for the methods it covers.
Memory: on CUDA ``torch.cuda.max_memory_allocated`` around each step, in the timing
process (above what was allocated before the step); on CPU each method
runs in a fresh subprocess and reports its peak resident set size (the kernel's high-water
mark, reset once model, optimizer and batch exist) above the resident size at that moment:
the memory the first steps themselves need, one-time buffers (momentum, AWP proxy state,
RAT's noise backup) included.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from ratt.attacks import ThreatModel
from ratt.bench.flops import has_flop_model, step_flops
from ratt.config import MethodConfig, TrainConfig, apply, validate
from ratt.core.env import configure_runtime, resolve_device, synchronize
from ratt.errors import UserError
from ratt.methods import METHODS, build_method
from ratt.models import create_model
from ratt.train.ema import WeightAverage
from ratt.train.precision import CompiledOrEager, grad_scaler
from ratt.train.step import TrainStep


@dataclass
class BenchConfig:
    """What to benchmark.

    Attributes:
        methods: registry names (``awp+NAME`` allowed); ratios are to ``trades``.
        model: architecture name.
        batch: batch size.
        shape: (C, H, W) of the random inputs.
        classes: number of classes.
        steps: attack steps (eps 8/255, step 2/255).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        threads: torch CPU threads (None: torch's default).
        repeats: timed steps per method; warmup: untimed steps per method first.
        seed: seeds model, batch and methods.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast over the step, as in training).
        channels_last: NHWC model and inputs.
        compile: the attacks call ``torch.compile(model)`` (``run.compile=true``: eager
            fallback with a warning where compilation fails).
        compile_mode: ``torch.compile``'s mode (``run.compile_mode``).
        fused: fused SGD (``optim.fused``).
    """

    methods: list[str] = field(default_factory=lambda: ["trades", "rat_trades"])
    model: str = "wrn-16-2"
    batch: int = 64
    shape: tuple[int, int, int] = (3, 32, 32)
    classes: int = 10
    steps: int = 10
    device: str = "cpu"
    threads: int | None = None
    repeats: int = 5
    warmup: int = 1
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    fused: bool = False

    def check(self) -> None:
        """Every field in range and every method registered; ``UserError`` otherwise."""
        checks = [
            (self.batch >= 1, f"--batch {self.batch}: must be >= 1"),
            (
                len(self.shape) == 3 and all(v >= 1 for v in self.shape),
                f"--input {self.shape}: every size >= 1",
            ),
            (self.classes >= 2, f"--classes {self.classes}: must be >= 2"),
            (self.steps >= 0, f"--steps {self.steps}: must be >= 0"),
            (self.repeats >= 1, f"--repeats {self.repeats}: must be >= 1"),
            (self.warmup >= 0, f"--warmup {self.warmup}: must be >= 0"),
            (self.threads is None or self.threads >= 1, f"--threads {self.threads}: must be >= 1"),
            (bool(self.methods), "--methods: name at least one method"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        for name in self.methods:
            parse_variant(name)


def resolve_bench_device(name: str) -> torch.device:
    """The device to benchmark on; a clear error when CUDA is asked for but absent."""
    return resolve_device(name, option="--device")


def parse_variant(name: str) -> tuple[str, MethodConfig, float]:
    """``METHOD`` or ``METHOD[key=value,...]`` -> (method, its config, EMA decay).

    The keys are ``method.*`` settings (``rat_trades[sigma_target=0.05,sigma_every=1]``) and
    ``ema`` (``trades[ema=0.995]``: the step with weight averaging), so the cost of a switch is
    measured beside the method without it.
    """
    base, _, rest = name.partition("[")
    if rest and not rest.endswith("]"):
        raise UserError(f"--methods {name!r}: write METHOD[key=value,...]")
    METHODS.get(base)
    config, ema = TrainConfig(), 0.0
    apply(config, "method.name", base)
    apply(config, "method.awp_warmup", 0)
    for item in filter(None, rest[:-1].split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--methods {name!r}: {item!r} must look like key=value")
        if key.strip() == "ema":
            apply(config, "optim.ema_decay", value)
            ema = config.optim.ema_decay
        else:
            apply(config, f"method.{key.strip()}", value)
    validate(config)
    return base, config.method, ema


def make_step(
    config: BenchConfig, name: str, device: torch.device
) -> tuple[TrainStep, torch.Tensor, torch.Tensor]:
    """The training step of method ``name`` (a :func:`parse_variant` spec) on a fresh seeded
    model, and a random batch.

    The step is :class:`ratt.train.step.TrainStep`, the one the trainer runs (autocast, finite
    check, backward, fp16 scaling, optimizer, ``after_step``, the weight average, a constant
    schedule).
    """
    base, method_config, ema_decay = parse_variant(name)
    torch.manual_seed(config.seed)
    model = create_model(config.model, config.classes, config.shape).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    threat = ThreatModel("linf", 8 / 255, 2 / 255, config.steps)
    method = build_method(base, model, threat, method_config, config.classes)
    method.start_epoch(0)
    if config.compile:  # as train.setup does: attacks through the compiled model
        method.configure_parallel(model, CompiledOrEager(model, mode=config.compile_mode), (0, 1))
    fused = {"fused": True} if config.fused else {}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, **fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    ema = WeightAverage(model, ema_decay) if ema_decay > 0 else None
    scaler = grad_scaler(config.precision, device)
    step = TrainStep(model, method, optimizer, scheduler, precision=config.precision, scaler=scaler, ema=ema)
    generator = torch.Generator().manual_seed(config.seed + 1)
    x = torch.rand(config.batch, *config.shape, generator=generator).to(device)
    y = torch.randint(0, config.classes, (config.batch,), generator=generator).to(device)
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return step, x, y


def bench_methods(config: BenchConfig, progress: bool = False) -> dict[str, dict[str, float]]:
    """Median seconds per step of each method (interleaved), images per second and, where
    :mod:`ratt.bench.flops` has a cost model, FLOPs per step and achieved TFLOP/s; ratios to
    ``trades``. On CUDA also each method's step memory, measured in this process: the peak
    allocated during a step above what was allocated before it (max over all steps, warm-up
    included, so one-time buffers count) and the absolute peak."""
    for name in config.methods:
        parse_variant(name)
    device = resolve_bench_device(config.device)
    configure_runtime(config.threads)
    steps = {name: make_step(config, name, device) for name in config.methods}
    times: dict[str, list[float]] = {name: [] for name in config.methods}
    memory: dict[str, list[int]] = {name: [0, 0] for name in config.methods}  # step bytes, peak bytes
    cuda = device.type == "cuda"
    rounds = config.warmup + config.repeats
    for round_index in range(rounds):
        for name, (step, x, y) in steps.items():
            synchronize(device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            start = time.perf_counter()
            step(x, y)
            synchronize(device)
            if round_index >= config.warmup:
                times[name].append(time.perf_counter() - start)
            if cuda:
                peak = torch.cuda.max_memory_allocated(device)
                memory[name] = [max(memory[name][0], peak - before), max(memory[name][1], peak)]
        if progress:
            print(f"round {round_index + 1}/{rounds}", file=sys.stderr)
    out: dict[str, dict[str, float]] = {}
    for name, ts in times.items():
        seconds = statistics.median(ts)
        row: dict[str, float] = {"seconds": seconds, "min_seconds": min(ts), "repeats": len(ts)}
        row["images_per_second"] = config.batch / seconds
        base = name.partition("[")[0]  # a variant is costed by its method's FLOP model
        if has_flop_model(base):
            flops = step_flops(
                config.model, base, config.batch, config.steps, shape=config.shape, num_classes=config.classes
            )
            row["flops_per_step"] = float(flops)
            row["tflops_per_second"] = flops / seconds / 1e12
        if cuda:
            row["step_bytes"], row["peak_bytes"] = float(memory[name][0]), float(memory[name][1])
        attack_model = steps[name][0].method.attack_model
        if isinstance(attack_model, CompiledOrEager):
            row["compiled"] = attack_model.compiled is not None  # False: fell back to eager
        out[name] = row
    _add_ratios(out, "seconds")
    return out


def _add_ratios(results: dict[str, dict[str, float]], key: str) -> None:
    if "trades" not in results:
        return
    base = results["trades"][key]
    for row in results.values():
        row[f"{key}_ratio"] = row[key] / base if base else float("nan")


def _status_bytes(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident high-water mark (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _rss_now() -> int:
    return _status_bytes("VmRSS") or 0


def _rss_peak() -> int:
    peak = _status_bytes("VmHWM")
    if peak is None:  # no /proc: ru_maxrss (KiB on Linux), which also counts import time
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return peak


def step_memory(config: BenchConfig, name: str) -> dict[str, float]:
    """Peak memory of ``config.warmup + 1`` steps of one method, in this process (bytes)."""
    device = resolve_bench_device(config.device)
    configure_runtime(config.threads)
    step, x, y = make_step(config, name, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        _reset_peak_rss()  # so the high-water mark of importing torch does not hide the step's
        before = _rss_now()
    for _ in range(config.warmup + 1):
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = _rss_peak()
    return {"peak_bytes": float(peak), "step_bytes": float(max(peak - before, 0))}


def measure_memory(config: BenchConfig) -> dict[str, dict[str, float]]:
    """Step memory of each method, each in a fresh subprocess (see :func:`step_memory`)."""
    results = {}
    for name in config.methods:
        payload = json.dumps({**asdict(config), "methods": [name]})
        proc = subprocess.run(
            [sys.executable, "-m", "ratt.bench.steps", payload],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"memory run of {name} failed:\n{proc.stderr[-2000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    _add_ratios(results, "step_bytes")
    return results


def benchmark(config: BenchConfig, memory: bool = True, progress: bool = False) -> dict:
    """Seconds per step of every method (interleaved in this process) and, with ``memory``,
    each one's step memory (fresh subprocesses on CPU, around the timed steps on CUDA);
    ratios to ``trades``.

    Returns:
        ``{"config", "device", "time": {method: {...}}, "memory": {method: {...}}}``.
    """
    config.check()
    device = resolve_bench_device(config.device)
    timing = bench_methods(config, progress=progress)
    if not memory:
        memory_rows: dict[str, dict[str, float]] = {}
    elif device.type == "cuda":  # measured around the timed steps, in this process
        memory_rows = {
            name: {k: row[k] for k in ("step_bytes", "peak_bytes")} for name, row in timing.items()
        }
        _add_ratios(memory_rows, "step_bytes")
    else:
        memory_rows = measure_memory(config)
    return {"config": asdict(config), "device": str(device), "time": timing, "memory": memory_rows}


def _memory_child(payload: str) -> None:
    raw = json.loads(payload)
    raw["shape"] = tuple(raw["shape"])
    config = BenchConfig(**raw)
    print(json.dumps(step_memory(config, config.methods[0])))


if __name__ == "__main__":
    _memory_child(sys.argv[1])
