"""``ratt bench``: seconds and memory per training step of each method, side by side."""

from __future__ import annotations

import argparse
import json

from ratt.bench import BenchConfig, benchmark
from ratt.config.sections import PRECISIONS
from ratt.core.table import text_table
from ratt.errors import UserError

DEFAULTS = BenchConfig()


def _shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--input {text!r}: write CxHxW, e.g. 3x32x32") from None
    return c, h, w


def method_list(text: str) -> list[str]:
    """Comma-separated methods, commas inside ``[...]`` kept: ``a,b[x=1,y=2]`` -> 2 items."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [item.strip() for item in [*items, current] if item.strip()]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="seconds and memory per training step of each method")
    p.add_argument(
        "--methods",
        default="trades,rat_trades,awp+trades,awp+rat_trades",
        help="comma list; METHOD[key=value,...] times a variant, e.g. rat_trades[sigma_target=0.05] or "
        "trades[ema=0.995] (the step with weight averaging)",
    )
    p.add_argument("--model", default=DEFAULTS.model, help=f"architecture (default {DEFAULTS.model})")
    p.add_argument("--batch", type=int, default=DEFAULTS.batch, help=f"batch size (default {DEFAULTS.batch})")
    p.add_argument("--input", default="3x32x32", help="CxHxW of the random inputs (default 3x32x32)")
    p.add_argument("--classes", type=int, default=DEFAULTS.classes, help="number of classes (default 10)")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps, help="attack steps (default 10)")
    p.add_argument("--device", default=DEFAULTS.device, help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=DEFAULTS.repeats, help="timed steps per method (default 5)")
    p.add_argument("--warmup", type=int, default=DEFAULTS.warmup, help="untimed steps per method (default 1)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--channels-last", action="store_true", help="NHWC model and inputs")
    p.add_argument("--compile", action="store_true", help="attacks through torch.compile (run.compile=true)")
    p.add_argument("--no-memory", action="store_true", help="skip memory (CPU: one subprocess per method)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    methods = method_list(args.methods)
    config = BenchConfig(
        methods=methods, model=args.model, batch=args.batch, shape=_shape(args.input), classes=args.classes,
        steps=args.steps, device=args.device, threads=args.threads, repeats=args.repeats, warmup=args.warmup,
        precision=args.precision, channels_last=args.channels_last, compile=args.compile,
    )  # fmt: skip
    out = benchmark(config, memory=not args.no_memory, progress=not args.quiet)
    print(
        f"{config.model}, batch {config.batch}, input {args.input}, {config.steps} attack steps, "
        f"{out['device']}, {config.precision}{', channels_last' if config.channels_last else ''}"
        f"{', compile' if config.compile else ''}, "
        f"threads {config.threads or 'default'}, median of {config.repeats}"
    )
    print(format_bench(out))
    if args.json:
        print(json.dumps(out))
    return 0


def format_bench(out: dict) -> str:
    """The table of :func:`ratt.bench.benchmark`'s result: time, throughput, FLOP rate, memory."""
    rows = []
    for name, row in out["time"].items():
        mem = out["memory"].get(name, {})
        rows.append([
            name, f"{row['seconds']:.3f}", f"{row['seconds_ratio']:.3f}" if "seconds_ratio" in row else "-",
            f"{row['images_per_second']:.1f}",
            f"{row['tflops_per_second']:.2f}" if "tflops_per_second" in row else "-",
            f"{mem['step_bytes'] / 2**20:.1f}" if mem else "-",
            f"{mem['step_bytes_ratio']:.3f}" if "step_bytes_ratio" in mem else "-",
        ])  # fmt: skip
    header = ["method", "s/step", "× trades", "img/s", "TFLOP/s", "step MiB", "× trades"]
    return text_table(header, rows, right=[False] + [True] * 6)
