"""Everything a training run needs, built from its configuration in a fixed order (the order
decides which random numbers the model initialization and the method draw)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ratt import config as cfg
from ratt.attacks import ThreatModel
from ratt.core import distributed as ddp
from ratt.core.env import configure_runtime, resolve_device
from ratt.core.rng import seed_everything
from ratt.data import DatasetInfo, LazyDataset, TensorDataset, load_for
from ratt.data.custom import Split
from ratt.data.holding import load_extra, stream_or_hold
from ratt.data.layout import ORDERS
from ratt.data.stream import read_in_batches
from ratt.errors import UserError
from ratt.methods import Method, build_method
from ratt.runs import check_names, initial_model, threat_model
from ratt.runs.paths import absolute_paths, check_model_file
from ratt.train.batches import BatchPlan
from ratt.train.ema import WeightAverage
from ratt.train.precision import CompiledOrEager, grad_scaler
from ratt.train.schedules import lr_multiplier, with_warmup
from ratt.train.step import TrainStep


@dataclass
class RunData:
    """The three splits of a run, loaded once.

    Packed and folder data arrive lazy (:class:`LazyDataset`, nothing read); ``val`` is read
    into memory by :meth:`held` when first validated (every epoch reuses it), and the final
    test reads ``test`` batch by batch (:meth:`streamed`). Only rank 0 evaluates, so the other
    ranks of a torchrun never decode them, and no rank holds ImageNet's 50,000 validation
    images whole (7.5 GB at 224 x 224).
    """

    train: TensorDataset | LazyDataset
    val: TensorDataset | LazyDataset
    test: TensorDataset | LazyDataset

    @classmethod
    def load(cls, data: cfg.DataConfig) -> RunData:
        """The splits; packed data and streamed folders stay lazy."""
        train, val, test = (load_for(data, split, lazy=True) for split in ("train", "val", "test"))
        if data.train_limit is not None:
            train = train.subset(torch.arange(min(data.train_limit, len(train))))
        return cls(train, val, test)

    def held(self, split: str) -> TensorDataset:
        """``val`` or ``test`` in memory, read on the first call and kept."""
        return _held(self, split)

    def streamed(self, split: str) -> TensorDataset | LazyDataset:
        """``val`` or ``test`` for one evaluation: a lazy split as it is (each attack reads it
        batch by batch, so it is never held whole), else :meth:`held` (also for folders that
        skip bad images, whose point count is known only once read)."""
        dataset = getattr(self, split)
        return dataset if read_in_batches(dataset) else self.held(split)


def _held(owner: object, name: str) -> TensorDataset:
    """``owner.name`` in memory: a lazy dataset is read once and put in its place."""
    dataset = getattr(owner, name)
    if isinstance(dataset, LazyDataset):
        dataset = dataset.in_memory()
        setattr(owner, name, dataset)
    return dataset


@dataclass(kw_only=True)
class Setup:
    """The objects of one training run (built by name: :func:`build_setup`).

    Attributes:
        dist: this process's place in the process group.
        device: where it computes.
        data, info: the splits and the dataset's description.
        threat: the training threat model.
        model: the network (unwrapped: checkpoints and evaluation use it).
        train_model: what training forwards go through (DDP wrapper with several processes).
        method: the training objective.
        optimizer, scheduler, scaler: SGD, the per-step learning-rate schedule, fp16 scaler.
        step: the training step (:class:`ratt.train.step.TrainStep`).
        steps_per_epoch: optimizer steps per epoch (the same for every world size).
        plan: which images make up each step's batch (:class:`ratt.train.batches.BatchPlan`).
        extra: extra training images (``data.extra``) or None.
        ema: the weight average (``optim.ema_decay``) or None.
        augment: the augmentation applied to training batches.
        train_probe: fixed training images on which training accuracy is logged (lazy for
            packed and folder data until :meth:`probe` reads them).
    """

    dist: ddp.DistContext
    device: torch.device
    data: RunData
    info: DatasetInfo
    threat: ThreatModel
    model: nn.Module
    train_model: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    step: TrainStep
    steps_per_epoch: int
    plan: BatchPlan
    extra: Split | LazyDataset | TensorDataset | None
    ema: WeightAverage | None
    augment: str
    train_probe: TensorDataset | LazyDataset

    def probe(self) -> TensorDataset:
        """The training-accuracy probe in memory, read on the first call and kept."""
        return _held(self, "train_probe")


def build_setup(config: cfg.TrainConfig) -> Setup:
    """Join the process group, seed, load the data, build model, method, optimizer and schedule.
    ``config`` is completed in place: its paths made absolute, a model file's sha256 recorded,
    ``data.layout`` set to the axis order an ``.npz`` file was read in.

    Raises:
        UserError: an invalid config (checked first, before any work).
    """
    _check(config)
    dist, device = _join_and_seed(config)
    data = RunData.load(config.data)
    info = data.train.info
    if info.layout in ORDERS:  # the axis order data.layout=auto read: the run records it
        config.data.layout = info.layout
    threat = threat_model(config, info)
    model, train_model, method = _model_and_method(config, info, threat, dist, device)
    extra = load_extra(config.data, info)
    data.train, extra = stream_or_hold(config.data, data.train, extra)
    plan = BatchPlan(
        len(data.train), config.data.batch_size, dist.world, config.run.seed,
        0 if extra is None else len(extra), config.data.extra_fraction,
    )  # fmt: skip
    # The same for every world size: padding adds < world samples to the last batch.
    steps_per_epoch = plan.steps
    optimizer, scheduler, ema = _optimization(config.optim, model, steps_per_epoch)
    scaler = grad_scaler(config.run.precision, device)
    step = TrainStep(
        model, method, optimizer, scheduler, precision=config.run.precision, scaler=scaler, dist=dist,
        ema=ema, sync_buffers=dist.enabled and not config.run.sync_bn,
    )  # fmt: skip
    probe = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    train_probe = data.train.subset(probe[: max(len(data.val), 256)])
    return Setup(
        dist=dist, device=device, data=data, info=info, threat=threat, model=model, train_model=train_model,
        method=method, optimizer=optimizer, scheduler=scheduler, scaler=scaler, step=step,
        steps_per_epoch=steps_per_epoch, plan=plan, extra=extra, ema=ema,
        augment=config.data.augment or info.augment, train_probe=train_probe,
    )  # fmt: skip


def _check(config: cfg.TrainConfig) -> None:
    """Ranges, names and the model file, before any work; paths made absolute."""
    cfg.validate(config)
    absolute_paths(config)
    check_names(config)
    check_model_file(config)


def _join_and_seed(config: cfg.TrainConfig) -> tuple[ddp.DistContext, torch.device]:
    """Join the process group, pick this process's device, set threads and seed everything."""
    dist = ddp.init_distributed(config.run.dist_backend, config.run.device, config.run.dist_timeout)
    if config.data.batch_size % dist.world:
        raise UserError(
            f"data.batch_size={config.data.batch_size} (the global batch) must be a multiple of "
            f"the {dist.world} processes"
        )
    device = ddp.device_for(dist, resolve_device(config.run.device))
    configure_runtime(config.run.threads, config.run.deterministic)
    seed_everything(config.run.seed)
    return dist, device


