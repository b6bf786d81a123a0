"""Process-wide defaults that keep HELM, DSPy and litellm offline and quiet.

Call :func:`prepare_offline_environment` before importing ``helm``, ``dspy`` or ``litellm``.
Values the user already set are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["prepare_offline_environment"]

_DEFAULTS = {
    # litellm fetches a price list from the internet at import time unless told otherwise.
    "LITELLM_LOCAL_MODEL_COST_MAP": "true",
    "LITELLM_LOG": "ERROR",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "DSP_CACHEBOOL": "true",
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
    _install_nltk_stub()


def _install_nltk_stub() -> None:
    """Make ``nltk.download('punkt')`` a no-op offline.

    HELM calls ``nltk.download`` at import time of a few metric modules; offline that prints an error
    and sleeps on retries. NLTK skips the download when the resource is already on its data path, so we
    put an empty, well-formed package index on the path. Metrics that really need punkt still fail
    loudly when they tokenize, which none of the metrics this package uses do.
    """
    data_dir = Path(os.environ.get("HELM_OPTIMIZER_NLTK_DATA", Path.home() / ".cache" / "helm-optimizer" / "nltk"))
    os.environ.setdefault("NLTK_DATA", str(data_dir))
