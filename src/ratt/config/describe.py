"""Every configuration key with its default and meaning, for ``ratt train --help`` and
``ratt config``. The meanings are read from the sections' docstrings (their ``Attributes:``
blocks), so the help cannot drift from the code."""

from __future__ import annotations

import dataclasses
import inspect
import re

from ratt.config.sections import CHOICES, TrainConfig


def _attribute_docs(cls: type) -> dict[str, str]:
    """``name -> one-line meaning`` from a dataclass docstring's ``Attributes:`` block."""
    doc = inspect.getdoc(cls) or ""
    if "Attributes:" not in doc:
        return {}
    out: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[1].splitlines():
        match = re.match(r"^    ([a-z_][a-z0-9_, ]*): (.*)$", line)
        if match:
            names, text = match.groups()
            current = [n.strip() for n in names.split(",")]
            for name in current:
                out[name] = text.strip()
        elif line.startswith("        ") and current:
            for name in current:
                out[name] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return {k: re.sub(r":\w+:`([^`]*)`", r"\1", v).replace("``", "") for k, v in out.items()}


def _default(value: object) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(empty)"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return "unset" if value is None else str(value)


def describe_keys(sections: tuple[str, ...] | None = None) -> str:
    """One block per section (all, or those named in ``sections``, in the config's order):
    ``section.key = default   meaning``."""
    lines = []
    for section in dataclasses.fields(TrainConfig):
        if sections is not None and section.name not in sections:
            continue
        cls = section.default_factory  # type: ignore[misc]
        instance = cls()
        docs = _attribute_docs(cls)
        lines.append(f"{section.name}:")
        for field in dataclasses.fields(instance):
            key = f"  {section.name}.{field.name} = {_default(getattr(instance, field.name))}"
            meaning = docs.get(field.name, "")
            choices = CHOICES.get(f"{section.name}.{field.name}")
            if choices:
                meaning = f"[{'|'.join(choices)}] {meaning}"
            lines.append(f"{key:<42} {meaning}".rstrip() if meaning else key)
    return "\n".join(lines)
