"""The training loop: data, model, method, SGD, schedule, per-epoch validation, checkpoints."""

from __future__ import annotations

import json
import logging
import os
import platform
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

import ratt
from ratt import config as cfg
from ratt.attacks.threat import ThreatModel, parse_magnitude
from ratt.data import DatasetInfo, TensorDataset, augment, load, to_float
from ratt.errors import UserError
from ratt.eval import evaluate
from ratt.methods import build_method
from ratt.models import create_model
from ratt.train import distributed as ddp
from ratt.train.checkpoint import (
    WEIGHTS_SUFFIX,
    atomic_write,
    load_state,
    read_weights,
    resolve_checkpoint,
    save_state,
    save_weights,
)
from ratt.train.precision import CompiledOrEager, autocast, grad_scaler, to_channels_last
from ratt.train.schedules import lr_multiplier
from ratt.train.state import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)


def resolve_device(name: str, option: str = "run.device") -> torch.device:
    """``auto`` -> CUDA if available else CPU; otherwise ``torch.device(name)``, checked.

    ``option`` names the setting in the error a missing GPU gives.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{option}={name!r} is not a device (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{option}={name} but no CUDA device is visible to torch on this machine (use cpu)")
    return device


def threat_model(config: cfg.TrainConfig, info: DatasetInfo) -> ThreatModel:
    """The training threat model: the config's values, else the dataset's defaults."""
    attack = config.attack
    eps = parse_magnitude(attack.eps, "attack.eps") if attack.eps is not None else info.eps
    step = parse_magnitude(attack.step, "attack.step") if attack.step is not None else info.step
    steps = attack.steps if attack.steps is not None else info.steps
    return ThreatModel(attack.norm, eps, step, steps, random_start=True)


def build_model(config: cfg.TrainConfig, info: DatasetInfo) -> nn.Module:
    """The configured architecture for the dataset's shape, classes and normalization."""
    return create_model(
        config.model.name, info.num_classes, info.shape, info.mean, info.std, config.model.dropout
    )


@dataclass
class RunData:
    """The three splits of a run, loaded once."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset

    @classmethod
    def load(cls, data: cfg.DataConfig) -> RunData:
        train, val, test = (
            load(data.name, split, data.root, data.val_size, data.download)
            for split in ("train", "val", "test")
        )
        if data.train_limit is not None:
            train = train.subset(torch.arange(min(data.train_limit, len(train))))
        return cls(train, val, test)


def versions(device: torch.device) -> dict[str, str]:
    """Python, torch and ratt versions and the device, recorded in every run directory."""
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ratt": ratt.__version__,
        "device": str(device),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the current step is done and a checkpoint is written."""

    def __init__(self, signum: int, out_dir: Path, epoch: int, step: int) -> None:
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: stopped at epoch {epoch + 1}, step {step} and saved the state; "
            f"resume with: ratt train --resume --out {out_dir}"
        )


# Config keys that may differ when resuming; everything else must match the saved run.
RESUMABLE_KEYS = {
    "optim.epochs",
    "run.progress",
    "run.threads",
    "run.device",
    "run.checkpoint_every",
    "run.keep_every",
    "run.val_every",
    "run.eval_batch_size",
    "run.channels_last",
    "run.compile",
    "run.dist_backend",
    "run.dist_timeout",
}
# Fields of metrics.jsonl that measure wall time (the only ones a resumed run changes).
TIMING_FIELDS = ("seconds", "train_seconds")


