"""One registry pattern for every kind of named, pluggable object.

Built-ins register with a decorator; third-party packages contribute through an entry-point
group. Names are resolved eagerly (:meth:`Registry.get`) so a typo fails before any LM call,
with a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from helm_optimizer.errors import PluginError, UnknownNameError

__all__ = ["Registry", "did_you_mean"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def did_you_mean(name: str, known: list[str]) -> str:
    """A short hint naming the closest known names, or an empty string."""
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        return f" Did you mean '{lowered[name.lower()]}'?"
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if not close:
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)]
    if not close:
        return ""
    return " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


class Registry(Generic[T]):
    """Names to objects, filled by decorators and by an entry-point group loaded on first use."""

    def __init__(self, kind: str, *, group: str | None = None, list_command: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self.list_command = list_command
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._lazy: dict[str, str] = {}
        self._entry_points_loaded = group is None
        self._frozen = False

    def register(self, name: str, *, origin: str | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second registration of a name is an error."""

        def wrap(obj: T) -> T:
            self.add(name, obj, origin=origin)
            return obj

        return wrap

    def add(self, name: str, obj: T, *, origin: str | None = None) -> None:
        if self._frozen:
            raise PluginError(f"The {self.kind} registry is frozen; register '{name}' before it is used.")
        where = origin or str(getattr(obj, "__module__", None) or "?")
        if name in self._items or name in self._lazy:
            first = self._origins.get(name, "?")
            raise PluginError(
                f"Two {self.kind}s are registered as '{name}': one from {first}, one from {where}. "
                "Rename one of them."
            )
        self._items[name] = obj
        self._origins[name] = where

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``"module:attr"`` to be imported the first time ``name`` is used."""
        if name in self._items or name in self._lazy:
            raise PluginError(
                f"Two {self.kind}s are registered as '{name}': {self._origins.get(name, '?')} and {target}."
            )
        self._lazy[name] = target
        self._origins[name] = target

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        assert self.group is not None
        for ep in entry_points(group=self.group):
            self.add_lazy(ep.name, ep.value)

    def _resolve_lazy(self, name: str) -> T:
        target = self._lazy.pop(name)
        module_name, _, attr = target.partition(":")
        try:
            obj: object = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except Exception as exc:
            self._lazy[name] = target
            raise PluginError(
                f"The {self.kind} '{name}' could not be loaded from {target}: {type(exc).__name__}: {exc}"
            ) from exc
        self._items[name] = obj  # type: ignore[assignment]
        return obj  # type: ignore[return-value]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def origin(self, name: str) -> str:
        self._load_entry_points()
        return self._origins.get(name, "?")

    def get(self, name: str) -> T:
        """The object registered as ``name``; unknown names raise :class:`UnknownNameError` with hints."""
        self._load_entry_points()
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            return self._resolve_lazy(name)
        known = self.names()
        hint = did_you_mean(name, known)
        listing = f" Run `{self.list_command}`." if self.list_command else f" Known: {', '.join(known)}."
        raise UnknownNameError(f"Unknown {self.kind} '{name}'.{hint}{listing}")

    def freeze(self) -> None:
        self._frozen = True