def _model_and_method(
    config: cfg.TrainConfig,
    info: DatasetInfo,
    threat: ThreatModel,
    dist: ddp.DistContext,
    device: torch.device,
) -> tuple[nn.Module, nn.Module, Method]:
    """The model (initialized in this order: it decides the random draws), the model training
    forwards go through (DDP with several processes) and the method."""
    model = initial_model(config, info)
    if config.run.sync_bn and dist.enabled:
        model = ddp.convert_sync_batchnorm(model, device)
    model = model.to(device)
    if config.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    method = build_method(config.method.name, model, threat, config.method, info.num_classes)
    train_model: nn.Module = model
    if dist.enabled:
        train_model = ddp.wrap_ddp(model, device)
    attack_model = CompiledOrEager(model, mode=config.run.compile_mode) if config.run.compile else model
    if dist.enabled or config.run.compile:
        method.configure_parallel(train_model, attack_model, dist.shard)
    return model, train_model, method


def _optimization(
    opt: cfg.OptimConfig, model: nn.Module, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, WeightAverage | None]:
    """The optimizer, its per-step schedule and the weight average (``optim.ema_decay`` > 0,
    else None)."""
    fused = {"fused": True} if opt.fused else {}
    if opt.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            model.parameters(), lr=opt.lr, weight_decay=opt.weight_decay, **fused
        )
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay,
            nesterov=opt.nesterov, **fused,
        )  # fmt: skip
    schedule = lr_multiplier(opt.schedule, opt.epochs, steps_per_epoch, opt.milestones, opt.gamma)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, with_warmup(schedule, opt.warmup_epochs * steps_per_epoch)
    )
    ema = WeightAverage(model, opt.ema_decay) if opt.ema_decay > 0 else None
    return optimizer, scheduler, ema
