"""``ratt doctor --gpu``: is this CUDA machine ready for ratt, and how fast is it?

Three sections, one table and one JSON file (:func:`run_doctor`):

- ``cuda``: every method's step in fp32/bf16, with and without channels_last; RAT's
  statistics against float64 on the CPU; AWP's exact restore; the attacks' projection;
  ``run.compile=true`` and its fallback; AutoAttack; DDP over NCCL through torchrun; a
  checkpoint moved GPU -> CPU -> GPU (:mod:`ratt.doctor.checks`, :mod:`ratt.doctor.runs`,
  :mod:`ratt.doctor.ddp`; ``tests/cuda`` runs the same functions under pytest).
- ``bench``: ``ratt bench`` on WRN-34-10 and PreActResNet-18 (batch 128) for trades,
  rat_trades, awp+trades, awp+rat_trades in fp32, bf16, bf16 + channels_last and
  + compile: s/step, images/s, TFLOP/s against docs/scaling.md's FLOP model, step memory,
  the RAT/TRADES ratio (:mod:`ratt.doctor.gpubench`).
- ``run``: a 300-step synthetic training run stopped by SIGTERM and resumed, compared bit
  for bit with an uninterrupted one (:func:`ratt.doctor.runs.check_interrupted_run`).

Everything runs on synthetic CIFAR-shaped data (:mod:`ratt.doctor.synthetic`): no
internet, no dataset files. ``dry_run=True`` runs the same script on the CPU with tiny sizes.
"""

from __future__ import annotations

from ratt.doctor.report import format_markdown, format_table
from ratt.doctor.result import CheckResult, Sizes, dry_run_sizes, gpu_quick_sizes, gpu_sizes
from ratt.doctor.run import SECTIONS, DoctorOptions, DoctorReport, run_doctor

__all__ = [
    "SECTIONS",
    "CheckResult",
    "DoctorOptions",
    "DoctorReport",
    "Sizes",
    "dry_run_sizes",
    "format_markdown",
    "format_table",
    "gpu_quick_sizes",
    "gpu_sizes",
    "run_doctor",
]
