"""DSPy's response cache for a run: damaged shards moved aside, unusable replies never kept.

DSPy keeps its disk cache in a ``diskcache.FanoutCache``: one SQLite file per shard. A shard
that is not a database any more (a disk error, a copy cut short, a stray write) makes DSPy fail
with a raw ``sqlite3.DatabaseError`` when the cache opens, or on the first read that touches it.
Here every damaged shard is named in a warning and moved aside (renamed, never deleted); the
cache then starts that shard afresh, so the run goes on and pays again only for the answers that
shard held.

The cache also records the key of every entry it stores into the current LM attempt's
:data:`helm_optimizer.replies.CACHE_KEYS`, so that a reply found unusable afterwards (HTTP 200
without content) is taken out again instead of being replayed by every later run.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from helm_optimizer._io import damaged_sqlite_files, move_aside
from helm_optimizer.errors import HelmOptimizerError
from helm_optimizer.replies import CACHE_KEYS

__all__ = ["configure_response_cache", "quarantine_damaged_shards"]

logger = logging.getLogger(__name__)

_SHARD_PATTERN = "*.db"


def quarantine_damaged_shards(directory: Path) -> list[Path]:
    """Move every damaged SQLite shard under ``directory`` aside (with a warning); returns the new paths."""
    moved = []
    for path, problem in damaged_sqlite_files(directory, _SHARD_PATTERN):
        target = move_aside(path)
        logger.warning("The LM cache file %s is damaged (%s); moved it aside to %s and continuing with a fresh "
                       "one (its answers are asked again).", path, problem, target.name)
        moved.append(target)
    return moved


_guarded: type[Any] | None = None


def _guarded_cache_class() -> type[Any]:
    global _guarded
    if _guarded is not None:
        return _guarded
    from dspy.clients import DISK_CACHE_LIMIT
    from dspy.clients.cache import Cache

    class GuardedCache(Cache):  # type: ignore[misc]
        """DSPy's cache, recording what it stores per attempt and surviving a shard damaged mid-run."""

        def __init__(self, directory: str) -> None:
            super().__init__(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=directory,
                             disk_size_limit_bytes=DISK_CACHE_LIMIT)
            self.directory = directory
            self._repair_lock = threading.Lock()

        def get(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> Any:
            try:
                return super().get(request, ignored_args_for_cache_key)
            except sqlite3.DatabaseError as exc:
                self._repair(exc)
                return None  # a miss: the call is made and its answer stored in the fresh shard

        def put(self, request: dict[str, Any], value: Any, ignored_args_for_cache_key: list[str] | None = None,
                enable_memory_cache: bool = True) -> None:
            keys = CACHE_KEYS.get()
            if keys is not None:
                with contextlib.suppress(Exception):  # DSPy skips storing what it cannot key, too
                    keys.append(self.cache_key(request, ignored_args_for_cache_key))
            try:
                super().put(request, value, ignored_args_for_cache_key, enable_memory_cache)
            except sqlite3.DatabaseError as exc:
                self._repair(exc)

        def _repair(self, exc: sqlite3.DatabaseError) -> None:
            from diskcache import FanoutCache

            with self._repair_lock:
                if quarantine_damaged_shards(Path(self.directory)):
                    # The shards still open keep working; the moved one is started afresh.
                    self.disk_cache = FanoutCache(directory=self.directory, shards=16, timeout=10,
                                                  size_limit=DISK_CACHE_LIMIT)
                else:
                    logger.warning("The LM cache in %s failed (%s); this answer is not cached.", self.directory,
                                   str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    _guarded = GuardedCache
    return GuardedCache


def configure_response_cache(directory: Path | None) -> None:
    """Point DSPy's response cache at ``directory`` (None: no cache), moving damaged shards aside first."""
    import dspy

    if directory is None:
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
        return
    cls = _guarded_cache_class()
    quarantine_damaged_shards(directory)
    try:
        cache = cls(str(directory))
    except sqlite3.DatabaseError as exc:  # damage the quick check did not see (a shard locked meanwhile?)
        if not quarantine_damaged_shards(directory):
            raise HelmOptimizerError(
                f"The LM cache in {directory} cannot be opened ({exc}); move that directory aside or pass "
                "--no-cache."
            ) from None
        cache = cls(str(directory))
    dspy.cache = cache
