"""Small file helpers: atomic writes, fingerprints, directory locks."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helm_optimizer.errors import HelmOptimizerError, LockedError

__all__ = [
    "canonical_json",
    "check_writable",
    "damaged_sqlite_files",
    "directory_lock",
    "file_lock",
    "fingerprint",
    "make_encodable",
    "move_aside",
    "os_error",
    "read_json",
    "remove_stale_temporaries",
    "sqlite_problem",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and a trailing newline: the same data always gives the same bytes."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def fingerprint(data: Any) -> str:
    """A short, stable hash of JSON-serializable data."""
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a part.

    The temporary file lives in the same directory (``os.replace`` is atomic there) and is fsynced
    before the rename. On failure (disk full, no permission) the temporary file is removed and the
    previous content of ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise os_error(path, exc) from exc
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise os_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def os_error(path: Path | str, exc: OSError) -> HelmOptimizerError:
    """A one-line error (exit code 2) for a failed write to ``path``, naming the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return HelmOptimizerError(f"No space left on the device while writing {path}; free space and rerun.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return HelmOptimizerError(
            f"Cannot write {path}: {reason}; choose a writable --output-dir or fix its permissions."
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return HelmOptimizerError(
            f"Cannot write {path}: a parent of it is a file, not a directory; choose another --output-dir."
        )
    reason = (exc.strerror or str(exc)).splitlines()[0] if (exc.strerror or str(exc)) else type(exc).__name__
    return HelmOptimizerError(f"Cannot write {path}: {reason}; check the directory and rerun.")



def make_encodable(value: Any) -> tuple[Any, int]:
    """``value`` with every string (and dict key) encodable as UTF-8, and how many were not.

    A model can answer with half of a UTF-16 surrogate pair (valid JSON, not valid Unicode); such
    text fails every file that stores it and every request that quotes it. Lone surrogates become
    U+FFFD; other values are returned as they are.
    """
    fixed = 0

    def clean(item: Any) -> Any:
        nonlocal fixed
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                fixed += 1
                return item.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return item
        if isinstance(item, list):
            return [clean(v) for v in item]
        if isinstance(item, dict):
            return {clean(k): clean(v) for k, v in item.items()}
        return item

    return clean(value), fixed


def check_writable(directory: Path) -> None:
    """Create ``directory`` and prove a file can be written there, or raise a one-line error."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise os_error(directory, exc) from exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


# ``.<name>.<8 random characters>.tmp``: what write_bytes_atomic and check_writable create.
_TEMPORARY_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files that a killed writer left under ``directory``; returns how many.

    Only call this while holding :func:`directory_lock` on ``directory``: no live writer then owns them.
    """
    removed = 0
    for path in Path(directory).rglob(".*.tmp"):
        if _TEMPORARY_RE.match(path.name) and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def sqlite_problem(path: Path) -> str | None:
    """Why the SQLite database at ``path`` cannot be used (not a database, truncated, corrupt), or None."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return None  # in use by a live writer: not ours to judge
        return str(exc)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    verdict = "; ".join(str(row[0]) for row in rows[:3])
    return None if verdict == "ok" else verdict


def damaged_sqlite_files(directory: Path, pattern: str) -> list[tuple[Path, str]]:
    """The SQLite files under ``directory`` matching ``pattern`` that fail SQLite's quick check, with why."""
    root = Path(directory)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob(pattern)):
        if path.is_file():
            problem = sqlite_problem(path)
            if problem is not None:
                found.append((path, problem))
    return found


def move_aside(path: Path) -> Path:
    """Rename a damaged file (and its SQLite journal files) to ``<name>.damaged-<UTC time>``; returns the new path.

    Nothing is deleted: the file stays beside its old name for inspection, and the program
    that used it starts a new one.
    """
    import datetime as _dt

    path = Path(path)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    try:
        os.replace(path, target)
        for suffix in ("-wal", "-shm", "-journal"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
    except OSError as exc:
        raise os_error(path, exc) from exc
    return target


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, canonical_json(data))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def directory_lock(directory: Path, *, wait: float = 0.0, what: str = "run") -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` for the duration of the block.

    A second process gets :class:`LockedError` (``wait=0``) or blocks up to ``wait`` seconds.
    The lock is an OS-level file lock, released when the process dies, so a killed run never
    leaves a stale lock behind.
    """
    directory = Path(directory)
    with file_lock(directory / ".helm-optimizer.lock", wait=wait, what=what, target=directory,
                   advice="wait for it to finish, or use another --output-dir."):
        yield


@contextlib.contextmanager
def file_lock(lock_path: Path, *, what: str, target: Path, wait: float = 0.0, advice: str = "") -> Iterator[None]:
    """Hold the OS-level lock ``lock_path`` (created with its directory) while the block runs.

    ``target`` is what the lock protects, named in the :class:`LockedError` a second process gets
    (after waiting up to ``wait`` seconds). A killed holder never leaves a stale lock behind.
    """
    from filelock import FileLock, Timeout

    lock_path = Path(lock_path)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(lock_path.parent, exc) from exc
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=wait if wait > 0 else 0.01)
    except Timeout:  # (a subclass of OSError)
        raise LockedError(
            f"Another {what} is using {target} (lock file {lock_path}); "
            + (advice or "wait for it to finish (a rerun then reuses its results), or use another --output-dir.")
        ) from None
    except OSError as exc:  # a read-only directory: the lock file cannot be created
        raise os_error(lock_path, exc) from exc
    try:
        yield
    finally:
        lock.release()
