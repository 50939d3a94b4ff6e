"""From a configuration to the objects it names: checked names, the model, the threat model,
and a run's model loaded back from its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ratt import config as cfg
from ratt.attacks import ATTACKS, ThreatModel, reference_norm
from ratt.core.units import parse_magnitude
from ratt.data import DATASETS, DatasetInfo, info_for
from ratt.errors import UserError
from ratt.methods import METHODS
from ratt.methods.single_step import check_single_step
from ratt.models import check_model_name, create_model, runs_code
from ratt.models.loading import load_weights, read_state_dict
from ratt.runs.checkpoint import check_finite, read_header, read_weights, resolve_checkpoint
from ratt.runs.paths import check_model_file, where_paths_are


def check_names(config: cfg.TrainConfig) -> None:
    """Check every registry name in ``config`` (dataset, model, method, test attacks) against
    its registry; a did-you-mean ``UserError`` for the first unknown one."""
    DATASETS.get(config.data.name)
    check_model_name(config.model.name)
    METHODS.get(config.method.name)
    check_single_step(config)
    for name in config.run.test_attacks:
        ATTACKS.get(name.strip().lower())


def build_config(path: str | Path | None = None, overrides: list[str] | None = None) -> cfg.TrainConfig:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides; types, ranges
    and names checked (``UserError`` on the first problem).

    Example:
        >>> config = build_config(overrides=["method=rat_trades", "epochs=5"])
    """
    config = cfg.parse_config(path, overrides)
    check_names(config)
    return config


def threat_model(config: cfg.TrainConfig, info: DatasetInfo) -> ThreatModel:
    """The training threat model: the config's values, else the dataset's defaults."""
    attack = config.attack
    eps = parse_magnitude(attack.eps, "attack.eps") if attack.eps is not None else info.eps
    step = parse_magnitude(attack.step, "attack.step") if attack.step is not None else info.step
    steps = attack.steps if attack.steps is not None else info.steps
    return ThreatModel(attack.norm, eps, step, steps, random_start=True)


def build_model(config: cfg.TrainConfig, info: DatasetInfo) -> nn.Module:
    """The configured architecture for the dataset's shape, classes and normalization
    (a registry model, or a user/timm model built with ``model.kwargs``), freshly initialized."""
    m = config.model
    kwargs = dict(m.kwargs)
    if m.name.startswith("robustbench:"):  # the zoo entry of the run's dataset and threat model
        kwargs = {"dataset": info.name, "threat_model": reference_norm(config.attack.norm), **kwargs}
    return create_model(
        m.name, info.num_classes, info.shape, mean=info.mean, std=info.std, dropout=m.dropout, kwargs=kwargs
    )


