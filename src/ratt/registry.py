"""A small name -> constructor registry, one per kind of thing (models, datasets, ...)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ratt.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually constructors), filled with a decorator.

    Families of names (``wrn-34-10``, ``wrn-28-10``) are registered once with a regular
    expression; the matched groups are passed to the family's builder.

    Example:
        >>> MODELS = Registry("model")
        >>> @MODELS.register("tiny")
        ... def tiny(**kw): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._patterns: list[tuple[re.Pattern[str], str, Callable[..., T]]] = []

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def register_pattern(self, pattern: str, display: str) -> Callable[[Callable[..., T]], Callable]:
        """Decorator for a family: ``factory(*groups)`` returns the object for a matching name."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._patterns.append((re.compile(pattern), display, factory))
            return factory

        return deco

    def get(self, name: str) -> T:
        """The object registered as ``name``; a did-you-mean ``UserError`` if there is none."""
        if name in self._items:
            return self._items[name]
        for regex, _, factory in self._patterns:
            match = regex.fullmatch(name)
            if match:
                return factory(*match.groups())
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown {self.kind} {name!r}{hint}; choose from: {', '.join(self.names())}")

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except UserError:
            return False
        return True

    def names(self) -> list[str]:
        """Registered names, families shown by their display form (e.g. ``wrn-D-W``)."""
        return list(self._items) + [display for _, display, _ in self._patterns]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
