"""Finding any model's final linear layer — the one RAT's last-layer statistics read.

RAT needs the classifier ``z = W h + b`` whose output *is* the model's output. Any
``nn.Module`` that maps inputs to logits works: torchvision's ``resnet18`` (``.fc``), timm
models (``get_classifier()``), an ``nn.Sequential`` ending in ``nn.Linear``, ratt's own
models (``.classifier``). The layer is named by the usual attributes and then *checked* with
one forward on a probe batch: its output must equal the model's output, so a linear layer
that is not the final one is an error, never a silently wrong loss.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

from ratt.errors import UserError

# Attribute names under which libraries keep the final layer, in the order they are tried.
ATTRIBUTES = ("classifier", "fc", "head", "linear", "last_linear")

_FOUND: weakref.WeakKeyDictionary[nn.Module, nn.Linear] = weakref.WeakKeyDictionary()


def _named_candidate(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The linear layer the model names as its classifier, if it names one."""
    for name in ATTRIBUTES:
        layer = getattr(model, name, None)
        if isinstance(layer, nn.Linear):
            return name, layer
    get = getattr(model, "get_classifier", None)  # timm
    if callable(get):
        try:
            layer = get()
        except Exception:  # a model whose get_classifier needs arguments or is not timm's
            layer = None
        if isinstance(layer, nn.Linear):
            return "get_classifier()", layer
    return None


def _linear_outputs(model: nn.Module, probe: Tensor) -> tuple[Tensor, list[tuple[nn.Linear, Tensor]]]:
    """The model's output on ``probe`` (eval mode, no grad, mode restored) and the output of
    every ``nn.Linear`` in the order they ran."""
    seen: list[tuple[nn.Linear, Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.append((mod, out)))
        for m in model.modules()
        if isinstance(m, nn.Linear)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(probe)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return logits, seen


def _produces(layer: nn.Linear, logits: Tensor, seen: list[tuple[nn.Linear, Tensor]]) -> bool:
    return any(mod is layer and out.shape == logits.shape and torch.equal(out, logits) for mod, out in seen)


def find_classifier(model: nn.Module, probe: Tensor, classifier: nn.Linear | None = None) -> nn.Linear:
    """The final ``nn.Linear`` of ``model``: the one whose output is the model's output.

    Tried in order: ``classifier`` if given, else ``model.classifier``, ``.fc``, ``.head``,
    ``.linear``, ``.last_linear``, timm's ``get_classifier()``; the layer found is checked with
    one forward of ``probe`` (eval mode, no grad, the model's mode restored). Without a named
    layer, the last ``nn.Linear`` whose output equals the model's output is taken. The result
    is cached per model.

    Args:
        probe: a few valid inputs, e.g. ``x[:2]`` (B, ...).
    Raises:
        UserError: the given or named layer is not the final one, or no linear layer produces
            the model's output (e.g. an operation after the last layer).
    """
    if classifier is None and model in _FOUND:
        return _FOUND[model]
    named = ("classifier=", classifier) if classifier is not None else _named_candidate(model)
    logits, seen = _linear_outputs(model, probe[:2])
    kind = type(model).__name__
    if named is not None:
        label, layer = named
        if not _produces(layer, logits, seen):
            raise UserError(
                f"{kind}.{label.rstrip('=')} is an nn.Linear but not the model's final layer (its output is "
                "not the model's output); RAT needs the layer that produces the logits: pass classifier="
            )
        found = layer
    else:
        finals = [mod for mod, out in seen if out.shape == logits.shape and torch.equal(out, logits)]
        if not finals:
            raise UserError(
                f"no nn.Linear of {kind} produces its output (an operation follows the last linear layer?); "
                "RAT needs the final linear layer: end the model with one, or pass classifier="
            )
        found = finals[-1]
    if classifier is None:
        _FOUND[model] = found
    return found
