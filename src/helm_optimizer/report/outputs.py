"""HELM's per-instance outputs of a run (``scenario_state.json``): answers, references, option letters.

One reader for the report modules that look at what each method actually answered (format
failures, the extracted score, instance groups for the cluster bootstrap). A run without the file,
or with an unreadable one, has no outputs (``None``): those figures are then left empty, never
guessed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["InstanceOutput", "RunOutputs", "read_outputs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceOutput:
    """One request of a run: the instance, the answer HELM's metric saw, and the option letters."""

    instance_id: str
    input_text: str
    references: tuple[str, ...]
    correct: tuple[int, ...]
    """Indices of the correct references."""
    completion: str | None
    """The first completion's text; None when the request failed or returned nothing."""
    output_mapping: dict[str, str] | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutputs:
    method: str
    """HELM's adapter method (``multiple_choice_joint``, ``generation``...)."""
    output_mapping_pattern: str | None
    outputs: tuple[InstanceOutput, ...]

    @property
    def multiple_choice(self) -> bool:
        return any(o.output_mapping for o in self.outputs)


def _instance_output(state: dict[str, Any]) -> InstanceOutput | None:
    instance = state.get("instance") or {}
    instance_id = instance.get("id")
    if not isinstance(instance_id, str):
        return None
    references = instance.get("references") or []
    texts = tuple(str(((r or {}).get("output") or {}).get("text", "")) for r in references)
    correct = tuple(i for i, r in enumerate(references) if "correct" in ((r or {}).get("tags") or []))
    result = state.get("result") or {}
    completions = result.get("completions") or []
    completion = None
    if result.get("success", True) and completions and isinstance(completions[0], dict):
        completion = str(completions[0].get("text", ""))
    mapping = state.get("output_mapping")
    return InstanceOutput(instance_id=instance_id, input_text=str((instance.get("input") or {}).get("text", "")),
                          references=texts, correct=correct, completion=completion,
                          output_mapping=dict(mapping) if isinstance(mapping, dict) else None,
                          extra=dict(instance.get("extra_data") or {}))


@lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int) -> RunOutputs | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        logger.warning("Cannot read HELM outputs %s (%s); format figures are left empty.", path, exc)
        return None
    if not isinstance(data, dict):
        return None
    adapter = data.get("adapter_spec") or {}
    outputs = []
    for state in data.get("request_states") or []:
        if isinstance(state, dict) and state.get("train_trial_index", 0) == 0:
            item = _instance_output(state)
            if item is not None:
                outputs.append(item)
    if not outputs:
        return None
    return RunOutputs(method=str(adapter.get("method", "")), output_mapping_pattern=adapter.get(
        "output_mapping_pattern"), outputs=tuple(outputs))


def read_outputs(run_dir: Path) -> RunOutputs | None:
    """The first-trial outputs of a HELM run directory; None without a readable ``scenario_state.json``."""
    path = Path(run_dir) / "scenario_state.json"
    if not path.is_file():
        return None
    return _read(str(path.resolve()), path.stat().st_mtime_ns)
