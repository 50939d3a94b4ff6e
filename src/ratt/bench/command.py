"""``ratt bench``: seconds and memory per training step of each method, side by side."""

from __future__ import annotations

import argparse
import json

from ratt.errors import UserError


def _shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--input {text!r}: write CxHxW, e.g. 3x32x32") from None
    return c, h, w


def run(args: argparse.Namespace) -> int:
    from ratt.bench.steps import BenchConfig, bench_methods, measure_memory, resolve_bench_device

    methods = [m for m in args.methods.split(",") if m]
    config = BenchConfig(
        methods=methods,
        model=args.model,
        batch=args.batch,
        shape=_shape(args.input),
        classes=args.classes,
        steps=args.steps,
        device=args.device,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        precision=args.precision,
        channels_last=args.channels_last,
    )
    device = resolve_bench_device(config.device)
    timing = bench_methods(config, progress=not args.quiet)
    memory = measure_memory(config) if not args.no_memory else {}
    print(
        f"{config.model}, batch {config.batch}, input {args.input}, {config.steps} attack steps, "
        f"{device}, {config.precision}{', channels_last' if config.channels_last else ''}, "
        f"threads {config.threads or 'default'}, median of {config.repeats}"
    )
    print(f"{'method':<18} {'s/step':>8} {'× trades':>9} {'step MiB':>9} {'× trades':>9}")
    for name in methods:
        row, mem = timing[name], memory.get(name, {})
        mib = f"{mem['step_bytes'] / 2**20:>9.1f}" if mem else f"{'-':>9}"
        mem_ratio = f"{mem['step_bytes_ratio']:>9.3f}" if "step_bytes_ratio" in mem else f"{'-':>9}"
        ratio = f"{row['seconds_ratio']:>9.3f}" if "seconds_ratio" in row else f"{'-':>9}"
        print(f"{name:<18} {row['seconds']:>8.3f} {ratio} {mib} {mem_ratio}")
    if args.json:
        from dataclasses import asdict

        print(json.dumps({"config": asdict(config), "device": str(device), "time": timing, "memory": memory}))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``ratt bench``."""
    p = sub.add_parser("bench", help="seconds and memory per training step of each method")
    p.add_argument("--methods", default="trades,rat_trades,awp+trades,awp+rat_trades")
    p.add_argument("--model", default="wrn-16-2")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--input", default="3x32x32", help="CxHxW")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=10, help="attack steps")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true", help="NHWC model and inputs")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)
