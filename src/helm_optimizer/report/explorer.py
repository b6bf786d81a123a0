"""The instance explorer of the HTML report: every test instance, every method, right or wrong.

Reads what HELM wrote for each evaluated run (``scenario_state.json``: prompts, answers and, for
DSPy methods, the reasoning; ``per_instance_stats.json``: the main metric per instance) and renders
one section (``id="instances"``) with the data embedded as JSON and a small script: a grid of
instances × methods per model, flips against the baseline (wrong → right, right → wrong) counted
and filterable by method, model and flip type, and a detail pane with the prompt and every
method's answer. The page stays self-contained and works offline; long texts are cut so that a few
thousand instances stay a few megabytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from helm_optimizer._io import make_encodable
from helm_optimizer.errors import DataError
from helm_optimizer.report.records import EvaluationRecord, load_instance_scores

__all__ = ["BASELINE", "ExplorerData", "collect_explorer_data", "render_explorer"]

logger = logging.getLogger(__name__)

BASELINE = "baseline"
_MAX_PROMPT = 4000
_MAX_ANSWER = 1500
_MAX_QUESTION = 600
RIGHT_AT = 0.5
"""A per-instance score at or above this counts as right (0/1 metrics: exactly the right answers)."""


@dataclass(frozen=True)
class ExplorerData:
    """JSON-able explorer payload (see :func:`collect_explorer_data`)."""

    payload: dict[str, Any]

    @property
    def num_rows(self) -> int:
        return len(self.payload["rows"])


def _cut(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def _read_states(run_dir: Path) -> dict[str, dict[str, Any]]:
    """``instance_id -> first request state`` (train trial 0, unperturbed) of a HELM run."""
    path = run_dir / "scenario_state.json"
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read HELM's {path} ({exc}); rerun the evaluation of this run.") from None
    out: dict[str, dict[str, Any]] = {}
    for rs in state.get("request_states", []):
        instance = rs.get("instance") or {}
        if instance.get("perturbation") or rs.get("train_trial_index", 0) != 0:
            continue
        if instance.get("id") is not None:
            out.setdefault(str(instance["id"]), rs)
    return out


def _gold(rs: dict[str, Any]) -> str:
    references = (rs.get("instance") or {}).get("references") or []
    correct = [r for r in references if "correct" in (r.get("tags") or [])]
    mapping = {v: k for k, v in (rs.get("output_mapping") or {}).items()}
    texts = []
    for ref in correct:
        text = str((ref.get("output") or {}).get("text") or "")
        texts.append(f"{mapping[text]}. {text}" if text in mapping else text)
    return " | ".join(texts)


def _answer(rs: dict[str, Any]) -> tuple[str, str | None]:
    result = rs.get("result") or {}
    completions = result.get("completions") or []
    if not result.get("success", True) and not completions:
        return f"(request failed: {str(result.get('error') or '')[:200]})", None
    if not completions:
        return "", None
    first = completions[0]
    thinking = first.get("thinking") or {}
    reasoning = thinking.get("text") if isinstance(thinking, dict) else None
    return str(first.get("text") or ""), (str(reasoning) if reasoning else None)


def _common_lines(texts: Sequence[str]) -> str:
    """The whole lines every text starts with (a run's shared in-context examples and instructions)."""
    if len(texts) < 2:
        return ""
    low, high = min(texts), max(texts)  # the common prefix of all is that of the extremes
    size = 0
    while size < min(len(low), len(high)) and low[size] == high[size]:
        size += 1
    prefix = low[:size]
    return prefix[: prefix.rfind("\n") + 1]


def collect_explorer_data(records: Sequence[EvaluationRecord]) -> ExplorerData:
    """Rows per (scenario, model, instance) with every method's score, answer and reasoning."""
    scenarios: list[str] = []
    models: list[str] = []
    methods: list[str] = []
    rows: dict[tuple[int, int, str], dict[str, Any]] = {}
    metrics: dict[str, str] = {}

    def index(items: list[str], value: str) -> int:
        if value not in items:
            items.append(value)
        return items.index(value)

    ordered = sorted(records, key=lambda r: (r.scenario, r.model, r.method != BASELINE, r.method,
                                             -1 if r.fold is None else r.fold))
    runs = []
    prompts_by_key: dict[str, list[str]] = {}
    for record in ordered:
        si, mi, ki = index(scenarios, record.scenario), index(models, record.model), index(methods, record.method)
        metrics[record.scenario] = record.main_metric
        states = _read_states(record.run_dir)
        prompts = {iid: str((rs.get("request") or {}).get("prompt") or "") for iid, rs in states.items()}
        key = f"{si}|{mi}|{ki}"
        prompts_by_key.setdefault(key, []).extend(prompts.values())
        runs.append((si, mi, ki, key, load_instance_scores(record.run_dir, record.main_metric, record.split),
                     states, prompts))
    prefixes = {key: _common_lines(texts) for key, texts in prompts_by_key.items()}
    for si, mi, ki, key, scores, states, prompts in runs:
        for instance_id, score in scores.items():
            rs = states.get(instance_id, {})
            row = rows.setdefault((si, mi, instance_id), {"s": si, "m": mi, "id": instance_id, "c": {}})
            if "q" not in row and rs:
                row["q"] = _cut(str(((rs.get("instance") or {}).get("input") or {}).get("text") or ""),
                                _MAX_QUESTION)
                row["g"] = _gold(rs)
            answer, reasoning = _answer(rs) if rs else ("", None)
            cell: list[Any] = [round(score, 6), _cut(answer, _MAX_ANSWER), _cut(reasoning, _MAX_ANSWER)]
            prompt = prompts.get(instance_id)
            if prompt:
                cell.append(_cut(prompt[len(prefixes[key]):], _MAX_PROMPT))
            row["c"][str(ki)] = cell
    payload = {
        "scenarios": scenarios, "models": models, "methods": methods, "metrics": metrics,
        "baseline": methods.index(BASELINE) if BASELINE in methods else None, "right_at": RIGHT_AT,
        "prefixes": {k: v for k, v in prefixes.items() if v},
        "rows": sorted(rows.values(), key=lambda r: (r["s"], r["m"], r["id"])),
    }
    return ExplorerData(payload)


def _script_json(payload: dict[str, Any]) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>`` can end it)."""
    clean, _ = make_encodable(payload)  # a model's half surrogate pair would make the page unwritable
    text = json.dumps(clean, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_explorer(data: ExplorerData) -> str:
    """The explorer's HTML section (with its style and script), to put inside the report's body."""
    from jinja2 import Environment

    template = (resources.files("helm_optimizer") / "report" / "explorer.html").read_text(encoding="utf-8")
    environment = Environment(autoescape=True, keep_trailing_newline=True)
    rows = data.payload["rows"]
    return environment.from_string(template).render(
        data_json=_script_json(data.payload), num_rows=len(rows), num_methods=len(data.payload["methods"]),
        has_baseline=data.payload["baseline"] is not None,
    )
