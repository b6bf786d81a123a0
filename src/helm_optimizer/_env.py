"""Process-wide defaults that keep HELM, DSPy and litellm offline and quiet.

Call :func:`prepare_offline_environment` before importing ``helm``, ``dspy`` or ``litellm``.
Values the user already set are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["child_environment", "package_versions", "prepare_nltk", "prepare_offline_environment",
           "route_dspy_logging"]


def package_versions() -> dict[str, str]:
    """Python's and the packages' versions that can change a result (recorded beside every result)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from helm_optimizer import __version__

    out = {"python": platform.python_version(), "helm-optimizer": __version__}
    for name in ("dspy", "crfm-helm", "litellm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out

_DEFAULTS = {
    # litellm fetches a price list from the internet at import time unless told otherwise.
    "LITELLM_LOCAL_MODEL_COST_MAP": "true",
    "LITELLM_LOG": "ERROR",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}

_done = False


def prepare_offline_environment() -> None:
    """Set the environment variables and NLTK data path once per process."""
    global _done
    if _done:
        return
    _done = True
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)


def prepare_nltk() -> None:
    """Call before importing HELM's metric modules (imports nltk, ~0.3 s)."""
    prepare_offline_environment()
    _install_nltk_stub()


def _install_nltk_stub() -> None:
    """Keep HELM's import-time ``nltk.download('punkt_tab')`` from reaching the network.

    HELM's reference-metric module calls ``nltk.download`` at import time when NLTK's punkt_tab
    data is missing; offline that prints errors. When the real data is not installed we append a
    minimal punkt_tab model shipped with this package to NLTK's search path (see
    ``helm_optimizer/data/nltk/tokenizers/punkt_tab/README.txt``). Installed real data always wins.
    """
    try:
        import nltk
    except ImportError:  # pragma: no cover - nltk comes with crfm-helm
        return
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        stub = Path(__file__).resolve().parent / "data" / "nltk"
        if str(stub) not in nltk.data.path:
            nltk.data.path.append(str(stub))


def route_dspy_logging() -> None:
    """Send DSPy's log records through the application's handlers instead of DSPy's own stderr handler.

    ``import dspy`` installs a handler that prints INFO lines (e.g. every evaluation's average) to
    stderr; the CLI decides what reaches the console and what goes to the log file.
    """
    import logging

    logger = logging.getLogger("dspy")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True


def child_environment() -> dict[str, str]:
    """Environment for a HELM subprocess (``helm-summarize``): offline defaults, and our punkt_tab stub
    on ``NLTK_DATA`` only when NLTK's real data is not installed anywhere it looks.
    """
    env = dict(os.environ)
    for key, value in _DEFAULTS.items():
        env.setdefault(key, value)
    stub = str(Path(__file__).resolve().parent / "data" / "nltk")
    try:
        import nltk

        found = nltk.data.find("tokenizers/punkt_tab/english/")
        if stub not in str(found):
            return env  # real data present: leave NLTK's search path alone
    except (ImportError, LookupError):
        pass
    paths = [p for p in env.get("NLTK_DATA", "").split(os.pathsep) if p]
    if stub not in paths:
        paths.append(stub)
    env["NLTK_DATA"] = os.pathsep.join(paths)
    return env
