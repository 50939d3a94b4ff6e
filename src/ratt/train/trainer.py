"""The training loop: epochs of steps, per-epoch validation, checkpoints, the final test.

The pieces live beside it: :mod:`ratt.train.setup` builds the run's objects,
:mod:`ratt.train.step` is one optimizer step, :mod:`ratt.train.checkpointing` owns the run
directory and the resume protocol, :mod:`ratt.train.interrupt` turns SIGINT/SIGTERM into a
clean stop. This module only orchestrates them: :meth:`Trainer.train_and_test` trains to
``optim.epochs`` and tests the best checkpoint.

The entry points are in :mod:`ratt.train.entry`: :func:`~ratt.train.entry.train` (a config
into a directory) and :func:`~ratt.train.entry.resume_run` (a directory alone, from its saved
config). The directory's lock (:mod:`ratt.core.lock`) is held for the whole run: a second
writer gets a one-line error naming this process.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed
from tqdm.auto import tqdm

from ratt import config as cfg
from ratt.core import distributed as ddp
from ratt.core.env import versions
from ratt.core.rank0 import run_on_rank0
from ratt.core.rng import rng_state, set_rng_state
from ratt.core.table import plural
from ratt.data import to_float
from ratt.data.stream import held
from ratt.errors import UserError
from ratt.eval import evaluate
from ratt.eval.overfitting import flagged_epoch, new_collapse
from ratt.flatness import cheap_measures
from ratt.models import runs_code
from ratt.runs import EMA_SUFFIX, read_weights, resolve_checkpoint
from ratt.runs.tensorboard import TensorBoardLog
from ratt.train import faults
from ratt.train.checkpointing import Checkpointer, LoopState
from ratt.train.cost import summary_fields
from ratt.train.feed import build_feed
from ratt.train.interrupt import StopSignals, TrainingInterrupted
from ratt.train.precision import to_channels_last
from ratt.train.setup import build_setup

log = logging.getLogger(__name__)


class Trainer:
    """Runs one training configuration into ``out_dir``.

    Files written (see :class:`ratt.runs.RunFiles`): ``config.yaml``, ``versions.json``,
    ``metrics.jsonl`` (one JSON object per epoch), ``checkpoints/{last,best}.safetensors``
    and the training state, ``summary.json`` (test accuracy of the best checkpoint).
    A full checkpoint is taken at every epoch end and every ``run.checkpoint_every`` steps,
    so a kill at any instant leaves a consistent checkpoint to resume from exactly.

    Under ``torchrun`` the trainer is data-parallel (see :mod:`ratt.core.distributed` for the
    exact semantics): ``data.batch_size`` is the global batch, training forwards go through
    DistributedDataParallel, attacks through the unwrapped module. Only rank 0 writes files
    and evaluates (validation and the final test, over the full split, in fp32, so its
    numbers equal ``ratt eval``); the other ranks wait and receive its results. Checkpoints
    hold the unwrapped module, so any world size can load and resume them.
    """

    def __init__(self, config: cfg.TrainConfig, out_dir: str | Path) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self._owns_group = not ddp.group_initialized()
        self.setup = setup = build_setup(config)
        self.dist, self.device, self.model, self.method = setup.dist, setup.device, setup.model, setup.method
        ddp.check_shared_directory(self.out_dir, self.dist)  # before any rank reads a checkpoint
        self.feed = build_feed(setup, config)
        self.checkpointer = Checkpointer(self.out_dir, config, self.dist.is_main)
        self.loop = LoopState()
        self.signals = StopSignals()
        self.tensorboard: TensorBoardLog | None = None
        self.resumed = False  # continued from a checkpoint (its TensorBoard stream is rewritten from there)
        self._fault = faults.planned_fault(self.dist.rank)  # None outside the tests
        self._started = time.perf_counter()  # reset when training starts (summary.json's wall_seconds)

    @property
    def _stateful(self) -> dict[str, Any]:
        """The objects whose ``state_dict`` a full checkpoint holds (None: not in this run)."""
        s = self.setup
        return {
            "optimizer": s.optimizer, "scheduler": s.scheduler, "method": s.method, "scaler": s.scaler,
            "ema": s.ema,
        }  # fmt: skip

    def _save_weights(self, name: str, raw: bool = True) -> None:
        """``NAME.safetensors`` (the model's weights) and, with weight averaging,
        ``NAME.ema.safetensors`` (the averaged ones)."""
        if raw:
            self.checkpointer.save_weights(self.model, name, self.loop)
        if self.setup.ema is not None:
            with self.setup.ema.applied(self.model):
                self.checkpointer.save_weights(self.model, f"{name}{EMA_SUFFIX}", self.loop)

    def save_last(self) -> None:
        """A full checkpoint: weights, optimizer, schedule, method, scaler, RNGs, loop position."""
        self.checkpointer.save_last(self.model, self._stateful, self.loop, self.device)

    def resume(self) -> None:
        """Continue exactly from the last checkpoint (see :meth:`Checkpointer.resume`)."""
        self.loop = self.checkpointer.resume(self.model, self._stateful, self.device)
        self.resumed = True

    # ------------------------------------------------------------------------------ loop
    def train_epoch(self) -> dict[str, float]:
        """Train from the current position to the end of the epoch.

        Returns the epoch's mean losses and its wall time. Raises ``TrainingInterrupted``
        (after saving) when a signal arrived, and saves every ``run.checkpoint_every`` steps.
        """
        loop, setup, run = self.loop, self.setup, self.config.run
        self.model.train()
        self.method.start_epoch(loop.epoch)
        orders = order, extra_order = setup.plan.epoch_orders(loop.epoch)
        batches = self.feed.epoch(loop.epoch, loop.step_in_epoch, orders)
        show = run.progress and self.dist.is_main
        bar = tqdm(
            total=setup.steps_per_epoch, initial=loop.step_in_epoch, desc=f"epoch {loop.epoch + 1}",
            leave=False, disable=None if show else True,
        )  # fmt: skip
        start = time.perf_counter() - loop.epoch_seconds
        while loop.step_in_epoch < setup.steps_per_epoch and not self._step_cap_reached():
            faults.trigger(loop.epoch * setup.steps_per_epoch + loop.step_in_epoch, self._fault)
            x, y = next(batches)
            if run.channels_last:
                x = to_channels_last(x)
            outcome = setup.step(x, y, stop_requested=self.signals.received is not None)
            if outcome.signalled and self.signals.received is None:
                self.signals.received = signal.SIGTERM  # another rank was asked to stop: stop together
            if outcome.finite:
                for key, value in outcome.sums.items():  # summed on the device: no sync per step
                    loop.sums[key] = loop.sums.get(key, 0.0) + value
            elif not run.skip_nonfinite:
                raise UserError(
                    f"non-finite loss at epoch {loop.epoch + 1}, step {loop.step_in_epoch}; the last good "
                    f"checkpoint is {self.checkpointer.files.weights('last')} (try a smaller optim.lr, or "
                    "run.skip_nonfinite=true to skip such batches)"
                )
            else:
                loop.skipped += 1
                log.warning("skipped a batch with a non-finite loss (%d so far)", loop.skipped)
            loop.step_in_epoch += 1
            bar.update(1)
            if not bar.disable and loop.step_in_epoch % 10 == 0:
                bar.set_postfix(loss=f"{float(outcome.loss):.3f}")
            loop.epoch_seconds = time.perf_counter() - start
            every = run.checkpoint_every
            if self.signals.received is not None or (every and loop.step_in_epoch % every == 0):
                if loop.step_in_epoch < setup.steps_per_epoch:
                    self.save_last()
                    if self.signals.received is not None:
                        bar.close()
                        raise self._interrupted(self.signals.received, loop.step_in_epoch)
        bar.close()
        seen = len(order) + (0 if extra_order is None else len(extra_order))  # images this epoch
        if loop.step_in_epoch < setup.steps_per_epoch:  # cut short by run.max_steps
            seen = sum(sum(len(i) for i in setup.plan.step_indices(orders, k) if i is not None)
                       for k in range(loop.step_in_epoch))  # fmt: skip
        metrics = {f"train_{k}": float(v) / seen for k, v in loop.sums.items()}
        metrics["train_seconds"] = loop.epoch_seconds
        if self.feed.skipped:  # data.on_bad_image=skip: images left out since this process started
            metrics["skipped_images"] = self.feed.skipped
        return metrics

    def _step_cap_reached(self) -> bool:
        """``run.max_steps`` optimizer steps are done (counted over every epoch)."""
        cap, loop = self.config.run.max_steps, self.loop
        return cap is not None and loop.epoch * self.setup.steps_per_epoch + loop.step_in_epoch >= cap

    def validate(self) -> dict[str, float]:
        """Clean and PGD accuracy on a fixed training probe and the validation split (and the
        test split with ``run.select=test``), with the averaged weights when ``optim.ema_decay``
        is set; cheap flatness measures every ``run.flatness_every`` epochs."""
        ema = self.setup.ema
        with ema.applied(self.model) if ema is not None else contextlib.nullcontext():
            return self._validate()

    def _validate(self) -> dict[str, float]:
        run, data = self.config.run, self.setup.data
        attacks = ["clean", f"pgd{run.val_attack_steps}"]
        splits = [("train", self.setup.probe()), ("val", data.held("val"))]
        if run.select == "test":
            splits.append(("test", data.held("test")))
        out: dict[str, float] = {}
        for prefix, dataset in splits:
            if len(dataset) == 0:
                continue
            result = evaluate(
                self.model, dataset, attacks, self.setup.threat,
                batch_size=run.eval_batch_size, seed=run.seed, device=self.device,
            )  # fmt: skip
            out[f"{prefix}_clean_acc"] = result.accuracy["clean"]
            out[f"{prefix}_robust_acc"] = result.robust
        if len(data.val):  # the catastrophic-overfitting guard's FGSM accuracy (no random draw)
            fgsm = evaluate(
                self.model, data.held("val"), ["fgsm"], self.setup.threat, batch_size=run.eval_batch_size,
                seed=run.seed, device=self.device,
            )  # fmt: skip
            out["val_fgsm_acc"] = fgsm.accuracy["fgsm"]
        if run.track_flatness and (self.loop.epoch + 1) % run.flatness_every == 0:
            out.update(self.flatness())
        return out

    def flatness(self) -> dict[str, float]:
        """Cheap flatness measures on the first ``run.flatness_points`` validation images
        (training images if there is no validation split), prefixed ``flat_``."""
        data = self.setup.data
        n = min(self.config.run.flatness_points, len(data.val) or len(data.train))
        source = data.held("val") if len(data.val) else data.train
        first = held(source.subset(torch.arange(n)))
        x, y = to_float(first.images).to(self.device), first.labels.to(self.device)
        measures = cheap_measures(self.model, x, y, threat=self.setup.threat, seed=self.config.run.seed)
        return {f"flat_{key}": value for key, value in measures.items()}

    def _validate_on_rank0(self) -> dict[str, float]:
        """:meth:`validate` on rank 0; every rank gets its numbers and rank 0's RNG state
        (evaluation may draw from the global generators: the ranks' streams stay equal)."""
        if not self.dist.enabled:
            return self.validate()
        metrics, state = self._on_rank0(
            lambda: (self.validate(), rng_state(self.device)), f"validation of epoch {self.loop.epoch + 1}"
        )
        if not self.dist.is_main:
            set_rng_state(state, self.device)
        return metrics

    def _end_epoch(self, train_metrics: dict[str, float]) -> None:
        """Validate, log, write the metrics row, then the checkpoints (in that order)."""
        loop, epochs = self.loop, self.config.optim.epochs
        loop.elapsed += loop.epoch_seconds
        metrics: dict[str, Any] = {
            "epoch": loop.epoch + 1, "lr": self.setup.optimizer.param_groups[0]["lr"], **train_metrics
        }  # fmt: skip
        if loop.skipped:
            metrics["skipped_batches"] = loop.skipped
        last = loop.epoch + 1 == epochs or self._step_cap_reached()
        if (loop.epoch + 1) % self.config.run.val_every == 0 or last:
            metrics.update(self._validate_on_rank0())
        collapse = new_collapse(loop.metrics, metrics, self.config.run.co_drop)
        if collapse is not None:
            metrics["catastrophic_overfitting"] = collapse.epoch
            (log.warning if self.dist.is_main else log.debug)("%s", collapse.describe())
        metrics.update(self.method.epoch_logs())
        metrics["seconds"] = loop.elapsed
        self.checkpointer.append_metrics(metrics, loop)
        if self.tensorboard is not None:
            self.tensorboard.log(metrics, metrics["epoch"])
        loop.end_epoch()
        robust = metrics.get(f"{self.config.run.select}_robust_acc")
        score = metrics.get(f"{self.config.run.select}_{self.method.select_by}_acc")
        improved = score is not None and score > loop.best_robust
        if improved:
            loop.best_robust = score
            self._save_weights("best")
        keep = self.config.run.keep_every
        if keep and loop.epoch % keep == 0:
            self._save_weights(f"epoch-{loop.epoch:04d}")
        self.save_last()
        if self.setup.ema is not None:
            self._save_weights("last", raw=False)
        (log.info if self.dist.is_main else log.debug)(
            "epoch %d/%d loss %.4f val clean %s robust %s%s", loop.epoch, epochs,
            metrics.get("train_loss", float("nan")), _pct(metrics.get("val_clean_acc")), _pct(robust),
            " *" if improved else "",
        )  # fmt: skip

    def train_and_test(self) -> dict[str, Any]:
        """Train to ``optim.epochs``, then evaluate the best checkpoint on the test split. The
        caller holds the run directory's lock (:func:`ratt.train.checkpointing.run_lock`), taken
        once at the entry points of :mod:`ratt.train.entry` before the trainer is built."""
        config = self.config
        self.checkpointer.start({**versions(self.device), "world_size": str(self.dist.world)})
        if self.dist.is_main:
            log.info(
                "training %s with %s on %s (%s), %s, %s, out=%s", config.model.name,
                config.method.name, config.data.name, self.setup.threat.describe(),
                plural(config.optim.epochs, "epoch"), plural(self.dist.world, "process", "processes"),
                self.out_dir,
            )  # fmt: skip
        if config.run.tensorboard and self.dist.is_main:  # a resumed run rewrites from its epoch on
            self.tensorboard = TensorBoardLog(self.out_dir, self.loop.epoch + 1 if self.resumed else None)
        self._started = time.perf_counter()
        with self.signals:
            while (
                self.loop.epoch < config.optim.epochs and not self._step_cap_reached() and not self._co_stop
            ):
                self._end_epoch(self.train_epoch())
                if self.signals.received is not None:
                    raise self._interrupted(self.signals.received, 0)
        with StopSignals(immediate=True) as stop:  # the final test: a signal stops it at once
            try:
                return self.finish()
            except KeyboardInterrupt:
                if stop.received is None:
                    raise
                raise self._interrupted(stop.received, 0, final_test=True) from None

    @property
    def _co_stop(self) -> bool:
        """``run.on_co=stop`` and the run has flagged catastrophic overfitting."""
        return self.config.run.on_co == "stop" and flagged_epoch(self.loop.metrics) is not None

    def _interrupted(self, signum: int, step: int, *, final_test: bool = False) -> TrainingInterrupted:
        """The exception that stops the run, with the resume command (``--trust-code`` when
        the run's model is the user's code)."""
        trust = runs_code(self.config.model.name)
        epoch = self.loop.epoch
        return TrainingInterrupted(signum, self.out_dir, epoch, step, final_test=final_test, trust_code=trust)

    def finish(self) -> dict[str, Any]:
        """Evaluate the selected checkpoint on the test split and write ``summary.json``
        (rank 0; the other ranks wait and return its summary)."""
        if self.dist.enabled:
            return self._on_rank0(self._finish, "final test")
        return self._finish()

    def _on_rank0(self, compute: Callable[[], Any], what: str) -> Any:
        """``compute()`` on rank 0, its result on every rank; the others wait on the store,
        not in a collective, so ``run.dist_timeout`` need not cover an evaluation."""
        stale = datetime.timedelta(minutes=self.config.run.dist_timeout)
        return run_on_rank0(compute, rank=self.dist.rank, tag=what, stale_after=stale)

    def _finish(self) -> dict[str, Any]:
        chosen = resolve_checkpoint(self.out_dir)
        if self.setup.ema is not None:  # the averaged weights of the selected epoch
            chosen = chosen.with_name(f"{chosen.stem}{EMA_SUFFIX}{chosen.suffix}")
        weights, _ = read_weights(chosen)
        self.model.load_state_dict(weights)
        run = self.config.run
        result = evaluate(
            self.model, self.setup.data.streamed("test"), run.test_attacks, self.setup.threat,
            batch_size=run.eval_batch_size, seed=run.seed, device=self.device, progress=run.progress,
        )  # fmt: skip
        summary = {
            "checkpoint": chosen.stem,
            "weights": "ema" if self.setup.ema is not None else "raw",
            "selected_on": run.select,
            "selected_by": self.method.select_by,
            "epochs": self.loop.epoch,
            "train_seconds": self.loop.elapsed,
            "skipped_batches": self.loop.skipped,
            "threat": self.setup.threat.__dict__,
            "test": result.to_dict(),
            **self._guard_and_cost(),
        }
        self.checkpointer.write_summary(summary)
        if self.tensorboard is not None:
            scalars = {f"test_{k}": v for k, v in result.accuracy.items()}
            self.tensorboard.log({**scalars, "test_robust": result.robust}, self.loop.epoch)
            self.tensorboard.close()
        return summary

    def _guard_and_cost(self) -> dict[str, Any]:
        """summary.json's ``catastrophic_overfitting``, ``stopped`` and ``cost`` (:mod:`ratt.train.cost`)."""
        loop = self.loop
        return summary_fields(
            self.config, loop.metrics, epochs_done=loop.epoch, steps_per_epoch=self.setup.steps_per_epoch,
            attack_steps=self.setup.threat.steps, train_seconds=loop.elapsed,
            wall_seconds=time.perf_counter() - self._started, devices=self.dist.world,
        )  # fmt: skip

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self._owns_group:
            ddp.destroy_group()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"
