"""DSPy programs: the student every optimizer starts from, and reading agent files of any vintage."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from helm_optimizer.errors import AgentError

__all__ = ["PROGRAM_KINDS", "detect_program_kind", "load_program", "make_program", "read_agent_json"]

logger = logging.getLogger(__name__)

PROGRAM_KINDS = ("cot", "predict")
SIGNATURE = "inputs -> output"


def make_program(kind: str) -> Any:
    """A fresh ``ChainOfThought("inputs -> output")`` (``cot``) or ``Predict`` (``predict``)."""
    import dspy

    if kind == "cot":
        return dspy.ChainOfThought(SIGNATURE)
    if kind == "predict":
        return dspy.Predict(SIGNATURE)
    raise AgentError(f"Unknown program kind '{kind}'; use one of: {', '.join(PROGRAM_KINDS)}.")


def read_agent_json(path: Path) -> dict[str, Any]:
    """Parse an agent file, with one-line errors for the ways it can be broken."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AgentError(f"Agent file {path} does not exist; run `helm-optimizer optimize` or fix the path.") from None
    except UnicodeDecodeError:
        raise AgentError(f"Agent file {path} is not UTF-8 text; it is not a DSPy agent JSON.") from None
    except IsADirectoryError:
        raise AgentError(
            f"Agent file {path} is a directory; give an agent's .json file (`helm-optimizer agents list` shows "
            "them)."
        ) from None
    except OSError as exc:
        raise AgentError(f"Cannot read agent file {path}: {exc.strerror or exc}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AgentError(
            f"Agent file {path} is not valid JSON ({exc.msg}, line {exc.lineno}); it may be truncated — "
            "re-run the optimization that wrote it."
        ) from None
    if not isinstance(data, dict):
        raise AgentError(f"Agent file {path} holds a JSON {type(data).__name__}, not a DSPy program object.")
    return data


def detect_program_kind(data: dict[str, Any]) -> str:
    """``cot`` for a saved ChainOfThought (``predict`` sub-module), ``predict`` for a bare Predict."""
    if isinstance(data.get("predict"), dict):
        return "cot"
    if "signature" in data and "demos" in data:
        return "predict"
    keys = ", ".join(sorted(k for k in data if k != "metadata")) or "none"
    raise AgentError(
        f"Not a DSPy agent: expected a 'predict' object (ChainOfThought) or 'signature' and 'demos' (Predict), "
        f"found keys: {keys}."
    )


def _check_predictor_state(state: dict[str, Any], where: str) -> None:
    demos = state.get("demos", [])
    if not isinstance(demos, list) or not all(isinstance(d, dict) for d in demos):
        raise AgentError(f"{where}: 'demos' must be a list of objects.")
    signature = state.get("signature")
    if signature is not None and not isinstance(signature, dict):
        raise AgentError(f"{where}: 'signature' must be an object.")
    if isinstance(signature, dict):
        fields = signature.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
            raise AgentError(f"{where}: 'signature.fields' must be a list of objects.")


def load_program(path: Path, kind: str | None = None) -> Any:
    """Load a saved agent (ours, or the reference tool's from dspy 2.6/3.0) into a fresh program."""
    data = read_agent_json(path)
    try:
        detected = detect_program_kind(data)
    except AgentError as exc:
        raise AgentError(f"Agent file {path}: {exc}") from None
    state = data["predict"] if detected == "cot" else data
    _check_predictor_state(state, f"Agent file {path}")
    if kind is not None and kind != detected:
        raise AgentError(
            f"Agent file {path} holds a {detected} program but '{kind}' was requested; drop --program or match it."
        )
    program = make_program(detected)
    try:
        clean = _clean_predictor_state(state)
    except AgentError as exc:
        raise AgentError(f"Agent file {path}: {exc}.") from None
    try:
        program.load_state({"predict": clean} if detected == "cot" else clean)
    except Exception as exc:
        raise AgentError(f"Agent file {path} could not be loaded by DSPy: {type(exc).__name__}: {exc}") from exc
    return program


_PREDICTOR_KEYS = ("traces", "train", "demos", "signature", "fields")


def _clean_predictor_state(state: dict[str, Any]) -> dict[str, Any]:
    """The predictor state DSPy 3.4 reads, from files written by DSPy 2.5 through 3.x.

    Keys DSPy no longer writes ('extended_signature' from 2.5) and any saved LM are dropped: an
    agent is model-agnostic and always runs with the LM it is evaluated on.
    """
    clean: dict[str, Any] = {k: state[k] for k in _PREDICTOR_KEYS if k in state}
    extended = state.get("extended_signature")
    if isinstance(extended, dict) and len(extended.get("fields", [])) > len((clean.get("signature") or {}).get(
            "fields", [])):
        clean["signature"] = extended  # DSPy <= 2.5 kept the reasoning field only in extended_signature
    clean.setdefault("traces", [])
    clean.setdefault("train", [])
    clean.setdefault("demos", [])
    if "signature" not in clean:
        raise AgentError("the predictor has no 'signature'")
    clean["lm"] = None
    return clean
