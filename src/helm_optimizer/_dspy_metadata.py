"""Memoized model-metadata lookups for the calls helm-optimizer's LMs make.

DSPy 3.4 looks a model up in its price and capability map on every LM call (once to choose the
engine, twice to price the reply). For a name the map does not hold — any model behind a vLLM,
llama.cpp or other OpenAI-compatible server, the embedded model, a fake server — each lookup scans
the whole map: about 0.9 ms of CPU under the GIL, a quarter of the client CPU of a call. The map
never changes once loaded, so inside :func:`memoized_metadata` (entered by every call of the LMs
that :func:`helm_optimizer.lm.build_lm` builds) each ``(provider, model, namespaces)`` is looked up
once per process; every caller still gets its own copy, as DSPy's function returns.

Calls outside the context (plain ``dspy.LM`` objects) run DSPy's function unchanged. When a DSPy
version does not have the function where this expects it, nothing is patched.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["install", "memoized_metadata"]

logger = logging.getLogger(__name__)

# Modules that bound DSPy's ``model_info`` by name at import (``from ... import model_info``).
_MODULES = ("dspy.clients.model_metadata", "dspy.clients.costs", "dspy.clients.capabilities")

_active: contextvars.ContextVar[bool] = contextvars.ContextVar("helm_optimizer_memoized_metadata", default=False)
_memo: dict[tuple[Any, ...], dict[str, Any]] = {}
_original: Callable[..., dict[str, Any]] | None = None
_install_lock = threading.Lock()


def _model_info(provider: Any, model: Any, *, namespaces: Any = None) -> dict[str, Any]:
    original = _original
    assert original is not None  # only installed once the original is known
    if not _active.get():
        return original(provider, model, namespaces=namespaces)
    key = (provider, model, None if namespaces is None else tuple(namespaces))
    found = _memo.get(key)
    if found is None:
        found = original(provider, model, namespaces=namespaces)
        _memo[key] = found
    return copy.deepcopy(found)


def install() -> bool:
    """Route DSPy's ``model_info`` through the memo (idempotent); False where DSPy differs."""
    global _original
    with _install_lock:
        if _original is not None:
            return True
        try:
            modules = [importlib.import_module(name) for name in _MODULES]
        except ImportError as exc:
            logger.debug("DSPy model metadata not memoized: %s", exc)
            return False
        original = getattr(modules[0], "model_info", None)
        if not callable(original) or any(getattr(m, "model_info", None) is not original for m in modules):
            logger.debug("DSPy model metadata not memoized: model_info is not where DSPy 3.4 has it")
            return False
        _original = original
        for module in modules:
            module.model_info = _model_info  # type: ignore[attr-defined]
        return True


@contextlib.contextmanager
def memoized_metadata() -> Iterator[None]:
    """Within this context, DSPy's model-metadata lookups are memoized."""
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)