class Trainer:
    """Runs one training configuration into ``out_dir``.

    Files written: ``config.yaml`` (resolved), ``metrics.jsonl`` (one JSON object per epoch),
    ``checkpoints/{last,best}.safetensors`` (weights + config), ``checkpoints/last_state.pt``
    (optimizer, schedule, RNG, position in the epoch), ``summary.json`` (test accuracy of the
    best checkpoint), ``versions.json``.

    A checkpoint is taken at every epoch end and every ``run.checkpoint_every`` steps; each
    file is replaced atomically and the state file is matched to the weights by a checkpoint
    id, so a kill at any instant leaves a consistent checkpoint to resume from exactly.

    Under ``torchrun`` the trainer is data-parallel (see :mod:`ratt.train.distributed` for
    the exact semantics): ``data.batch_size`` is the global batch, training forwards go
    through DistributedDataParallel, attacks through the unwrapped module. Only rank 0
    writes files and evaluates (validation and the final test, over the full split, in fp32,
    so its numbers equal ``ratt eval``); the other ranks wait and receive its results.
    Checkpoints hold the unwrapped module, so any world size can load and resume them (the
    run directory must be on a filesystem every node sees).
    """

    def __init__(self, config: cfg.TrainConfig, out_dir: str | Path) -> None:
        cfg.validate(config)
        self.config = config
        self.out_dir = Path(out_dir)
        self._owns_group = not _group_initialized()
        self.dist = ddp.init_distributed(config.run.dist_backend, config.run.device, config.run.dist_timeout)
        if config.data.batch_size % self.dist.world:
            raise UserError(
                f"data.batch_size={config.data.batch_size} (the global batch) must be a multiple of "
                f"the {self.dist.world} processes"
            )
        self.device = ddp.device_for(self.dist, resolve_device(config.run.device))
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        if config.run.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        seed_everything(config.run.seed)
        self.data = RunData.load(config.data)
        self.info = self.data.train.info
        self.threat = threat_model(config, self.info)
        model = build_model(config, self.info)
        if config.run.sync_bn and self.dist.enabled:
            model = ddp.convert_sync_batchnorm(model, self.device)
        self.model = model.to(self.device)
        if config.run.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.method = build_method(
            config.method.name, self.model, self.threat, config.method, self.info.num_classes
        )
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            self.train_model = ddp.wrap_ddp(self.model, self.device, sync_buffers=not config.run.sync_bn)
        attack_model = CompiledOrEager(self.model) if config.run.compile else self.model
        if self.dist.enabled or config.run.compile:
            self.method.configure_parallel(self.train_model, attack_model, self.dist.shard)
        self.scaler = grad_scaler(config.run.precision, self.device)
        opt = config.optim
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=opt.lr,
            momentum=opt.momentum,
            weight_decay=opt.weight_decay,
            nesterov=opt.nesterov,
        )
        # The same for every world size: padding adds < world samples to the last batch.
        self.steps_per_epoch = -(-len(self.data.train) // config.data.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lr_multiplier(opt.schedule, opt.epochs, self.steps_per_epoch, opt.milestones, opt.gamma),
        )
        self.augment = config.data.augment or self.info.augment
        self.train_images = self.data.train.images.to(self.device)
        self.train_labels = self.data.train.labels.to(self.device)
        probe = torch.randperm(len(self.data.train), generator=torch.Generator().manual_seed(0))
        self.train_probe = self.data.train.subset(probe[: max(len(self.data.val), 256)])
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0  # completed steps of the current epoch
        self.sums: dict[str, torch.Tensor] = {}  # running sums of the epoch's losses
        self.epoch_seconds = 0.0  # training time spent in the current epoch
        self.elapsed = 0.0  # training time of the whole run (excluding final evaluation)
        self.best_robust = -1.0
        self.skipped = 0
        self.checkpoint_id = 0
        self._signal: int | None = None

    # ----------------------------------------------------------------------------- files
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def _metadata(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "checkpoint_id": self.checkpoint_id,
            "ratt_version": ratt.__version__,
            "format": "ratt-checkpoint-1",
        }

    def _check_finite_weights(self) -> None:
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise UserError(
                    f"weight {name} is not finite at epoch {self.epoch + 1}, step "
                    f"{self.step_in_epoch}; kept the last good checkpoint "
                    f"{self.checkpoint_dir / 'last.safetensors'} (try a smaller optim.lr)"
                )

    def save_weights(self, name: str) -> None:
        """Write ``checkpoints/{name}.safetensors`` (weights + config)."""
        self._check_finite_weights()
        if self.dist.is_main:
            save_weights(self.model, self.checkpoint_dir / f"{name}{WEIGHTS_SUFFIX}", self._metadata())

    def save_last(self) -> None:
        """Write the full training state, consistently even if killed half-way.

        Order: the previous state file becomes ``last_state.prev.pt``, the new state is
        written, then the weights. The weights carry the checkpoint id; resuming takes
        whichever state file has the same id.
        """
        self._check_finite_weights()
        self.checkpoint_id += 1
        if not self.dist.is_main:
            return
        state = {
            "checkpoint_id": self.checkpoint_id,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "sums": {k: v.detach().cpu() for k, v in self.sums.items()},
            "epoch_seconds": self.epoch_seconds,
            "elapsed": self.elapsed,
            "best_robust": self.best_robust,
            "skipped": self.skipped,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "method": self.method.state_dict(),
            "rng": rng_state(self.device),
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        current = self.checkpoint_dir / "last_state.pt"
        if current.exists():
            os.replace(current, self.checkpoint_dir / "last_state.prev.pt")
        save_state(state, current)
        self.save_weights("last")

    def resume(self) -> None:
        """Continue exactly from ``checkpoints/last``: weights, optimizer, schedule, RNG,
        position within the epoch and the epoch's running sums."""
        weights, meta = read_weights(self.checkpoint_dir / f"last{WEIGHTS_SUFFIX}")
        saved = meta.get("config")
        if saved is not None:  # fields added since the run was written take their defaults
            saved = cfg.from_dict(saved).to_dict()
        if saved != self.config.to_dict():
            changed = _diff(saved or {}, self.config.to_dict())
            bad = [k for k in changed if k not in RESUMABLE_KEYS]
            if bad:
                raise UserError(
                    f"cannot resume {self.out_dir}: config differs in {', '.join(bad)} "
                    f"(only {', '.join(sorted(RESUMABLE_KEYS))} may change)"
                )
        state = None
        for name in ("last_state.pt", "last_state.prev.pt"):
            path = self.checkpoint_dir / name
            if path.exists():
                candidate = load_state(path)
                if candidate.get("checkpoint_id") == meta.get("checkpoint_id"):
                    state = candidate
                    break
        if state is None:
            raise UserError(
                f"{self.checkpoint_dir}: no training state matches last.safetensors "
                f"(checkpoint id {meta.get('checkpoint_id')}); cannot resume exactly"
            )
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise UserError(
                f"{self.checkpoint_dir / 'last.safetensors'}: {str(exc).splitlines()[0]}"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"], self.device)
        self.checkpoint_id = int(state["checkpoint_id"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.sums = {k: v.to(self.device) for k, v in state["sums"].items()}
        self.epoch_seconds = float(state["epoch_seconds"])
        self.elapsed = float(state["elapsed"])
        self.best_robust = float(state["best_robust"])
        self.skipped = int(state["skipped"])
        if self.dist.is_main:
            self._truncate_metrics()
        log.info("resumed %s at epoch %d, step %d", self.out_dir, self.epoch + 1, self.step_in_epoch)

    def _truncate_metrics(self) -> None:
        """Drop metrics rows written after the checkpoint (their epoch is being redone)."""
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        rows = [line for line in path.read_text().splitlines() if line.strip()]
        keep = []
        for line in rows:
            try:
                if json.loads(line)["epoch"] <= self.epoch:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError):
                break  # a torn last line from a kill mid-append
        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(row + "\n" for row in keep)))

    # ------------------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous

        def handler(signum, frame):
            if self._signal is not None:  # second signal: stop now
                raise KeyboardInterrupt
            self._signal = signum
            log.warning("%s received: finishing this step, then saving", signal.Signals(signum).name)

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        return previous

    # ------------------------------------------------------------------------------ loop
    def train_epoch(self) -> dict[str, float]:
        """Train from the current position to the end of the epoch.

        Returns the epoch's mean losses and its wall time. Raises ``TrainingInterrupted``
        (after saving) when a signal arrived, and saves every ``run.checkpoint_every`` steps.
        """
        self.model.train()
        self.method.start_epoch(self.epoch)
        order_gen = torch.Generator().manual_seed(self.config.run.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.train_labels), generator=order_gen)
        order = ddp.padded_order(order, self.dist.world).to(self.device)
        batch = self.config.data.batch_size
        every = self.config.run.checkpoint_every
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=self.step_in_epoch,
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            disable=None if self.config.run.progress and self.dist.is_main else True,
        )
        start = time.perf_counter() - self.epoch_seconds
        while self.step_in_epoch < self.steps_per_epoch:
            lo = self.step_in_epoch * batch
            index = order[lo : lo + batch]
            # The global batch is augmented on every rank (identical RNG streams), then sliced.
            x = augment(to_float(self.train_images[index]), self.augment)
            y = self.train_labels[index]
            if self.dist.enabled:
                x, y = ddp.take_shard(x, self.dist.shard), ddp.take_shard(y, self.dist.shard)
            if self.config.run.channels_last:
                x = to_channels_last(x)
            with autocast(self.config.run.precision, self.device):
                loss, parts = self.method.loss(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            parts = {"loss": loss.detach(), **parts}
            finite, step_sums = self._step_sums(loss, parts, len(y))
            if finite:
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    loss.backward()
                    self.optimizer.step()
                self.method.after_step()
                for key, value in step_sums.items():  # summed on the device: no sync per step
                    self.sums[key] = self.sums.get(key, 0.0) + value
            else:
                self.method.after_step()
                if not self.config.run.skip_nonfinite:
                    raise UserError(
                        f"non-finite loss at epoch {self.epoch + 1}, step {self.step_in_epoch}; the "
                        f"last good checkpoint is {self.checkpoint_dir / 'last.safetensors'} (try a "
                        "smaller optim.lr, or run.skip_nonfinite=true to skip such batches)"
                    )
                self.skipped += 1
                log.warning("skipped a batch with a non-finite loss (%d so far)", self.skipped)
            self.scheduler.step()
            self.step_in_epoch += 1
            bar.update(1)
            if not bar.disable and self.step_in_epoch % 10 == 0:
                bar.set_postfix(loss=f"{float(loss):.3f}")
            self.epoch_seconds = time.perf_counter() - start
            if self._signal is not None or (every and self.step_in_epoch % every == 0):
                if self.step_in_epoch < self.steps_per_epoch:
                    self.save_last()
                    if self._signal is not None:
                        bar.close()
                        raise TrainingInterrupted(self._signal, self.out_dir, self.epoch, self.step_in_epoch)
        bar.close()
        seen = len(order)
        metrics = {f"train_{k}": float(v) / seen for k, v in self.sums.items()}
        metrics["train_seconds"] = self.epoch_seconds
        return metrics

    def _step_sums(
        self, loss: torch.Tensor, parts: dict[str, torch.Tensor], n: int
    ) -> tuple[bool, dict[str, torch.Tensor]]:
        """Whether the step's loss is finite (on every rank) and its parts times the batch size.

        With several processes one all-reduce sums the parts over ranks and agrees on
        finiteness and on a pending signal (so every rank stops or skips together).
        """
        if not self.dist.enabled:
            return bool(torch.isfinite(loss)), {k: v.double() * n for k, v in parts.items()}
        flags = [(~torch.isfinite(loss)).double(), torch.tensor(float(self._signal is not None))]
        values = [v.double() * n for v in parts.values()] + [f.to(self.device) for f in flags]
        total = ddp.all_reduce_sum(torch.stack(values), self.dist)
        nonfinite, signalled = total[-2:].tolist()
        if signalled and self._signal is None:
            self._signal = signal.SIGTERM
        return nonfinite == 0, dict(zip(parts, total[: len(parts)], strict=True))

    def validate(self) -> dict[str, float]:
        """Clean and PGD accuracy on a fixed training probe and on the validation split."""
        attacks = ["clean", f"pgd{self.config.run.val_attack_steps}"]
        out: dict[str, float] = {}
        for prefix, dataset in (("train", self.train_probe), ("val", self.data.val)):
            if len(dataset) == 0:
                continue
            result = evaluate(
                self.model,
                dataset,
                attacks,
                self.threat,
                self.config.run.eval_batch_size,
                self.config.run.seed,
                self.device,
            )
            out[f"{prefix}_clean_acc"] = result.accuracy["clean"]
            out[f"{prefix}_robust_acc"] = result.robust
        run = self.config.run
        if run.track_flatness and (self.epoch + 1) % run.flatness_every == 0:
            out.update(self.flatness())
        return out

    def flatness(self) -> dict[str, float]:
        """Cheap flatness measures on the first ``run.flatness_points`` validation images
        (training images if there is no validation split), prefixed ``flat_``."""
        from ratt.flatness import cheap_measures

        source = self.data.val if len(self.data.val) else self.data.train
        n = min(self.config.run.flatness_points, len(source))
        x = to_float(source.images[:n]).to(self.device)
        y = source.labels[:n].to(self.device)
        measures = cheap_measures(self.model, x, y, threat=self.threat, seed=self.config.run.seed)
        return {f"flat_{key}": value for key, value in measures.items()}

    def _validate_on_rank0(self) -> dict[str, float]:
        """:meth:`validate` on rank 0; every rank gets its numbers and rank 0's RNG state
        (evaluation may draw from the global generators: the ranks' streams stay equal)."""
        if not self.dist.enabled:
            return self.validate()
        result = (self.validate(), rng_state(self.device)) if self.dist.is_main else None
        metrics, state = ddp.broadcast_object(result, self.dist)
        if not self.dist.is_main:
            set_rng_state(state, self.device)
        return metrics

    def _end_epoch(self, train_metrics: dict[str, float]) -> None:
        """Validate, log, write the metrics row, then the checkpoints (in that order)."""
        lr = self.optimizer.param_groups[0]["lr"]
        self.elapsed += self.epoch_seconds
        metrics: dict[str, Any] = {"epoch": self.epoch + 1, "lr": lr, **train_metrics}
        if self.skipped:
            metrics["skipped_batches"] = self.skipped
        last_epoch = self.epoch + 1 == self.config.optim.epochs
        if (self.epoch + 1) % self.config.run.val_every == 0 or last_epoch:
            metrics.update(self._validate_on_rank0())
        metrics["seconds"] = self.elapsed
        if self.dist.is_main:
            with open(self.out_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(metrics) + "\n")
        self.epoch += 1
        self.step_in_epoch, self.sums, self.epoch_seconds = 0, {}, 0.0
        robust = metrics.get("val_robust_acc")
        improved = robust is not None and robust > self.best_robust
        if improved:
            self.best_robust = robust
            self.save_weights("best")
        keep = self.config.run.keep_every
        if keep and self.epoch % keep == 0:
            self.save_weights(f"epoch-{self.epoch:04d}")
        self.save_last()
        (log.info if self.dist.is_main else log.debug)(
            "epoch %d/%d loss %.4f val clean %s robust %s%s",
            self.epoch,
            self.config.optim.epochs,
            metrics.get("train_loss", float("nan")),
            _pct(metrics.get("val_clean_acc")),
            _pct(robust),
            " *" if improved else "",
        )

    def fit(self) -> dict[str, Any]:
        """Train to ``optim.epochs``, then evaluate the best checkpoint on the test split."""
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cfg.save_yaml(self.config, self.out_dir / "config.yaml")
            info = {**versions(self.device), "world_size": str(self.dist.world)}
            (self.out_dir / "versions.json").write_text(json.dumps(info, indent=1))
            log.info(
                "training %s with %s on %s (%s), %d epochs, %d process%s, out=%s",
                self.config.model.name,
                self.config.method.name,
                self.config.data.name,
                self.threat.describe(),
                self.config.optim.epochs,
                self.dist.world,
                "es" if self.dist.enabled else "",
                self.out_dir,
            )
        previous = self._install_signal_handlers()
        try:
            while self.epoch < self.config.optim.epochs:
                self._end_epoch(self.train_epoch())
                if self._signal is not None:
                    raise TrainingInterrupted(self._signal, self.out_dir, self.epoch, 0)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.finish(self.elapsed)

    def finish(self, seconds: float) -> dict[str, Any]:
        """Evaluate the selected checkpoint on the test split and write ``summary.json``
        (rank 0; the other ranks wait and return its summary)."""
        if self.dist.enabled:
            summary = self._finish(seconds) if self.dist.is_main else None
            return ddp.broadcast_object(summary, self.dist)
        return self._finish(seconds)

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        import torch.distributed as dist

        if self._owns_group and _group_initialized():
            dist.destroy_process_group()

    def _finish(self, seconds: float) -> dict[str, Any]:
        chosen = resolve_checkpoint(self.out_dir)
        weights, _ = read_weights(chosen)
        self.model.load_state_dict(weights)
        result = evaluate(
            self.model,
            self.data.test,
            self.config.run.test_attacks,
            self.threat,
            self.config.run.eval_batch_size,
            self.config.run.seed,
            self.device,
            progress=self.config.run.progress,
        )
        summary = {
            "checkpoint": chosen.stem,
            "epochs": self.epoch,
            "train_seconds": seconds,
            "skipped_batches": self.skipped,
            "threat": self.threat.__dict__,
            "test": result.to_dict(),
        }
        atomic_write(
            self.out_dir / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=1))
        )
        return summary


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def train(config: cfg.TrainConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train ``config`` into ``out_dir`` (resuming from its last checkpoint if ``resume``).

    Returns the summary: test accuracy of the best checkpoint under ``run.test_attacks``.
    """
    trainer = Trainer(config, out_dir)
    try:
        if resume:
            trainer.resume()
        elif (Path(out_dir) / "metrics.jsonl").exists():
            raise UserError(f"{out_dir} already holds a run; use --resume or another --out")
        return trainer.fit()
    finally:
        trainer.close()


def _group_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, cfg.TrainConfig]:
    """Load a run directory's best checkpoint (or a ``.safetensors`` file).

    Returns:
        (model in eval mode on ``device``, the run's ``TrainConfig``).
    Raises:
        UserError: missing, corrupt or mismatched file (one line naming it).
    """
    file = resolve_checkpoint(path)
    weights, meta = read_weights(file)
    if "config" not in meta:
        raise UserError(f"{file} is not a ratt checkpoint (no config in its metadata)")
    config = cfg.from_dict(meta["config"])
    from ratt import data

    model = build_model(config, data.info(config.data.name))
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{file} does not match {config.model.name}: {first}") from None
    return model.to(device).eval(), config