def check_output(model: nn.Module, info: DatasetInfo, name: str) -> None:
    """The model maps (2, C, H, W) inputs of the dataset to (2, classes) logits (one forward
    in eval mode, no gradient, the mode restored; draws no random numbers)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *info.shape))
    except Exception as exc:
        raise UserError(f"model {name} fails on {info.name}'s {list(info.shape)} inputs: {exc}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, info.num_classes):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"model {name} returns {got} for 2 of {info.name}'s images; "
            f"expected [2, {info.num_classes}] logits"
        )


def initial_model(config: cfg.TrainConfig, info: DatasetInfo) -> nn.Module:
    """The model a run starts from: :func:`build_model`, its output checked, then the weights
    of ``model.init`` if set (a run directory, ``.safetensors`` or a ``.pt``/``.pth`` state dict)."""
    model = build_model(config, info)
    check_output(model, info, config.model.name)
    if config.model.init:
        source = Path(config.model.init)
        file = resolve_checkpoint(source) if source.is_dir() else source
        load_weights(model, read_state_dict(file), f"model.init={config.model.init}")
    return model


def check_trusted(config: cfg.TrainConfig, source: str | Path, *, trust_code: bool = False) -> None:
    """A config read from a file the user did not pass (a checkpoint's metadata, a run
    directory's ``config.yaml``) may name a model that runs code (``file.py:fn``,
    ``package.module:fn``) only with ``trust_code``: a checkpoint is data. ``UserError``
    otherwise, before anything is imported."""
    spec = config.model.name
    if runs_code(spec) and not trust_code:
        raise UserError(
            f"{source} names the model {spec!r}, which would import and run that code; "
            "nothing was imported: pass --trust-code (trust_code=True) if you trust its author"
        )


def config_from_metadata(meta: dict[str, Any], file: Path, *, trust_code: bool = False) -> cfg.TrainConfig:
    """The run's config stored in a checkpoint's metadata; ``UserError`` if absent or malformed,
    or if it names a model that runs code and ``trust_code`` is not given (:func:`check_trusted`)."""
    if "config" not in meta:
        raise UserError(f"{file} is not a ratt checkpoint (no config in its metadata)")
    if not isinstance(meta["config"], dict):
        raise UserError(f"{file}: the config in its metadata is not a mapping of sections")
    config = cfg.from_dict(meta["config"])
    check_trusted(config, file, trust_code=trust_code)
    return config


def check_shapes(
    shapes: dict[str, tuple[int, ...]], config: cfg.TrainConfig, file: Path, info: DatasetInfo | None = None
) -> None:
    """The weights ``file`` holds (``shapes``, from :func:`read_header`) are exactly those of the
    architecture ``config`` names. The model is built on the meta device (no memory, no random
    numbers drawn), so a header naming a huge model costs nothing before it is refused. The
    data's description (``info``, else read here) comes first, on the CPU: nothing of the data
    is computed on meta."""
    info = info or info_for(config.data)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config, info).state_dict().items()}
    name = config.model.name
    missing, extra = sorted(expected.keys() - shapes.keys()), sorted(shapes.keys() - expected.keys())
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has an unexpected {extra[0]}"
        raise UserError(
            f"{file} does not match {name}: it {what} "
            f"({len(missing)} missing, {len(extra)} unexpected tensors)"
        )
    for key, shape in expected.items():
        if shapes[key] != shape:
            raise UserError(
                f"{file} does not match {name}: {key} is {list(shapes[key])} in the file, "
                f"{list(shape)} in the model"
            )


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", *, trust_code: bool = False
) -> tuple[nn.Module, cfg.TrainConfig]:
    """Load a run directory's best checkpoint (or a ``.safetensors`` file).

    The header (config, tensor shapes) is checked against the architecture before the model is
    built or any weight is read. A config naming a model that runs code (``file.py:fn``,
    ``package.module:fn``) is refused unless ``trust_code``: the file may come from anyone.

    Returns:
        (model in eval mode on ``device``, the run's ``TrainConfig``).
    Raises:
        UserError: missing, corrupt, mismatched or non-finite file, or untrusted code (one
            line naming it).
    """
    file = resolve_checkpoint(path)
    shapes, meta = read_header(file)
    config = config_from_metadata(meta, file, trust_code=trust_code)  # untrusted code: refused here
    with where_paths_are(meta, file):  # the data and the model's file, from another directory too
        info = info_for(config.data)
        check_model_name(config.model.name)
    check_model_file(config, file)
    check_shapes(shapes, config, file, info)
    weights, _ = read_weights(file)
    model = build_model(config, info)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{file} does not match {config.model.name}: {first}") from None
    return model.to(device).eval(), config


def load_foreign(
    file: str | Path | None, config: cfg.TrainConfig, device: str | torch.device = "cpu"
) -> tuple[nn.Module, cfg.TrainConfig]:
    """Weights from outside ratt (``.safetensors``, or a ``.pt``/``.pth`` state dict saved with
    ``torch.save``; the usual containers unwrapped) loaded into the model ``config`` names.

    Returns:
        (model in eval mode on ``device``, ``config``).
    Raises:
        UserError: an unreadable file, or weights that do not fit the model (the first
            missing or unexpected key and its shape named).
    """
    info = info_for(config.data)
    model = build_model(config, info)
    check_output(model, info, config.model.name)
    if file is not None:  # None: the model brings its weights (robustbench:NAME)
        state = read_state_dict(file)
        check_finite(state, file)
        load_weights(model, state, str(file))
    return model.to(device).eval(), config


def load_described(
    file: str | Path | None, model: str, dataset: str, settings: list[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, cfg.TrainConfig]:
    """:func:`load_foreign` with the model and data named as on the command line: the model
    spec, the dataset and further ``key=value`` settings (what ``ratt eval`` and ``ratt
    landscape`` do with ``--model``/``--data``)."""
    config = build_config(None, [f"model.name={model}", f"data.name={dataset}", *settings])
    return load_foreign(file, config, device)
