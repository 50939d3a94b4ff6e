"""Run configuration: one dataclass per concern, YAML files and ``key=value`` overrides.

A YAML file holds only what differs from the defaults::

    data: {name: cifar10}
    model: {name: wrn-34-10}
    method: {name: rat_trades, alpha: 0.2}
    optim: {epochs: 200}

On the command line a key is ``section.field=value``; a field name that exists in only one
section may be written bare (``epochs=5``), and a section name alone sets its ``name``
(``method=pgd_at``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ratt.errors import UserError


@dataclass
class DataConfig:
    """Which data and how it is batched.

    Attributes:
        name: dataset registry name.
        root: folder searched for the files / used for downloads (None: the default).
        val_size: training images held out for checkpoint selection (None: dataset default).
        batch_size: training batch size.
        augment: ``none``, ``crop``, ``crop_flip`` (None: the dataset's default).
        download: let torchvision download a missing dataset into ``root``.
        train_limit: train on the first N training images only (smoke tests; None: all).
    """

    name: str = "digits"
    root: str | None = None
    download: bool = True
    val_size: int | None = None
    batch_size: int = 64
    augment: str | None = None
    train_limit: int | None = None


@dataclass
class ModelConfig:
    """Architecture.

    Attributes:
        name: registry name, e.g. ``smallcnn``, ``preact_resnet18``, ``wrn-34-10``.
        dropout: dropout probability in the head (``smallcnn``; TRADES' MNIST network uses
            0.5) or inside the blocks (``wrn-D-W``); other models accept only 0.
    """

    name: str = "smallcnn"
    dropout: float = 0.0


@dataclass
class AttackConfig:
    """The training threat model; None fields take the dataset's defaults.

    ``eps`` and ``step`` accept fractions (``8/255``) or decimals in [0, 1] pixel units.
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
            ``rat_trades``, ``rat_pgd_at``, ``rat_mart``, ``rat_mc``), optionally wrapped in
            AWP as ``awp+NAME``.
        beta: weight of the TRADES / MART robustness term.
        alpha: RAT's weight of the Taylor terms, in [0, 1].
        second_order: ``reference`` (the authors' code) or ``symmetric``; see
            :func:`ratt.methods.rat.taylor_targets`.
        soft_c: off-diagonal mass of RAT's soft labels (None: 1 - 2/C).
        sigma_w: std of the noise on convolution weights while RAT-TRADES crafts x_adv.
        awp_gamma: AWP's relative perturbation size (None: 0.005 for TRADES-based methods,
            0.01 for PGD-AT/MART-based ones, as Wu et al. 2020).
        awp_warmup: epochs of plain training before AWP starts.
        awp_lr: learning rate of AWP's proxy ascent step.
        mc_samples: weight-noise samples per step of ``rat_mc``.
        mc_sigma: std of ``rat_mc``'s weight noise (relative: as a fraction of each tensor's
            root-mean-square value).
        mc_relative: scale ``rat_mc``'s noise by each tensor's RMS (else absolute).
    """

    name: str = "trades"
    beta: float = 6.0
    alpha: float = 0.2
    second_order: str = "reference"
    soft_c: float | None = None
    sigma_w: float = 1e-4
    awp_gamma: float | None = None
    awp_warmup: int = 10
    awp_lr: float = 0.01
    mc_samples: int = 2
    mc_sigma: float = 0.01
    mc_relative: bool = True


@dataclass
class OptimConfig:
    """SGD and the learning-rate schedule. The defaults are the laptop demo's (digits, about
    a minute on 2 cores); ``configs/`` holds the paper's (200 epochs, piecewise, batch 128).

    Attributes:
        schedule: ``piecewise`` (x ``gamma`` at ``milestones``, fractions of ``epochs``: the
            paper's 100 and 150 of 200 are 0.5 and 0.75), ``cosine``, ``onecycle`` or ``constant``.
    """

    epochs: int = 50
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "cosine"
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1


@dataclass
class RunConfig:
    """Everything about how the run executes.

    Attributes:
        seed: seeds Python, NumPy and torch.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ...
        threads: torch CPU threads (None: torch's default).
        val_every: evaluate on the validation split every this many epochs.
        val_attack_steps: PGD steps of the per-epoch validation attack.
        track_flatness: log cheap flatness measures (top Hessian eigenvalue and loss rise
            under weight noise, clean and adversarial, on ``flatness_points`` validation
            images) into ``metrics.jsonl`` every ``flatness_every`` epochs.
        eval_batch_size: batch size of evaluation.
        test_attacks: attacks of the final test evaluation written to the summary.
        progress: show progress bars (off automatically when stderr is not a terminal).
        checkpoint_every: also write the full training state every this many steps
            (0: at epoch ends only).
        keep_every: keep the weights of every this many epochs as ``epoch-NNNN`` (0: never).
        deterministic: deterministic kernels (bit-identical repeats on CPU with fixed threads).
        skip_nonfinite: skip (and count) a batch whose loss is NaN/inf instead of stopping.
        precision: ``fp32``, ``bf16`` or ``fp16`` (``torch.autocast`` over the whole step,
            attack included; fp16 adds gradient scaling). Evaluation always runs in fp32.
        channels_last: NHWC memory format for the model and the training inputs.
        compile: wrap the model the attacks call in ``torch.compile`` (eager fallback, with
            a warning, where compilation fails).
        sync_bn: synchronize BatchNorm statistics over the global batch when training with
            several processes (``torchrun``); no effect in one process.
        dist_backend: ``auto`` (NCCL on CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        dist_timeout: minutes a collective may wait (rank 0 evaluates while the others wait).
    """

    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    val_every: int = 1
    val_attack_steps: int = 10
    track_flatness: bool = False
    flatness_every: int = 5
    flatness_points: int = 256
    eval_batch_size: int = 500
    test_attacks: list[str] = field(default_factory=lambda: ["clean", "pgd20"])
    progress: bool = True
    checkpoint_every: int = 0
    keep_every: int = 0
    deterministic: bool = False
    skip_nonfinite: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    dist_backend: str = "auto"
    dist_timeout: int = 60


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


SECTIONS = [f.name for f in fields(TrainConfig)]


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(TrainConfig)
    return {name: hints[name] for name in SECTIONS}


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a ``key=value`` string) to ``annotation`` or raise."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except UserError as exc:
                errors.append(str(exc))
        raise UserError(f"{key}={value!r} has the wrong type (expected {_type_name(annotation)})")
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise UserError(f"{key}={value!r} should be a list (write a,b,c)")
        return [_coerce(v, args[0], key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise UserError(f"{key}={value!r} should be true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise UserError(f"{key}={value!r} should be an integer")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key}={value!r} should be an integer") from None
        if not as_float.is_integer():
            raise UserError(f"{key}={value!r} should be an integer")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise UserError(f"{key}={value!r} should be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{key}={value!r} should be a number") from None
    if annotation is str:
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"{key}={value!r} should be a string")
        return str(value)
    raise TypeError(f"unsupported config type {annotation}")


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args) or str(annotation)


def _field_types(section: str) -> dict[str, Any]:
    cls = _section_types()[section]
    return typing.get_type_hints(cls)


def _did_you_mean(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _all_keys() -> list[str]:
    keys = list(SECTIONS)
    for section in SECTIONS:
        keys += [f"{section}.{name}" for name in _field_types(section)]
        keys += list(_field_types(section))
    return keys


def resolve_key(key: str) -> tuple[str, str]:
    """``"optim.epochs"``, ``"epochs"`` or ``"method"`` -> (section, field)."""
    if "." in key:
        section, name = key.split(".", 1)
        if section in SECTIONS and name in _field_types(section):
            return section, name
    elif key in SECTIONS:
        return key, "name"
    else:
        owners = [s for s in SECTIONS if key in _field_types(s)]
        if len(owners) == 1:
            return owners[0], key
        if len(owners) > 1:
            raise UserError(f"{key!r} is ambiguous; write one of: {', '.join(f'{s}.{key}' for s in owners)}")
    raise UserError(f"unknown config key {key!r}{_did_you_mean(key, _all_keys())}")


def apply(config: TrainConfig, key: str, value: Any) -> None:
    """Set one value, converting and type-checking it."""
    section, name = resolve_key(key)
    typed = _coerce(value, _field_types(section)[name], f"{section}.{name}")
    setattr(getattr(config, section), name, typed)


def from_dict(data: dict[str, Any] | None, base: TrainConfig | None = None) -> TrainConfig:
    """A config from nested dicts (as in YAML) on top of ``base`` (default: the defaults)."""
    config = base or TrainConfig()
    for section, values in (data or {}).items():
        if section not in SECTIONS:
            raise UserError(f"unknown config section {section!r}{_did_you_mean(section, SECTIONS)}")
        if not isinstance(values, dict):
            apply(config, section, values)  # "method: trades" as shorthand for the name
            continue
        for name, value in values.items():
            if name not in _field_types(section):
                options = list(_field_types(section))
                raise UserError(f"unknown key {section}.{name}{_did_you_mean(name, options)}")
            apply(config, f"{section}.{name}", value)
    return config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a ``UserError``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"config file {path} is not valid YAML: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections")
    return data


def build_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides; validated."""
    config = from_dict(load_yaml(path)) if path else TrainConfig()
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        apply(config, key.strip(), value.strip())
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Range and name checks that need no data; raise ``UserError`` on the first problem."""
    from ratt.attacks.threat import parse_magnitude
    from ratt.data import DATASETS
    from ratt.methods import METHODS
    from ratt.models import MODELS

    DATASETS.get(config.data.name)
    MODELS.get(config.model.name)
    METHODS.get(config.method.name)
    checks = [
        (config.data.batch_size >= 1, "data.batch_size must be >= 1"),
        (config.data.val_size is None or config.data.val_size >= 0, "data.val_size must be >= 0"),
        (config.data.train_limit is None or config.data.train_limit >= 1, "data.train_limit must be >= 1"),
        (
            config.data.augment in (None, "none", "crop", "crop_flip"),
            "data.augment must be none, crop or crop_flip",
        ),
        (config.attack.norm in ("linf", "l2"), "attack.norm must be linf or l2"),
        (config.attack.steps is None or config.attack.steps >= 1, "attack.steps must be >= 1"),
        (config.method.beta >= 0, "method.beta must be >= 0"),
        (0 <= config.method.alpha <= 1, "method.alpha must be in [0, 1]"),
        (
            config.method.second_order in ("reference", "symmetric"),
            "method.second_order must be reference or symmetric",
        ),
        (config.method.soft_c is None or 0 <= config.method.soft_c <= 1, "method.soft_c must be in [0, 1]"),
        (config.method.sigma_w >= 0, "method.sigma_w must be >= 0"),
        (config.method.awp_gamma is None or config.method.awp_gamma >= 0, "method.awp_gamma must be >= 0"),
        (config.method.awp_warmup >= 0, "method.awp_warmup must be >= 0"),
        (config.method.mc_samples >= 1, "method.mc_samples must be >= 1"),
        (config.method.mc_sigma >= 0, "method.mc_sigma must be >= 0"),
        (0 <= config.model.dropout < 1, "model.dropout must be in [0, 1)"),
        (config.optim.epochs >= 1, "optim.epochs must be >= 1"),
        (config.optim.lr > 0, "optim.lr must be > 0"),
        (0 <= config.optim.momentum < 1, "optim.momentum must be in [0, 1)"),
        (config.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
        (
            config.optim.schedule in ("piecewise", "cosine", "onecycle", "constant"),
            "optim.schedule must be piecewise, cosine, onecycle or constant",
        ),
        (
            all(0 < m <= 1 for m in config.optim.milestones),
            "optim.milestones are fractions of the epochs, in (0, 1]",
        ),
        (config.run.val_every >= 1, "run.val_every must be >= 1"),
        (config.run.val_attack_steps >= 1, "run.val_attack_steps must be >= 1"),
        (config.run.flatness_every >= 1, "run.flatness_every must be >= 1"),
        (config.run.flatness_points >= 1, "run.flatness_points must be >= 1"),
        (config.run.eval_batch_size >= 1, "run.eval_batch_size must be >= 1"),
        (config.run.threads is None or config.run.threads >= 1, "run.threads must be >= 1"),
        (config.run.checkpoint_every >= 0, "run.checkpoint_every must be >= 0"),
        (config.run.keep_every >= 0, "run.keep_every must be >= 0"),
        (config.run.precision in ("fp32", "bf16", "fp16"), "run.precision must be fp32, bf16 or fp16"),
        (
            config.run.dist_backend in ("auto", "nccl", "gloo"),
            "run.dist_backend must be auto, nccl or gloo",
        ),
        (config.run.dist_timeout >= 1, "run.dist_timeout must be >= 1 (minutes)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    for name in ("eps", "step"):
        value = getattr(config.attack, name)
        if value is not None:
            parse_magnitude(value, f"attack.{name}")
    from ratt.eval import parse_attack

    for spec in config.run.test_attacks:
        parse_attack(spec)


def save_yaml(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config (every field) as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
