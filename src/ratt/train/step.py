"""One training step, in one place: the trainer and ``ratt bench`` both run :class:`TrainStep`,
so the benchmark measures exactly what training runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ratt.core.distributed import DistContext, all_reduce_sum, broadcast_buffers
from ratt.methods import Method
from ratt.train.ema import WeightAverage
from ratt.train.precision import autocast


@dataclass
class StepOutcome:
    """What one step did.

    Attributes:
        loss: the batch's loss (detached scalar, on the device).
        sums: each logged part (``loss`` and the method's parts) times the batch size, summed
            over ranks; float64 scalars on the device (no host sync).
        finite: the loss was finite on every rank (else the update was skipped).
        signalled: some rank was asked to stop (SIGINT/SIGTERM) before this step ended.
    """

    loss: Tensor
    sums: dict[str, Tensor]
    finite: bool
    signalled: bool


class TrainStep:
    """Forward and loss under autocast, the finite check (agreed on by every rank), backward
    (loss-scaled for fp16), the optimizer step, the method's ``after_step`` (AWP restores
    the weights there), the weight average's update and the schedule's step.

    A batch whose loss is not finite gets no update (the method's ``after_step`` and the
    schedule still run, so the schedule stays aligned with the step count); the caller
    decides whether that is an error.

    Args:
        model: the module whose mode is set to train (the unwrapped model).
        method: the training objective (its ``loss`` runs the forwards).
        optimizer: updates ``model``'s parameters.
        scheduler: stepped after every step (None: no schedule).
        precision: ``fp32``, ``bf16`` or ``fp16`` (see :mod:`ratt.train.precision`).
        scaler: the fp16 ``GradScaler`` (None otherwise).
        dist: the process group context (one process by default).
        ema: a :class:`ratt.train.ema.WeightAverage` updated after every finite step (None: off).
        sync_buffers: after every step, copy rank 0's buffers (BatchNorm running statistics)
            to the other ranks (DDP without ``run.sync_bn``; see
            :func:`ratt.core.distributed.wrap_ddp`); needs an initialized process group.
    """

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        *,
        precision: str = "fp32",
        scaler: torch.amp.GradScaler | None = None,
        dist: DistContext | None = None,
        ema: WeightAverage | None = None,
        sync_buffers: bool = False,
    ) -> None:
        self.model, self.method, self.optimizer, self.scheduler = model, method, optimizer, scheduler
        self.precision, self.scaler = precision, scaler
        self.dist = dist or DistContext()
        self.ema, self.sync_buffers = ema, sync_buffers

    def __call__(self, x: Tensor, y: Tensor, stop_requested: bool = False) -> StepOutcome:
        """One step on the batch ``x`` (B, C, H, W), ``y`` (B,); ``stop_requested``: this
        process received a stop signal (shared with the other ranks)."""
        self.model.train()
        with autocast(self.precision, x.device):
            loss, parts = self.method.loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        parts = {"loss": loss.detach(), **parts}
        finite, signalled, sums = self._reduce(loss, parts, len(y), stop_requested)
        if finite:
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
        self.method.after_step()
        if self.sync_buffers:  # before the average: it keeps BN statistics too
            broadcast_buffers(self.model)
        if finite and self.ema is not None:  # after after_step: AWP's perturbation is gone
            self.ema.update(self.model)
        if self.scheduler is not None:
            self.scheduler.step()
        return StepOutcome(loss.detach(), sums, finite, signalled)

    def _reduce(
        self, loss: Tensor, parts: dict[str, Tensor], n: int, stop_requested: bool
    ) -> tuple[bool, bool, dict[str, Tensor]]:
        """(finite on every rank, a signal on some rank, parts x batch size summed over ranks).

        With several processes one all-reduce carries all three, so every rank steps or
        skips, and stops, together.
        """
        if not self.dist.enabled:
            return bool(torch.isfinite(loss)), stop_requested, {k: v.double() * n for k, v in parts.items()}
        device = loss.device
        flags = [(~torch.isfinite(loss)).double(), torch.tensor(float(stop_requested), device=device)]
        values = [v.double() * n for v in parts.values()] + [f.to(device) for f in flags]
        total = all_reduce_sum(torch.stack(values), self.dist)
        nonfinite, signalled = total[-2:].tolist()
        return nonfinite == 0, bool(signalled), dict(zip(parts, total[: len(parts)], strict=True))
