"""The training loop: data, model, method, SGD, schedule, per-epoch validation, checkpoints."""

from __future__ import annotations

import json
import logging
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
from ratt.train.checkpoint import (
    WEIGHTS_SUFFIX,
    load_state,
    read_weights,
    resolve_checkpoint,
    save_state,
    save_weights,
)
from ratt.train.schedules import lr_multiplier

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available else CPU; otherwise ``torch.device(name)``, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"run.device={name} but no CUDA device is available (use run.device=cpu)")
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


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class RunData:
    """The three splits of a run, loaded once."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset

    @classmethod
    def load(cls, data: cfg.DataConfig) -> RunData:
        return cls(
            *(
                load(data.name, split, data.root, data.val_size, data.download)
                for split in ("train", "val", "test")
            )
        )


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


class Trainer:
    """Runs one training configuration into ``out_dir``.

    Files written: ``config.yaml`` (resolved), ``metrics.jsonl`` (one JSON object per epoch),
    ``checkpoints/{last,best}.safetensors`` (weights + config), ``checkpoints/last_state.pt``
    (optimizer, schedule, RNG), ``summary.json`` (test accuracy of the best checkpoint).
    """

    def __init__(self, config: cfg.TrainConfig, out_dir: str | Path) -> None:
        cfg.validate(config)
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.run.device)
        if config.run.threads:
            torch.set_num_threads(config.run.threads)
        seed_everything(config.run.seed)
        self.data = RunData.load(config.data)
        self.info = self.data.train.info
        self.threat = threat_model(config, self.info)
        self.model = build_model(config, self.info).to(self.device)
        self.method = build_method(
            config.method.name, self.model, self.threat, config.method, self.info.num_classes
        )
        opt = config.optim
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=opt.lr,
            momentum=opt.momentum,
            weight_decay=opt.weight_decay,
            nesterov=opt.nesterov,
        )
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
        self.epoch = 0
        self.best_robust = -1.0

    # ----------------------------------------------------------------------------- files
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def _metadata(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "ratt_version": ratt.__version__,
            "format": "ratt-checkpoint-1",
        }

    def save(self, name: str) -> None:
        """Write ``checkpoints/{name}.safetensors`` (and the full state for ``last``)."""
        save_weights(self.model, self.checkpoint_dir / f"{name}{WEIGHTS_SUFFIX}", self._metadata())
        if name == "last":
            state = {
                "epoch": self.epoch,
                "best_robust": self.best_robust,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "method": self.method.state_dict(),
                "rng": _rng_state(),
            }
            save_state(state, self.checkpoint_dir / "last_state.pt")

    def resume(self) -> None:
        """Continue from ``checkpoints/last``: weights, optimizer, schedule, RNG, epoch."""
        weights, meta = read_weights(self.checkpoint_dir / f"last{WEIGHTS_SUFFIX}")
        saved = meta.get("config")
        if saved != self.config.to_dict():
            changed = _diff(saved or {}, self.config.to_dict())
            allowed = {"optim.epochs", "run.progress", "run.threads", "run.device"}
            bad = [k for k in changed if k not in allowed]
            if bad:
                raise UserError(
                    f"cannot resume {self.out_dir}: config differs in {', '.join(bad)} "
                    f"(only {', '.join(sorted(allowed))} may change)"
                )
        self.model.load_state_dict(weights)
        state = load_state(self.checkpoint_dir / "last_state.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        _set_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.best_robust = float(state["best_robust"])
        log.info("resumed %s at epoch %d", self.out_dir, self.epoch)

    # ------------------------------------------------------------------------------ loop
    def train_epoch(self) -> dict[str, float]:
        """One pass over the training split; returns mean losses and the epoch's wall time."""
        self.model.train()
        self.method.start_epoch(self.epoch)
        order_gen = torch.Generator().manual_seed(self.config.run.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.train_labels), generator=order_gen).to(self.device)
        batch = self.config.data.batch_size
        sums: dict[str, float] = {}
        start = time.perf_counter()
        bar = tqdm(
            range(0, len(order), batch),
            desc=f"epoch {self.epoch + 1}",
            leave=False,
            disable=None if self.config.run.progress else True,
        )
        for lo in bar:
            index = order[lo : lo + batch]
            x = augment(to_float(self.train_images[index]), self.augment)
            y = self.train_labels[index]
            loss, parts = self.method.loss(x, y)
            if not torch.isfinite(loss):
                raise UserError(
                    f"non-finite loss at epoch {self.epoch + 1}, step {lo // batch}; the last "
                    f"good checkpoint is {self.checkpoint_dir / 'last.safetensors'} "
                    "(try a smaller optim.lr)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.method.after_step()
            self.scheduler.step()
            parts = {"loss": loss.detach(), **parts}
            for key, value in parts.items():  # summed on the device: no sync per step
                sums[key] = sums.get(key, 0.0) + value * len(index)
            if not bar.disable and bar.n % 10 == 0:
                bar.set_postfix(loss=f"{parts['loss'].item():.3f}")
        metrics = {f"train_{k}": float(v) / len(order) for k, v in sums.items()}
        metrics["train_seconds"] = time.perf_counter() - start
        return metrics

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
        return out

    def fit(self) -> dict[str, Any]:
        """Train to ``optim.epochs``, then evaluate the best checkpoint on the test split."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg.save_yaml(self.config, self.out_dir / "config.yaml")
        (self.out_dir / "versions.json").write_text(json.dumps(versions(self.device), indent=1))
        log.info(
            "training %s with %s on %s (%s), %d epochs, out=%s",
            self.config.model.name,
            self.config.method.name,
            self.config.data.name,
            self.threat.describe(),
            self.config.optim.epochs,
            self.out_dir,
        )
        start = time.perf_counter()
        while self.epoch < self.config.optim.epochs:
            lr = self.optimizer.param_groups[0]["lr"]
            metrics: dict[str, Any] = {"epoch": self.epoch + 1, "lr": lr, **self.train_epoch()}
            self.epoch += 1
            last_epoch = self.epoch == self.config.optim.epochs
            if self.epoch % self.config.run.val_every == 0 or last_epoch:
                metrics.update(self.validate())
            robust = metrics.get("val_robust_acc")
            improved = robust is not None and robust > self.best_robust
            if improved:
                self.best_robust = robust
                self.save("best")
            self.save("last")
            metrics["seconds"] = time.perf_counter() - start
            with open(self.out_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(metrics) + "\n")
            log.info(
                "epoch %d/%d loss %.4f val clean %s robust %s%s",
                self.epoch,
                self.config.optim.epochs,
                metrics["train_loss"],
                _pct(metrics.get("val_clean_acc")),
                _pct(robust),
                " *" if improved else "",
            )
        return self.finish(time.perf_counter() - start)

    def finish(self, seconds: float) -> dict[str, Any]:
        """Evaluate the selected checkpoint on the test split and write ``summary.json``."""
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
            "threat": self.threat.__dict__,
            "test": result.to_dict(),
        }
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
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
    if resume:
        trainer.resume()
    elif (Path(out_dir) / "metrics.jsonl").exists():
        raise UserError(f"{out_dir} already holds a run; use --resume or another --out")
    return trainer.fit()


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
