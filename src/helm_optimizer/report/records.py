"""Evaluation records and the HELM outputs they point to.

The sweep writes one JSON record per HELM run under ``OUTPUT_DIR/evaluations/`` (any depth). This
module reads and validates those records, reads each run's per-instance scores from HELM's
``per_instance_stats.json`` (and HELM's own aggregate from ``stats.json``), and merges the folds of
cross-fitted evaluations into one :class:`MethodResult` per (scenario, model, method).
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_optimizer.errors import DataError
from helm_optimizer.records import EvaluationRecord as StoredRecord
from helm_optimizer.records import Usage, read_record

__all__ = [
    "EvaluationRecord",
    "MethodResult",
    "Usage",
    "find_record_files",
    "load_helm_aggregate",
    "load_instance_scores",
    "load_record",
    "load_records",
    "load_results",
    "merge_folds",
]

logger = logging.getLogger(__name__)

NO_RECORDS_MESSAGE = (
    "No evaluation records under OUTPUT_DIR/evaluations; run `helm-optimizer sweep CONFIG` first."
)



@dataclass(frozen=True)
class EvaluationRecord:
    """One validated evaluation record: one HELM run of one method on one (scenario, model[, fold])."""

    path: Path
    scenario: str
    run_entry: str
    model: str
    method: str
    fold: int | None
    num_folds: int
    suite: str
    run_dir: Path
    """Absolute path of the HELM run directory."""
    run_dir_label: str
    """The run directory as written in the record (relative to OUTPUT_DIR, or absolute)."""
    main_metric: str
    split: str
    mean: float
    count: int
    evaluation: Usage
    optimization: Usage | None
    # -- issue 13 (optional keys; older records lack them) ---------------------------------------------
    optimizer_seed: int | None = None
    """The optimizer seed of a multi-seed sweep's agent; None for single-seed methods."""
    decoding: Mapping[str, Any] | None = None
    """max_tokens, temperature and stop the method decoded under (and who set them)."""
    mean_completion_tokens: float | None = None
    provenance: Mapping[str, Any] | None = None
    """What the agent was optimized on, checked against the evaluated instances."""
    contamination: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scenario, self.model, self.method)

    @property
    def seed_key(self) -> tuple[str, str, str, int]:
        return (*self.key, -1 if self.optimizer_seed is None else self.optimizer_seed)

    @property
    def entry_name(self) -> str:
        """The run entry's scenario name (``medec`` of ``medec:...``)."""
        return self.run_entry.split(":", 1)[0]


@dataclass(frozen=True)
class MethodResult:
    """All folds of one (scenario, model, method), with their per-instance scores merged."""

    scenario: str
    model: str
    method: str
    main_metric: str
    split: str
    num_folds: int
    records: tuple[EvaluationRecord, ...]
    """Sorted by fold."""
    scores: Mapping[str, float]
    """Per-instance main-metric score over all folds (averaged over HELM train trials)."""
    fold_sizes: tuple[int, ...]
    """Number of per-instance scores read from each record's run, in the order of ``records``."""
    stats_json_means: tuple[float | None, ...]
    """HELM's aggregate from each run's ``stats.json`` (None where the file or the stat is absent)."""
    optimizer_seed: int | None = None

    @property
    def folds_present(self) -> tuple[int, ...]:
        return tuple(r.fold for r in self.records if r.fold is not None)


def find_record_files(output_dir: Path) -> list[Path]:
    """Every ``*.json`` under ``OUTPUT_DIR/evaluations`` (any depth, hidden files skipped), sorted."""
    root = Path(output_dir) / "evaluations"
    if not root.is_dir():
        return []
    files = [
        p
        for p in root.rglob("*.json")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files)


