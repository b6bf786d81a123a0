"""Small adapters between our scenario subclasses and HELM's Scenario base class."""

from __future__ import annotations

import inspect
from pathlib import PurePath

__all__ = ["helm_definition_path"]

_HELM_SOURCE_URL = "https://github.com/stanford-crfm/helm/blob/main/src/"


def helm_definition_path(helm_class: type) -> str:
    """The GitHub URL HELM's ``Scenario.__post_init__`` computes for one of HELM's own classes.

    HELM derives ``definition_path`` from the file of ``type(self)``; for our subclasses, which live
    outside the ``helm`` package, that gives a broken link. The loading logic is HELM's, so we
    point at HELM's file instead.
    """
    parts = PurePath(inspect.getfile(helm_class)).parts
    if "helm" not in parts:
        return _HELM_SOURCE_URL + PurePath(*parts[-1:]).as_posix()
    start = len(parts) - 1 - parts[::-1].index("helm")
    return _HELM_SOURCE_URL + PurePath(*parts[start:]).as_posix()
