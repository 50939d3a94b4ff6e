"""Models from outside the registry: a function in the user's code, or a timm model.

Specs (``model.name``):

- ``path/to/file.py:build`` — the file is run as a module and ``build(**model.kwargs)`` is
  called, with ``num_classes``, ``in_channels`` and ``image_size`` (the data's) for those of
  them its signature names; relative paths are from the current directory (a run stores the absolute path and
  the file's sha256);
- ``package.module:build`` — imported, then called the same way;
- ``timm:NAME`` — ``timm.create_model(NAME, num_classes=C, in_chans=channels, **kwargs)``
  (random initialization), with the dataset's normalization put inside (:class:`Normalized`);
- ``torchvision:NAME`` — ``torchvision.models.get_model(NAME, weights=None, num_classes=C,
  **kwargs)`` (random initialization; 3-channel images only), the dataset's normalization
  inside, e.g. ``torchvision:resnet50`` for the ImageNet recipes;
- ``robustbench:NAME`` — a RobustBench zoo model with its published weights, through
  ``robustbench.utils.load_model(NAME, model_dir, dataset, threat_model)`` (kwargs
  ``model_dir``, default ``models``; ``dataset`` and ``threat_model`` default to the run's);
  it downloads when online, and offline uses the file already in ``model_dir``.

A user's model is used as it is: it must map (B, C, H, W) images in [0, 1] to (B, classes)
logits; wrap it in :class:`ratt.models.Normalized` to put a normalization inside.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ratt.errors import UserError
from ratt.models.base import Normalized


def is_external(spec: str) -> bool:
    """Whether ``spec`` names a user function or a timm model rather than a registry entry."""
    return ":" in spec


# Sources of ``SOURCE:NAME`` specs that run no code of the user's (a library's own models).
LIBRARY_SOURCES = ("timm", "torchvision", "robustbench")


def runs_code(spec: str) -> bool:
    """Whether building ``spec`` imports or runs code named by the spec itself (a ``.py`` file
    or ``package.module:function``): registry names, ``timm:NAME``, ``torchvision:NAME`` and
    ``robustbench:NAME`` do not."""
    return is_external(spec) and spec.rpartition(":")[0] not in LIBRARY_SOURCES


def _split(spec: str) -> tuple[str, str]:
    source, _, name = spec.rpartition(":")
    if not source or not name:
        raise UserError(
            f"model={spec!r}: write path/to/file.py:function, package.module:function, timm:NAME, "
            "torchvision:NAME"
        )
    return source, name


def spec_file(spec: str) -> Path | None:
    """The Python file a ``path/to/file.py:build`` spec names (None: a module, timm, a registry name)."""
    if not is_external(spec):
        return None
    source = spec.rpartition(":")[0]
    return Path(source) if source.endswith(".py") or "/" in source else None


def _from_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise UserError(f"model={spec!r}: {path} is not a file")
    module_name = f"ratt_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UserError(f"model={spec!r}: cannot load {path} as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(f"model={spec!r}: running {path} failed: {type(exc).__name__}: {exc}") from None
    return module


def _function(spec: str) -> Callable[..., nn.Module]:
    source, name = _split(spec)
    file = spec_file(spec)
    if file is not None:
        module = _from_file(file, spec)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as exc:
            raise UserError(f"model={spec!r}: cannot import {source} ({exc})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise UserError(f"model={spec!r}: {source} has no function {name!r}")
    return function


def data_arguments(function: Callable[..., Any], **values: int) -> dict[str, int]:
    """The data's ``values`` (``num_classes``, ``in_channels``, ``image_size``) that ``function``
    names as parameters (not through ``**kwargs``); ``model.kwargs`` override them."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or C function: pass nothing
        return {}
    return {k: v for k, v in values.items() if k in parameters}


def _timm():
    try:
        import timm
    except ImportError:
        raise UserError("model=timm:NAME needs timm: pip install 'ratt[timm]'") from None
    return timm


def _robustbench():
    """``robustbench.utils.load_model``; robustbench imports the reference AutoAttack under its
    old module name ``autoattack``, which ``pyautoattack`` (the same code on PyPI) provides."""
    try:
        import pyautoattack

        sys.modules.setdefault("autoattack", pyautoattack)
        from robustbench.utils import load_model
    except ImportError as exc:
        raise UserError(
            f"model=robustbench:NAME needs robustbench: pip install 'ratt[robustbench]' ({exc})"
        ) from None
    return load_model


def _torchvision_names() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)  # classifiers only


def check_external(spec: str) -> None:
    """Check that ``spec`` can be built (the file, module, function or timm/torchvision name
    exists) without building it; ``UserError`` otherwise."""
    source, name = _split(spec)
    if source == "robustbench":
        _robustbench()
        return
    if source == "torchvision":
        if name not in _torchvision_names():
            raise UserError(
                f"model=torchvision:{name}: torchvision has no classifier {name!r} "
                "(see torchvision.models.list_models(module=torchvision.models))"
            )
        return
    if source == "timm":
        timm = _timm()
        if not timm.is_model(name):
            raise UserError(f"model=timm:{name}: timm has no model {name!r} (see timm.list_models())")
        return
    _function(spec)


def build_external(
    spec: str,
    kwargs: dict[str, Any],
    num_classes: int,
    shape: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build a user, timm, torchvision or RobustBench model (see the module docstring)."""
    source, name = _split(spec)
    if source == "robustbench":
        options = {"model_dir": "models", **kwargs}
        try:
            return _robustbench()(model_name=name, **options).eval()
        except Exception as exc:  # unknown name, no file offline, a download that failed
            raise UserError(
                f"model=robustbench:{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            ) from None
    if source == "timm":
        check_external(spec)
        try:
            net = _timm().create_model(
                name, pretrained=False, num_classes=num_classes, in_chans=shape[0], **kwargs
            )
        except TypeError as exc:
            raise UserError(f"model=timm:{name}: {exc}") from None
        channels = shape[0]
        return Normalized(net, mean or (0.0,) * channels, std or (1.0,) * channels)
    if source == "torchvision":
        return _build_torchvision(name, kwargs, num_classes, shape, mean, std)
    function = _function(spec)
    given = data_arguments(function, num_classes=num_classes, in_channels=shape[0], image_size=shape[1])
    try:
        model = function(**{**given, **kwargs})
    except TypeError as exc:
        raise UserError(f"model={spec!r}: calling {name}(**model.kwargs) failed: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model={spec!r}: {name}() returned {type(model).__name__}, not an nn.Module")
    return model


def _build_torchvision(
    name: str,
    kwargs: dict[str, Any],
    num_classes: int,
    shape: Sequence[int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> nn.Module:
    """``torchvision:NAME`` at random initialization, the dataset's normalization inside."""
    check_external(f"torchvision:{name}")
    if shape[0] != 3:
        raise UserError(f"model=torchvision:{name} takes 3-channel images; the data has {shape[0]}")
    if "weights" in kwargs:
        raise UserError(
            f"model=torchvision:{name}: model.kwargs.weights is not taken (ratt downloads nothing); "
            "start from saved weights with model.init=FILE"
        )
    import torchvision.models

    try:
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model=torchvision:{name}: {exc}") from None
    return Normalized(net, mean or (0.0,) * 3, std or (1.0,) * 3)
