"""Finding and reading the local benchmark files: one-line :class:`DataError` for every bad file."""

from __future__ import annotations

import csv
import io
import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from helm_optimizer.errors import DataError

__all__ = [
    "DATA_DIR_ENV",
    "find_data_file",
    "optional_data_file",
    "read_csv_records",
    "read_utf8_text",
    "resolve_data_dir",
]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "HELM_OPTIMIZER_DATA_DIR"
"""Environment variable naming the data directory when no ``data_dir`` argument is given."""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The argument, else ``$HELM_OPTIMIZER_DATA_DIR``, else ``None`` (meaning: use HELM's download)."""
    if data_dir is not None and str(data_dir) != "":
        chosen, origin = Path(data_dir), "data_dir"
    else:
        env = os.environ.get(DATA_DIR_ENV, "")
        if not env:
            return None
        chosen, origin = Path(env), f"${DATA_DIR_ENV}"
    chosen = chosen.expanduser()
    if not chosen.is_dir():
        raise DataError(
            f"The data directory {chosen} (from {origin}) does not exist or is not a directory; "
            "pass --data-dir with the benchmark files, or run online without it."
        )
    return chosen


def _search_dirs(data_dir: Path, benchmark: str, relative: str) -> list[Path]:
    parent = Path(relative).parent
    dirs = [data_dir / benchmark / parent, data_dir / parent, data_dir]
    unique: list[Path] = []
    for directory in dirs:
        if directory not in unique:
            unique.append(directory)
    return unique


def optional_data_file(data_dir: Path, benchmark: str, relative: str) -> Path | None:
    """``<data_dir>/<benchmark>/<relative>``, else the same name in ``data_dir``; ``None`` if absent."""
    name = Path(relative).name
    for directory in _search_dirs(data_dir, benchmark, relative):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def find_data_file(data_dir: Path, benchmark: str, relative: str) -> Path:
    """Like :func:`optional_data_file`, but a missing file is a :class:`DataError` naming where it looked."""
    found = optional_data_file(data_dir, benchmark, relative)
    if found is not None:
        return found
    searched = ", ".join(str(d) for d in _search_dirs(data_dir, benchmark, relative))
    raise DataError(
        f"{benchmark}: data file {Path(relative).name} not found; searched {searched}. "
        f"Pass --data-dir with the benchmark files (laid out as <dir>/{benchmark}/{relative}), "
        "or run online without --data-dir so HELM downloads them."
    )


def read_utf8_text(path: Path) -> str:
    """The file's text, newlines translated as by ``open(path, encoding="utf-8")`` (what HELM uses).

    A ``.zip`` file is read through its single ``.csv``/``.json`` member. An empty file or one that
    is not UTF-8 is a :class:`DataError`.
    """
    try:
        raw = _read_member(path) if path.suffix == ".zip" else path.read_bytes()
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"Cannot read data file {path}: {exc}; check the file and its permissions.") from exc
    if not raw.strip():
        raise DataError(f"Data file {path} is empty; replace it with the original benchmark file.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"Data file {path} is not UTF-8 (invalid byte at offset {exc.start}); "
            "replace it with the original benchmark file, which is UTF-8."
        ) from exc
    # Universal newlines, as in text-mode open(): "\r\n" and "\r" inside quoted fields become "\n".
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_member(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if n.endswith((".csv", ".json")) and "__MACOSX" not in n]
        if len(members) != 1:
            raise DataError(
                f"Archive {path} should hold exactly one .csv or .json file but holds {len(members)}; "
                "unpack it and pass the file itself."
            )
        return archive.read(members[0])


def read_csv_records(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV as ``csv.DictReader`` gives them, after checking the header has ``required``."""
    text = read_utf8_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [column for column in required if column not in header]
    if missing:
        bom = bool(header) and header[0].startswith("\ufeff")
        hint = " (the file starts with a byte-order mark)" if bom else ""
        raise DataError(
            f"Data file {path} lacks the column(s) {', '.join(repr(c) for c in missing)}{hint}; "
            f"found {', '.join(repr(c) for c in header) or 'no header'}. "
            "Replace it with the original benchmark file."
        )
    try:
        return list(reader)
    except csv.Error as exc:
        raise DataError(f"Data file {path} is not valid CSV ({exc}); use the original file.") from exc
