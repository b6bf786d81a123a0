"""Where agents live, and writing them so that a crash never leaves half a file.

Layout: ``<agents dir>/<scenario key>/<model path>/<optimizer>.json`` (see
:mod:`helm_optimizer.naming`), with ``<optimizer>.meta.json`` beside it. Cross-fitted scenarios
have one agent per fold: ``<optimizer>.fold<k>.json`` is the agent *evaluated on* fold ``k``
(optimized on the other fold).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_optimizer._io import make_encodable, write_bytes_atomic
from helm_optimizer.agents.program import load_program
from helm_optimizer.errors import AgentError, AgentExistsError, DataError
from helm_optimizer.naming import agent_path, model_from_path
from helm_optimizer.records import AgentMeta, read_record, write_record

__all__ = [
    "AgentInfo",
    "agent_digest",
    "agent_path",
    "find_agent",
    "list_agents",
    "load_agent",
    "meta_matches_agent",
    "meta_path",
    "read_meta",
    "save_agent",
    "set_aside",
]

logger = logging.getLogger(__name__)
_NAME_RE = re.compile(r"^(?P<optimizer>[^.]+?)(?:\.seed(?P<seed>\d+))?(?:\.fold(?P<fold>\d+))?\.json$")


def meta_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.name[: -len(".json")] + ".meta.json")


def read_meta(path: Path) -> AgentMeta | None:
    """The metadata beside the agent at ``path`` (None when there is none); a damaged one is a DataError."""
    meta = meta_path(path)
    if not meta.is_file():
        return None
    return read_record(AgentMeta, meta)


def _strip_lms(program: Any) -> Any:
    clean = program.deepcopy()
    for predictor in clean.predictors():
        predictor.lm = None
    return clean


def _make_encodable(program: Any) -> int:
    """Replace text no file can hold (lone surrogates from a model's output in demos or instructions).

    A model can answer with half of a UTF-16 pair (valid JSON, not valid Unicode); DSPy keeps it in
    a bootstrapped demo and then cannot save the program. Returns how many strings were replaced;
    a program without such text is left exactly as it was.
    """
    clean, fixed = make_encodable(program.dump_state())
    if fixed:
        program.load_state(clean)
    return fixed


def agent_digest(data: bytes) -> str:
    """The fingerprint of an agent file's bytes recorded in its metadata (``agent_sha256``)."""
    return hashlib.sha256(data).hexdigest()


def save_agent(program: Any, path: Path, meta: AgentMeta, *, force: bool = False,
               secrets: Iterable[str] = ()) -> AgentMeta:
    """Write the agent in DSPy's own JSON format and its metadata, each atomically.

    Refuses to overwrite an existing agent unless ``force``; refuses to write if any secret
    appears in the bytes to be written. ``meta`` gains ``agent_sha256``, the hash of the agent
    bytes, so that a reader can tell whether the metadata describes the agent beside it.

    A new agent is written after its metadata, a replacement before it: an interruption (kill,
    disk full) then leaves either metadata with no agent (ignored; the next run writes both) or
    the previous agent and metadata untouched, or, when replacing, the new agent with the old
    metadata, which ``agent_sha256`` exposes. Nothing is ever half written: DSPy serializes into a
    private temporary directory, never into the output directory.
    """
    path = Path(path)
    replacing = path.exists()
    if replacing and not force:
        raise AgentExistsError(f"An agent already exists at {path}; pass --force to replace it.")
    clean = _strip_lms(program)
    replaced = _make_encodable(clean)
    if replaced:
        logger.warning("Replaced %d text(s) holding invalid Unicode (lone surrogates in model output) with "
                       "U+FFFD in the agent for %s.", replaced, path)
        meta = meta.model_copy(update={"replaced_invalid_texts": replaced})
    with tempfile.TemporaryDirectory(prefix="helm-optimizer-agent-") as scratch:
        tmp = Path(scratch) / "agent.json"  # DSPy picks its format from the suffix
        clean.save(str(tmp))
        data = tmp.read_bytes()
    json.loads(data)  # what DSPy wrote must parse before it replaces anything
    meta = meta.model_copy(update={"agent_sha256": agent_digest(data)})
    meta_bytes = meta.model_dump_json().encode("utf-8")
    for secret in secrets:
        if secret and (secret.encode("utf-8") in data or secret.encode("utf-8") in meta_bytes):
            raise AgentError("Refusing to write an agent that contains an API key; report this as a bug.")
    if replacing:
        write_bytes_atomic(path, data)
        write_record(meta_path(path), meta)
    else:
        write_record(meta_path(path), meta)
        write_bytes_atomic(path, data)
    return meta


def set_aside(path: Path) -> list[Path]:
    """Move an agent and its metadata out of the way (``<name>.replaced-<UTC time>.json``); nothing is deleted.

    The moved files no longer match the agent layout, so no reader takes them for current agents.
    """
    import datetime as dt

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    moved = []
    for file in (Path(path), meta_path(path)):
        if file.exists():
            target = file.with_name(f"{file.name[: -len('.json')]}.replaced-{stamp}.json")
            file.replace(target)
            moved.append(target)
    return moved


def meta_matches_agent(path: Path, meta: AgentMeta) -> bool:
    """Whether ``meta`` describes the agent file at ``path`` (metadata without a hash is trusted)."""
    expected = meta.agent_sha256
    if expected is None:
        return True
    try:
        return bool(agent_digest(Path(path).read_bytes()) == expected)
    except OSError:
        return False


def load_agent(path: Path, kind: str | None = None) -> Any:
    """Load an agent file (ours or the reference tool's) into a DSPy program."""
    return load_program(Path(path), kind)


@dataclass(frozen=True)
class AgentInfo:
    path: Path
    scenario: str
    model: str
    optimizer: str
    fold: int | None
    meta: AgentMeta | None
    seed: int | None = None
    """The optimizer seed of a multi-seed sweep's agent (``<optimizer>.seed<s>.json``), else None."""


def list_agents(agents_dir: Path) -> list[AgentInfo]:
    """Every agent under ``agents_dir`` (files named ``*.json`` that are not metadata)."""
    root = Path(agents_dir)
    if not root.is_dir():
        return []
    found = []
    for file in sorted(root.rglob("*.json")):
        if file.name.endswith(".meta.json") or file.name.startswith("."):
            continue
        rel = file.relative_to(root).parts
        if len(rel) < 3:
            continue
        match = _NAME_RE.match(file.name)
        if not match:
            continue
        try:
            meta = read_meta(file)
        except DataError:
            meta = None
        found.append(AgentInfo(
            path=file, scenario=rel[0], model=model_from_path("/".join(rel[1:-1])),
            optimizer=match.group("optimizer"), fold=int(match.group("fold")) if match.group("fold") else None,
            meta=meta, seed=int(match.group("seed")) if match.group("seed") else None,
        ))
    return found


def find_agent(agents_dir: Path, scenarios: Iterable[str], model: str, optimizer: str,
               fold: int | None = None) -> Path | None:
    """The first existing agent among candidate scenario keys (most specific first)."""
    for scenario in scenarios:
        candidate = agent_path(agents_dir, scenario, model, optimizer, fold)
        if candidate.is_file():
            return candidate
    return None

