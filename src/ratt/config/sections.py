"""The configuration's sections: one dataclass per concern, every field with its default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# Every fixed set of values a key may take, defined here once; the modules that implement
# them (data, attacks, methods, train) import them from here.
LAYOUTS = ("auto", "nchw", "nhwc")  # axis orders of an .npz file's images (data.layout)
AUGMENTATIONS = ("none", "crop", "crop_flip")  # data.augment (None: the dataset's default)
NORMS = ("linf", "l2")  # threat-model norms (attack.norm, ratt eval --norm)
SECOND_ORDER_MODES = ("reference", "symmetric")  # method.second_order
NOISE_KINDS = ("gaussian", "uniform", "laplace")  # method.noise: the weight noise's distribution
NOISE_SCOPES = ("conv", "all")  # method.noise_on: which weights RAT perturbs while crafting
TAYLOR_MODES = ("first+second", "first", "second", "none")  # method.taylor: RAT's Taylor terms on
NUMERICS = ("paper", "code")  # method.numerics: the released codes' arithmetic, or the papers'
SCHEDULES = ("piecewise", "cosine", "onecycle", "constant")  # optim.schedule
OPTIMIZERS = ("sgd", "adamw")  # optim.optimizer
SELECTIONS = ("val", "test")  # run.select: the split that picks the best checkpoint
PRECISIONS = ("fp32", "bf16", "fp16")  # run.precision
DIST_BACKENDS = ("auto", "nccl", "gloo")  # run.dist_backend
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # run.compile_mode: torch.compile's
STREAM_MODES = ("auto", "true", "false")  # data.stream: read training images on demand by workers
BAD_IMAGE_POLICIES = ("fail", "skip")  # data.on_bad_image: an undecodable file met while streaming
DECODERS = ("pil", "torchvision")  # data.decoder: what decodes a streamed folder's image files
ON_CO = ("continue", "stop")  # run.on_co: what a run does when it flags catastrophic overfitting
# The keys whose value is one of a fixed set: read by validation, `ratt config` and --help.
# A key whose default is None also accepts None (unset).
CHOICES: dict[str, tuple[str, ...]] = {
    "data.layout": LAYOUTS,
    "data.augment": AUGMENTATIONS,
    "data.stream": STREAM_MODES,
    "data.on_bad_image": BAD_IMAGE_POLICIES,
    "data.decoder": DECODERS,
    "attack.norm": NORMS,
    "method.second_order": SECOND_ORDER_MODES,
    "method.noise": NOISE_KINDS,
    "method.noise_on": NOISE_SCOPES,
    "method.taylor": TAYLOR_MODES,
    "method.numerics": NUMERICS,
    "optim.schedule": SCHEDULES,
    "optim.optimizer": OPTIMIZERS,
    "run.select": SELECTIONS,
    "run.precision": PRECISIONS,
    "run.dist_backend": DIST_BACKENDS,
    "run.compile_mode": COMPILE_MODES,
    "run.on_co": ON_CO,
}
# Marks a field that may change when a run is resumed (see RESUMABLE_KEYS at the end).
RESUMABLE = {"resumable": True}


def _resumable(default: Any) -> Any:
    """A field with ``default`` that a resumed run may change (``optim.epochs=10``)."""
    return field(default=default, metadata=RESUMABLE)


@dataclass
class DataConfig:
    """Which data and how it is batched.

    Attributes:
        name: dataset registry name; ``imagefolder`` or ``npz`` for your own data in ``root``,
            ``packed`` for a directory written by ``ratt data pack``, ``imagenet`` for
            ILSVRC-2012 folders (``root/train/<wnid>/``, ``root/val/<wnid>/``).
        root: folder searched for the files / used for downloads (None: the default); for
            ``imagefolder`` the folder holding ``train/`` and ``test/``, for ``npz`` the file.
        image_size: ``imagefolder``: resize images to this square size (None: from the files).
        channels: ``imagefolder``: force 1 or 3 channels (None: from the files); ``npz``: the
            channel count the images have (picks the channel axis where the shape leaves two).
        layout: ``npz``: the images' axis order, ``nchw`` or ``nhwc``; ``auto`` reads it from the
            shape (a channel axis of size 1, 3 or 4 at the front or the back, never the dtype)
            and refuses an ambiguous shape; the run records the layout it used.
        extra: an ``.npz`` file with ``x``, ``y``, or a packed directory (``ratt data pack``):
            extra training images (e.g. generated ones), mixed into every batch; an epoch stays
            defined over the original training set.
        extra_fraction: the share of each training batch drawn from ``extra``.
        val_size: training images held out for checkpoint selection (None: dataset default).
        batch_size: training batch size.
        augment: ``none``, ``crop``, ``crop_flip`` (None: the dataset's default).
        download: let torchvision download a missing dataset into ``root``.
        train_limit: train on the first N training images only (smoke tests; None: all).
        stream: ``true``: training batches are read on demand by DataLoader workers
            (augmented per image from (seed, epoch, index)); ``false``: held in memory;
            ``auto``: stream when the decoded training images (and ``extra``) exceed
            ``in_memory_max``. ``data=imagenet`` always streams unless ``false``.
        in_memory_max: GiB of decoded training images ``stream=auto`` still holds in memory.
        workers: loader worker processes when streaming (None: the cores left over, at most 8;
            0: read in the training process).
        prefetch: batches each worker reads ahead.
        resize: folders streamed: evaluation images are resized to this short side, then
            center-cropped to ``image_size`` (None: 256 for ImageNet's 224, else size * 8/7).
        on_bad_image: a streamed image file that cannot be decoded: ``fail`` (one line naming
            it; the last checkpoint stays) or ``skip`` (left out, counted in metrics.jsonl).
        decoder: folders streamed at native resolution (``imagenet``, ``imagefolder`` streamed):
            ``pil`` (PIL decodes, transforms on PIL images) or ``torchvision``
            (``torchvision.io.decode_image`` to a uint8 tensor, the same transforms on the
            tensor, the same crop box and flip; BMP, TIFF and PPM still read by PIL). Other
            data decodes nothing in the loader: ``torchvision`` there is refused.
    """

    name: str = "digits"
    root: str | None = None
    image_size: int | None = None
    channels: int | None = None
    layout: str = "auto"
    extra: str | None = None
    extra_fraction: float = 0.5
    download: bool = True
    val_size: int | None = None
    batch_size: int = 64
    augment: str | None = None
    train_limit: int | None = None
    stream: str = "auto"
    in_memory_max: float = 2.0
    workers: int | None = _resumable(None)
    prefetch: int = _resumable(2)
    resize: int | None = None
    on_bad_image: str = "fail"
    decoder: str = "pil"


@dataclass
class ModelConfig:
    """Architecture.

    Attributes:
        name: a registry name (``smallcnn``, ``preact_resnet18``, ``wrn-34-10``, ...), a
            function in your code (``path/to/file.py:build`` or ``package.module:build``,
            called with ``kwargs``; the module it returns maps [0, 1] images to logits and is
            used as it is), ``timm:NAME`` (a timm model with the dataset's classes and
            channels, the dataset's normalization inside; needs ``pip install ratt[timm]``),
            or ``torchvision:NAME`` (a torchvision classifier, e.g. ``resnet50``, the same way).
        kwargs: keyword arguments of a user or timm builder (``model.kwargs.width=2``).
        dropout: dropout probability in the head (``smallcnn``; TRADES' MNIST network uses
            0.5) or inside the blocks (``wrn-D-W``); other models accept only 0.
        init: start from these weights (a ratt run directory, ``.safetensors``, or a
            ``.pt``/``.pth`` state dict), e.g. to fine-tune a pretrained network.
        sha256: set by ratt when a run starts: the sha256 of a ``file.py:build`` model's file
            (a changed file is said at eval and resume). Paths are stored absolute.
    """

    name: str = "smallcnn"
    kwargs: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    init: str | None = None
    sha256: str | None = None


@dataclass
class AttackConfig:
    """The training threat model; None fields take the dataset's defaults.

    Attributes:
        norm: ``linf`` or ``l2``.
        eps: radius, ``8/255`` or ``0.031`` in [0, 1] pixel units (None: the dataset's).
        step: attack step size, same units (None: the dataset's).
        steps: attack iterations (None: the dataset's).
    """

    norm: str = "linf"
    eps: float | str | None = None
    step: float | str | None = None
    steps: int | None = None


@dataclass
class MethodConfig:
    """Training objective and its hyper-parameters.

    Attributes:
        name: method registry name (``natural``, ``pgd_at``, ``trades``, ``mart``,
            ``rat_trades``, ``rat_pgd_at``, ``rat_mart``, ``rat_mc``; single-step: ``fgsm``,
            ``fgsm_rs``, ``n_fgsm``, ``gradalign``, ``rat_fgsm_rs``, ``rat_n_fgsm``,
            ``rat_gradalign``), optionally wrapped in AWP as ``awp+NAME``.
        beta: weight of the TRADES / MART robustness term.
        alpha: RAT's weight of the Taylor terms, in [0, 1].
        second_order: ``reference`` (the authors' code) or ``symmetric``; see
            :func:`ratt.methods.rat.taylor_targets`.
        soft_c: off-diagonal mass of RAT's soft labels (None: 1 - 2/C).
        sigma_w: std of the weight noise while RAT-TRADES (and RAT on a single-step base)
            crafts x_adv (the start value when ``sigma_target`` is set).
        noise: its distribution: ``gaussian`` (the authors'), ``uniform`` or ``laplace``, all
            with std ``sigma_w`` (also the distribution of ``rat_mc``'s noise).
        noise_on: ``conv`` (every convolution weight, the authors') or ``all`` (every weight
            with >= 2 dims).
        sigma_relative: ``sigma_w`` relative to each weight tensor's RMS (else absolute).
        taylor: RAT's Taylor terms: ``first+second`` (the paper), ``first``, ``second`` or
            ``none`` (the base objective, with RAT's noisy crafting only).
        alpha_warmup: epochs over which alpha ramps linearly from 0 (0: no ramp).
        sigma_target: set the noise size automatically so that the clean loss rises by this
            relative amount under it (None: fixed ``sigma_w``); measured every
            ``sigma_every`` steps with three extra forwards.
        sigma_every: steps between two updates of the adaptive noise size.
        numerics: ``paper``: the formulas as printed (ratt's numerics up to commit f33a68b);
            ``code``: each released implementation's constants and passes (MART: start
            x + 0.001 N(0, 1), margin log(1.0001 - p + 1e-12); TRADES, RAT-TRADES: unclamped
            start, the clean batch forwarded as often as their code). See docs/methods.md.
        label_smoothing: label smoothing of the methods' cross-entropy term (0: none).
        approx_every: ``rat_trades``: every this many steps, log the Taylor terms beside a
            Monte-Carlo estimate of E_u[L(w+u)] - L(w) (``approx`` in metrics.jsonl; 0: off).
        approx_samples: antithetic noise pairs of that estimate.
        awp_gamma: AWP's relative perturbation size (None: 0.005 for TRADES-based methods,
            0.01 for PGD-AT/MART-based ones, as Wu et al. 2020).
        awp_warmup: epochs of plain training before AWP starts.
        awp_lr: learning rate of AWP's proxy ascent step.
        mc_samples: weight-noise samples per step of ``rat_mc``.
        mc_sigma: std of ``rat_mc``'s weight noise (relative: as a fraction of each tensor's
            root-mean-square value).
        mc_relative: scale ``rat_mc``'s noise by each tensor's RMS (else absolute).
        fgsm_step: the single-step methods' step as a multiple of eps (None: the method's own,
            1.25 for ``fgsm_rs`` and ``gradalign``, 1 for ``fgsm`` and ``n_fgsm``).
        nfgsm_k: ``n_fgsm``: the start noise is U(-k eps, k eps) (de Jorge et al. 2022: 2).
        gradalign_lambda: ``gradalign``: weight of 1 - cos(grad_x L(x), grad_x L(x + eta))
            (0.2: Andriushchenko & Flammarion 2020's value for eps = 8/255).
    """

    name: str = "trades"
    beta: float = 6.0
    alpha: float = 0.2
    second_order: str = "reference"
    soft_c: float | None = None
    sigma_w: float = 1e-4
    noise: str = "gaussian"
    noise_on: str = "conv"
    sigma_relative: bool = False
    taylor: str = "first+second"
    alpha_warmup: int = 0
    sigma_target: float | None = None
    sigma_every: int = 10
    numerics: str = "paper"
    label_smoothing: float = 0.0
    approx_every: int = 0
    approx_samples: int = 4
    awp_gamma: float | None = None
    awp_warmup: int = 10
    awp_lr: float = 0.01
    mc_samples: int = 2
    mc_sigma: float = 0.01
    mc_relative: bool = True
    fgsm_step: float | None = None
    nfgsm_k: float = 2.0
    gradalign_lambda: float = 0.2


@dataclass
class OptimConfig:
    """The optimizer and the learning-rate schedule. The defaults are the laptop demo's (digits, about
    a minute on 2 cores); ``configs/`` holds the paper's (200 epochs, piecewise, batch 128).

    Attributes:
        epochs: training epochs.
        optimizer: ``sgd`` (SGD with ``momentum``, the papers') or ``adamw`` (AdamW, betas
            0.9 and 0.999, decoupled ``weight_decay``: the ImageNet recipes for ConvNeXt and ViT).
        lr: peak learning rate.
        momentum: SGD momentum (``sgd`` only).
        weight_decay: L2 weight decay (``sgd``) or decoupled weight decay (``adamw``).
        nesterov: Nesterov momentum (``sgd`` only).
        warmup_epochs: the rate rises linearly from 0 over these first epochs (per step),
            multiplying the schedule (0: none, the default).
        schedule: ``piecewise`` (x ``gamma`` at ``milestones``, fractions of ``epochs``: the
            paper's 100 and 150 of 200 are 0.5 and 0.75), ``cosine``, ``onecycle`` or ``constant``.
        milestones: ``piecewise``: where the rate drops, as fractions of ``epochs``.
        gamma: ``piecewise``: the factor of each drop.
        ema_decay: keep an exponential moving average of the weights with this decay (0: off;
            e.g. 0.995); validation, checkpoint selection and the final test then use it.
        fused: torch's fused SGD kernel (``fused=True``: one kernel for all parameters instead
            of the per-tensor or foreach update); measured by ``ratt doctor --gpu``.
    """

    epochs: int = _resumable(50)
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "cosine"
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1
    ema_decay: float = 0.0
    warmup_epochs: int = 0
    fused: bool = _resumable(False)


@dataclass
class RunConfig:
    """Everything about how the run executes.

    Attributes:
        seed: seeds Python, NumPy and torch.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ...
        threads: torch CPU threads (None: torch's default).
        val_every: evaluate on the validation split every this many epochs.
        val_attack_steps: PGD steps of the per-epoch validation attack.
        select: which split picks the best checkpoint: ``val`` (a held-out part of the
            training set: honest) or ``test`` (the published papers' convention: the epoch
            with the best test PGD accuracy; labelled so in summary.json, eval and report).
        track_flatness: log cheap flatness measures (top Hessian eigenvalue and loss rise
            under weight noise, clean and adversarial, on ``flatness_points`` validation
            images) into ``metrics.jsonl`` every ``flatness_every`` epochs.
        flatness_every: epochs between two cheap flatness measurements.
        flatness_points: validation images the cheap flatness measures use.
        eval_batch_size: batch size of evaluation.
        test_attacks: attacks of the final test evaluation written to the summary.
        progress: show progress bars (off automatically when stderr is not a terminal).
        tensorboard: also write every metrics.jsonl number (and ``ratt eval``'s accuracies) as
            TensorBoard events in ``RUN_DIR/tensorboard`` (needs ``ratt[tensorboard]``).
        checkpoint_every: also write the full training state every this many steps
            (0: at epoch ends only).
        max_steps: stop after this many optimizer steps in all (a smoke run; the epoch it
            falls in ends there: validated, checkpointed and tested as usual; None: no cap).
        keep_every: keep the weights of every this many epochs as ``epoch-NNNN`` (0: never).
        deterministic: deterministic kernels (bit-identical repeats on CPU with fixed threads).
        skip_nonfinite: skip (and count) a batch whose loss is NaN/inf instead of stopping.
        precision: ``fp32``, ``bf16`` or ``fp16`` (``torch.autocast`` over the whole step,
            attack included; fp16 adds gradient scaling). Evaluation always runs in fp32.
        channels_last: NHWC memory format for the model and the training inputs.
        compile: wrap the model the attacks call in ``torch.compile`` (eager fallback, with
            a warning, where compilation fails).
        compile_mode: ``torch.compile``'s mode with ``compile``: ``default``,
            ``reduce-overhead`` (CUDA graphs: fewer kernel launches) or ``max-autotune``.
        sync_bn: synchronize BatchNorm statistics over the global batch when training with
            several processes (``torchrun``); no effect in one process.
        dist_backend: ``auto`` (NCCL on CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        dist_timeout: minutes a collective may wait (a training step, a checkpoint save), and how
            long the other ranks wait for a silent rank 0: they wait for its validation and
            final test through the store while it beats a heartbeat, not in a collective.
        co_drop: flag catastrophic overfitting when validation PGD accuracy falls more than
            this many points (percent) below its best so far while FGSM accuracy does not fall,
            or when FGSM accuracy is more than this many points above PGD accuracy.
        on_co: ``continue`` (flag it and train on) or ``stop`` (end the run there, test the
            best checkpoint, exit 0 with the reason in summary.json).
    """

    seed: int = 0
    device: str = _resumable("auto")
    threads: int | None = _resumable(None)
    val_every: int = _resumable(1)
    val_attack_steps: int = 10
    select: str = "val"
    track_flatness: bool = False
    flatness_every: int = 5
    flatness_points: int = 256
    eval_batch_size: int = _resumable(500)
    test_attacks: list[str] = field(default_factory=lambda: ["clean", "pgd20"])
    progress: bool = _resumable(True)
    tensorboard: bool = _resumable(False)
    checkpoint_every: int = _resumable(0)
    max_steps: int | None = _resumable(None)
    keep_every: int = _resumable(0)
    deterministic: bool = False
    skip_nonfinite: bool = False
    precision: str = "fp32"
    channels_last: bool = _resumable(False)
    compile: bool = _resumable(False)
    compile_mode: str = _resumable("default")
    sync_bn: bool = False
    dist_backend: str = _resumable("auto")
    dist_timeout: int = _resumable(5)
    co_drop: float = 20.0
    on_co: str = "continue"


@dataclass
class TrainConfig:
    """The whole resolved configuration of a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _resumable_keys() -> frozenset[str]:
    sections = {f.name: f.default_factory for f in dataclasses.fields(TrainConfig)}  # type: ignore[misc]
    return frozenset(
        f"{section}.{f.name}"
        for section, cls in sections.items()
        for f in dataclasses.fields(cls)
        if f.metadata.get("resumable")
    )


# Config keys that may differ when resuming; everything else must match the saved run.
RESUMABLE_KEYS = _resumable_keys()
