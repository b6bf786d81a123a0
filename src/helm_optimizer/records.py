"""Typed on-disk records: one pydantic model per file kind, shared by the writer and every reader.

* :class:`AgentMeta`: ``<optimizer>[.fold<k>].meta.json`` beside each agent;
* :class:`EvaluationRecord`: ``evaluations/<scenario>/<model>/<method>[.fold<k>].json``, one per HELM run;
* :class:`ReportFile`: ``report/report.json``;
* :class:`SweepState`: ``sweep.json`` at the top of a sweep's output directory;
* :class:`EstimateComparison`: ``report/estimate.json``, a sweep's pre-flight estimate beside what it called.

Each carries ``schema_version``. A file of the previous layout (no version) is migrated when read;
a file of another version is a :class:`~helm_optimizer.errors.DataError` naming the fix. Method
names are the constants of :mod:`helm_optimizer.naming` (``baseline``, ``ZeroShotPredict``,
``ZeroShotCoT``) or a registered optimizer's name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from helm_optimizer._io import write_json_atomic
from helm_optimizer.errors import DataError
from helm_optimizer.naming import METHOD_BASELINE, METHOD_ZS_COT, METHOD_ZS_PREDICT

__all__ = [
    "BUILTIN_METHODS",
    "SCHEMA_VERSION",
    "AgentData",
    "AgentMeta",
    "AgentScores",
    "EstimateComparison",
    "EstimateRow",
    "EvaluationInputs",
    "EvaluationRecord",
    "HelmOfficial",
    "ReportFile",
    "SweepState",
    "Usage",
    "read_record",
    "write_record",
]

SCHEMA_VERSION = 2
BUILTIN_METHODS = (METHOD_BASELINE, METHOD_ZS_PREDICT, METHOD_ZS_COT)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Usage(_Record):
    """LM calls, tokens, cost (USD; None when a price is unknown) and wall time of one piece of work."""

    lm_calls: int = Field(0, ge=0)
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    cost: float | None = None
    wall_time_s: float = Field(0.0, ge=0)

    @field_validator("cost", "wall_time_s")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def __add__(self, other: Usage) -> Usage:
        """The sum of two usages (cost unknown when either is)."""
        return Usage(
            lm_calls=self.lm_calls + other.lm_calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=None if self.cost is None or other.cost is None else self.cost + other.cost,
            wall_time_s=self.wall_time_s + other.wall_time_s,
        )


class AgentData(_Record):
    """What an agent was optimized on, and which test instances it is evaluated on."""

    fingerprint: str
    train_size: int
    val_size: int
    strategy: str
    provenance: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    main_metric: str
    eval_size: int
    eval_ids_fingerprint: str
    test_size: int
    eval_limit: int | None = None


class AgentScores(_Record):
    metric: str
    val_before: float | None = None
    val_after: float | None = None


class AgentMeta(_Record):
    """The metadata written beside an agent (secrets never included)."""

    schema_version: Literal[2] = 2
    scenario: str
    run_entry: str
    model: str
    optimizer: str
    program: str | None = None
    fold: int | None = None
    num_folds: int = Field(1, ge=1)
    seed: int
    optimizer_seed: int | None = None
    """The optimizer's own seed in a multi-seed sweep (``<optimizer>.seed<s>.json``); None: ``seed``."""
    config: dict[str, Any]
    config_fingerprint: str
    data: AgentData
    scores: AgentScores
    optimized_on: dict[str, Any] | None = None
    """What the agent was optimized on: example ids, seeds, fold, test and data fingerprints, model."""
    contamination: dict[str, Any] | None = None
    """Question-level overlap found in the optimization data and in the agent's demos and instructions."""
    usage: dict[str, int | float | None] = Field(default_factory=dict)
    wall_time_s: float = 0.0
    versions: dict[str, str] = Field(default_factory=dict)
    created_at: str
    agent_sha256: str | None = None
    replaced_invalid_texts: int | None = None

    @classmethod
    def migrate(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The first layout (``"format": 1``) differs only by its version marker."""
        if data.get("format") == 1 and "schema_version" not in data:
            data = {k: v for k, v in data.items() if k != "format"} | {"schema_version": SCHEMA_VERSION}
        return data


class HelmOfficial(_Record):
    """HELM's own main metric for a run, where it differs from the one reported."""

    metric: str
    mean: float | None = None


class EvaluationInputs(_Record):
    """Everything that decides an evaluation's result; a record whose inputs changed is recomputed."""

    run_entry: str
    lm: dict[str, Any]
    """The model's settings that change its answers (no endpoint, no secret)."""
    method: str
    fold: int | None = None
    num_folds: int = 1
    seed: int
    eval_limit: int | None = None
    helm_deployment: str | None = None
    metric: str
    suite: str
    data: str
    """Fingerprint of the evaluated split's instances (ids, inputs, references)."""
    agent_sha256: str | None = None
    optimizer_seed: int | None = None
    versions: dict[str, str] = Field(default_factory=dict)


class EvaluationRecord(_Record):
    """One HELM run of one method on one (scenario, model[, fold])."""

    schema_version: Literal[2] = 2
    scenario: str = Field(min_length=1)
    run_entry: str = Field(min_length=1)
    model: str = Field(min_length=1)
    method: str = Field(min_length=1)
    fold: int | None = None
    num_folds: int = Field(1, ge=1)
    suite: str = Field(min_length=1)
    run_dir: str = Field(min_length=1)
    """The HELM run directory, relative to the output directory (or absolute)."""
    main_metric: str = Field(min_length=1)
    split: str = Field(min_length=1)
    mean: float
    count: int = Field(ge=0)
    deployment: str | None = None
    helm_official: HelmOfficial | None = None
    lm_calls: int = Field(0, ge=0)
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    cost: float | None = None
    retries: int = Field(0, ge=0)
    wall_time_s: float = Field(0.0, ge=0)
    requests: int | None = None
    failed_requests: int | None = None
    cached_requests: int | None = None
    first_error: str | None = None
    optimization: Usage | None = None
    spec_fingerprint: str | None = None
    """Fingerprint of ``inputs``."""
    inputs: EvaluationInputs | None = None
    optimizer_seed: int | None = None
    decoding: dict[str, Any] | None = None
    """What the method decoded under (HELM's adapter for the baseline, the LM config for DSPy methods)."""
    mean_completion_tokens: float | None = None
    provenance: dict[str, Any] | None = None
    """The check of the agent's optimization data against the evaluated instances."""
    contamination: dict[str, Any] | None = None

    @field_validator("mean", "cost", "wall_time_s")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _fold_in_range(self) -> EvaluationRecord:
        if self.num_folds > 1 and (self.fold is None or not 0 <= self.fold < self.num_folds):
            raise ValueError(f"'fold' must be an integer in [0, {self.num_folds}) when num_folds is "
                             f"{self.num_folds}, not {self.fold!r}")
        if self.num_folds == 1 and self.fold not in (None, 0):
            raise ValueError(f"'fold' is {self.fold} but 'num_folds' is 1")
        return self

    @property
    def evaluation(self) -> Usage:
        return Usage(lm_calls=self.lm_calls, prompt_tokens=self.prompt_tokens,
                     completion_tokens=self.completion_tokens, cost=self.cost, wall_time_s=self.wall_time_s)

    @classmethod
    def migrate(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Records of the first layout have no version marker and the same keys."""
        if "schema_version" not in data:
            data = dict(data) | {"schema_version": SCHEMA_VERSION}
        return data


class ReportFile(_Record):
    """``report.json``: the table's rows in column order, with rankings and flips."""

    schema_version: Literal[2] = 2
    seed: int
    resamples: int
    columns: list[str]
    rows: list[dict[str, Any]]
    """One object per report row (``helm_optimizer.report.table.ReportRow``), keys in ``columns`` order."""
    rankings: list[dict[str, Any]] = Field(default_factory=list)
    ranking_flips: list[dict[str, Any]] = Field(default_factory=list)
    rank_stability: list[dict[str, Any]] = Field(default_factory=list)
    """Per scenario, method and pair of models: the bootstrap probability that their order holds."""
    notes: list[str] = Field(default_factory=list)
    """What the report compares and under which budgets (the header's notes)."""
    run_dirs: list[str] = Field(default_factory=list)
    stale_records: list[dict[str, str]] = Field(default_factory=list)
    """Evaluation records left out of the table, with the reason (``path``, ``reason``)."""
    cost_per_point: list[dict[str, Any]] = Field(default_factory=list)
    """Per method: Δ per dollar and per 1,000 tokens against the baseline and zero-shot CoT."""
    verdicts: list[str] = Field(default_factory=list)
    beats_zero_shot_cot: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rows_have_the_columns(self) -> ReportFile:
        for i, row in enumerate(self.rows):
            if list(row) != self.columns:
                raise ValueError(f"row {i} does not hold exactly the report's columns in order")
        return self

    @classmethod
    def migrate(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data


class SweepState(_Record):
    """``sweep.json``: the configuration a sweep's output directory was last run with."""

    schema_version: Literal[2] = 2
    config: dict[str, Any]

    @classmethod
    def migrate(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The first layout was the bare configuration."""
        if "schema_version" not in data:
            return {"schema_version": SCHEMA_VERSION, "config": data}
        return data


class EstimateRow(_Record):
    """One cell of a sweep: the LM calls and cost estimated before it ran, and those it made."""

    cell: str
    estimated_lm_calls: int | None
    actual_lm_calls: int | None
    error: float | None  # |estimated - actual| / actual
    estimated_cost: float | None
    actual_cost: float | None


class EstimateComparison(_Record):
    """``report/estimate.json``: the sweep's estimate (as ``--dry-run --json`` prints it) beside the actual run."""

    schema_version: Literal[2] = 2
    estimated_lm_calls: int | None
    estimated_cost: float | None
    estimated_wall_s: float | None
    endpoints: dict[str, dict[str, Any]]
    cells: list[dict[str, Any]]
    assumptions: list[str]
    actual_lm_calls: int = Field(ge=0)
    estimate_error: float | None
    actual_wall_s: float | None
    rows: list[EstimateRow]
    limits: dict[str, Any] | None
    """The endpoints' limiter statistics of the run: calls, cache hits, 429s, back-off, waits, most in flight."""

    @classmethod
    def migrate(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The first layout had no version."""
        return data if "schema_version" in data else {"schema_version": SCHEMA_VERSION, **data}


_R = TypeVar("_R", AgentMeta, EvaluationRecord, ReportFile, SweepState, EstimateComparison)
_WHAT = {AgentMeta: "agent metadata", EvaluationRecord: "evaluation record", ReportFile: "report",
         SweepState: "sweep state", EstimateComparison: "estimate comparison"}
_FIX = {AgentMeta: "delete it (and its agent) and re-run `helm-optimizer optimize`",
        EvaluationRecord: "delete it and re-run `helm-optimizer evaluate` (or the sweep)",
        ReportFile: "delete it and re-run `helm-optimizer report`",
        SweepState: "delete it and re-run the sweep",
        EstimateComparison: "delete it and re-run the sweep (it rewrites it)"}


def read_record(kind: type[_R], path: Path) -> _R:
    """Read and validate one file of ``kind``; migrate the previous layout; else a one-line DataError."""
    what, fix = _WHAT[kind], _FIX[kind]
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"Missing {what} {path}; {fix}.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"Cannot read {what} {path} ({type(exc).__name__}: {exc}); {fix}.") from None
    if not isinstance(data, dict):
        raise DataError(f"{what.capitalize()} {path} is not a JSON object; {fix}.")
    data = kind.migrate(data)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
        hint = "upgrade helm-optimizer to read it, or " if newer else ""
        raise DataError(f"{what.capitalize()} {path} has schema version {version!r}, this helm-optimizer reads "
                        f"{SCHEMA_VERSION}; {hint}{fix}.")
    try:
        return kind.model_validate_json(json.dumps(data))  # strict JSON types: no "5" for 5, no true for 1
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
        raise DataError(f"{what.capitalize()} {path}: '{where}' {first.get('msg', 'is invalid')} "
                        f"({exc.error_count()} problem(s)); {fix}.") from None


def write_record(path: Path, record: BaseModel) -> None:
    """Write a record atomically (same canonical JSON everywhere)."""
    write_json_atomic(Path(path), record.model_dump(mode="json"))