def _read_json(path: Path, what: str, fix: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"Missing {what} {path}; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"Cannot read {what} {path} ({exc}); {fix}") from None


def load_record(path: Path, output_dir: Path) -> EvaluationRecord:
    """Read and validate one record; its ``run_dir`` must exist (relative to ``output_dir`` or absolute)."""
    path = Path(path)
    data = read_record(StoredRecord, path)
    run_dir = Path(data.run_dir)
    if not run_dir.is_absolute():
        run_dir = Path(output_dir) / run_dir
    if not run_dir.is_dir():
        raise DataError(
            f"HELM run directory {run_dir} named by evaluation record {path} does not exist; "
            "restore it or rerun `helm-optimizer sweep CONFIG`."
        )
    optimization = data.optimization
    return EvaluationRecord(
        path=path,
        scenario=data.scenario,
        run_entry=data.run_entry,
        model=data.model,
        method=data.method,
        fold=data.fold if data.num_folds > 1 else None,
        num_folds=data.num_folds,
        suite=data.suite,
        run_dir=run_dir,
        run_dir_label=data.run_dir,
        main_metric=data.main_metric,
        split=data.split,
        mean=data.mean,
        count=data.count,
        evaluation=data.evaluation,
        optimization=optimization,
        optimizer_seed=data.optimizer_seed,
        decoding=data.decoding,
        mean_completion_tokens=data.mean_completion_tokens,
        provenance=data.provenance,
        contamination=data.contamination,
    )


def load_records(output_dir: Path, files: Sequence[Path] | None = None) -> list[EvaluationRecord]:
    """The records ``files`` (default: all under ``OUTPUT_DIR/evaluations``); DataError when there are none."""
    files = find_record_files(output_dir) if files is None else list(files)
    if not files:
        raise DataError(NO_RECORDS_MESSAGE)
    records = [load_record(p, output_dir) for p in files]
    logger.info("Loaded %d evaluation records from %s", len(records), Path(output_dir) / "evaluations")
    return records


def _is_main_stat(stat: Any, metric: str, split: str, *, aggregate: bool) -> bool:
    if not isinstance(stat, dict):
        return False
    name = stat.get("name")
    if not isinstance(name, dict) or name.get("name") != metric or name.get("split") != split:
        return False
    if name.get("perturbation") is not None:
        return False
    return not (aggregate and name.get("sub_split") is not None)


def _stat_value(stat: Mapping[str, Any]) -> float | None:
    mean = stat.get("mean")
    if isinstance(mean, int | float) and not isinstance(mean, bool):
        return float(mean)
    count, total = stat.get("count"), stat.get("sum")
    if isinstance(count, int) and count > 0 and isinstance(total, int | float):
        return float(total) / count
    return None


def load_instance_scores(run_dir: Path, metric: str, split: str) -> dict[str, float]:
    """Per-instance ``metric`` on ``split`` from HELM's ``per_instance_stats.json``.

    Unperturbed instances only; where HELM ran several train trials, an instance's score is the mean
    over its trials. :class:`DataError` when the file is unreadable or holds no such stat.
    """
    path = Path(run_dir) / "per_instance_stats.json"
    fix = "rerun the HELM evaluation of this run (`helm-optimizer sweep CONFIG`)."
    data = _read_json(path, "HELM per-instance stats", fix)
    if not isinstance(data, list):
        raise DataError(f"HELM per-instance stats {path} is not a JSON list; {fix}")
    trials: dict[str, list[float]] = defaultdict(list)
    for entry in data:
        if not isinstance(entry, dict) or entry.get("perturbation") is not None:
            continue
        instance_id = entry.get("instance_id")
        stats = entry.get("stats")
        if not isinstance(instance_id, str) or not isinstance(stats, list):
            raise DataError(f"HELM per-instance stats {path} has an entry without instance_id/stats; {fix}")
        for stat in stats:
            if _is_main_stat(stat, metric, split, aggregate=False):
                value = _stat_value(stat)
                if value is not None and math.isfinite(value):
                    trials[instance_id].append(value)
                break
    if not trials:
        raise DataError(
            f"HELM per-instance stats {path} hold no '{metric}' stat for split '{split}'; "
            "check 'main_metric' and 'split' in the evaluation record."
        )
    return {iid: sum(values) / len(values) for iid, values in trials.items()}


def load_helm_aggregate(run_dir: Path, metric: str, split: str) -> float | None:
    """HELM's aggregate of ``metric`` on ``split`` from ``stats.json``; None if absent."""
    path = Path(run_dir) / "stats.json"
    if not path.is_file():
        return None
    data = _read_json(
        path, "HELM stats", "rerun the HELM evaluation of this run (`helm-optimizer sweep CONFIG`)."
    )
    if not isinstance(data, list):
        return None
    for stat in data:
        if _is_main_stat(stat, metric, split, aggregate=True):
            return _stat_value(stat)
    return None


def merge_folds(folds: Sequence[tuple[str, Mapping[str, float]]]) -> dict[str, float]:
    """Union of per-fold scores; ``folds`` is ``(label, scores)`` pairs (label names the run in errors).

    Fold test sets must be disjoint: an instance id in two folds raises :class:`DataError`.
    """
    merged: dict[str, float] = {}
    owner: dict[str, str] = {}
    for label, scores in folds:
        for instance_id, value in scores.items():
            if instance_id in merged:
                raise DataError(
                    f"Instance id '{instance_id}' appears in two folds ({owner[instance_id]} and {label}); "
                    "cross-fitted folds must be disjoint, rerun the sweep with a fresh fold split."
                )
            merged[instance_id] = value
            owner[instance_id] = label
    return merged


def _group(records: Sequence[EvaluationRecord]) -> dict[tuple[str, str, str, int], list[EvaluationRecord]]:
    groups: dict[tuple[str, str, str, int], list[EvaluationRecord]] = defaultdict(list)
    for record in records:
        groups[record.seed_key].append(record)
    for key, group in groups.items():
        first = group[0]
        seen: dict[int | None, EvaluationRecord] = {}
        for record in group:
            if (record.num_folds, record.main_metric, record.split) != (
                first.num_folds,
                first.main_metric,
                first.split,
            ):
                raise DataError(
                    f"Evaluation records {first.path} and {record.path} of {'/'.join(key[:3])} disagree on "
                    "num_folds, main_metric or split; delete the stale one and rerun the sweep."
                )
            if record.fold in seen:
                raise DataError(
                    f"Evaluation records {seen[record.fold].path} and {record.path} describe the same run "
                    f"({'/'.join(key[:3])}, fold {record.fold}); delete the stale one."
                )
            seen[record.fold] = record
        group.sort(key=lambda r: -1 if r.fold is None else r.fold)
    return groups


def load_results(records: Sequence[EvaluationRecord]) -> list[MethodResult]:
    """Read every run's scores and merge folds: one :class:`MethodResult` per (scenario, model, method)."""
    results: list[MethodResult] = []
    for key, group in sorted(_group(records).items()):
        first = group[0]
        per_fold = [(str(r.run_dir), load_instance_scores(r.run_dir, r.main_metric, r.split)) for r in group]
        merged = merge_folds(per_fold)
        results.append(
            MethodResult(
                scenario=key[0],
                model=key[1],
                method=key[2],
                main_metric=first.main_metric,
                split=first.split,
                num_folds=first.num_folds,
                records=tuple(group),
                scores=merged,
                fold_sizes=tuple(len(scores) for _, scores in per_fold),
                stats_json_means=tuple(load_helm_aggregate(r.run_dir, r.main_metric, r.split) for r in group),
                optimizer_seed=None if key[3] < 0 else key[3],
            )
        )
    return results
