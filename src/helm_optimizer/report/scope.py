"""Which evaluation records a report may use: only those of the current configuration, inputs intact.

A record is *stale* when

* the output directory's ``sweep.json`` (the configuration it was last run with) no longer lists
  its scenario, model or method, or names another seed, evaluation limit or suite;
* the agent it evaluated was deleted or changed since (its SHA-256 is in the record's inputs).

Stale records are left out of the report and named in the log and in the report itself, so a
report never shows a number that the current configuration and files did not produce.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helm_optimizer.agents.store import agent_digest
from helm_optimizer.errors import DataError
from helm_optimizer.naming import agent_path, parse_run_entry, scenario_key
from helm_optimizer.records import EvaluationRecord, SweepState, read_record

__all__ = ["StaleRecord", "split_current"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaleRecord:
    path: Path
    reason: str


@dataclass(frozen=True)
class _Expected:
    cells: frozenset[tuple[str, str, str]]  # (scenario key, model, method)
    seed: int
    eval_limit: int | None
    suite: str


def _expected(output_dir: Path) -> _Expected | None:
    path = output_dir / "sweep.json"
    if not path.is_file():
        return None
    config = read_record(SweepState, path).config
    try:
        entries = [s["entry"] if isinstance(s, dict) else str(s) for s in config["scenarios"]]
        models = [m["model"] for m in config["models"]]
        methods = list(dict.fromkeys([*config.get("methods", []), *config.get("optimizers", [])]))
        keys = [scenario_key(entry) for entry in entries]
        for entry in entries:
            parse_run_entry(entry)
    except (KeyError, TypeError) as exc:
        raise DataError(f"Sweep state {path} lacks {exc}; delete it and re-run the sweep.") from None
    return _Expected(cells=frozenset((k, m, x) for k in keys for m in models for x in methods),
                     seed=int(config.get("seed", 0)), eval_limit=config.get("eval_limit"),
                     suite=str(config.get("suite", "helm-optimizer")))


def _why_stale(record: EvaluationRecord, expected: _Expected | None, output_dir: Path) -> str | None:
    if expected is not None:
        if (record.scenario, record.model, record.method) not in expected.cells:
            return "its scenario, model or method is no longer in the sweep configuration"
        if record.suite != expected.suite:
            return f"it belongs to suite '{record.suite}', the configuration's is '{expected.suite}'"
        if record.inputs is not None and (record.inputs.seed, record.inputs.eval_limit) != (
                expected.seed, expected.eval_limit):
            return (f"it was evaluated with seed {record.inputs.seed} and eval_limit {record.inputs.eval_limit}, the "
                    f"configuration has {expected.seed} and {expected.eval_limit}")
    if record.inputs is not None and record.inputs.agent_sha256 is not None:
        agent = agent_path(output_dir / "agents", record.scenario, record.model, record.method, record.fold,
                           record.optimizer_seed)
        if not agent.is_file():
            return f"its agent {agent} no longer exists"
        if agent_digest(agent.read_bytes()) != record.inputs.agent_sha256:
            return f"its agent {agent} changed after the evaluation"
    return None


def split_current(paths: Sequence[Path], output_dir: Path) -> tuple[list[Path], list[StaleRecord]]:
    """``(current record files, stale ones with the reason)`` among ``paths``."""
    expected = _expected(Path(output_dir))
    current: list[Path] = []
    stale: list[StaleRecord] = []
    for path in paths:
        record = read_record(EvaluationRecord, path)
        reason = _why_stale(record, expected, Path(output_dir))
        if reason is None:
            current.append(path)
        else:
            stale.append(StaleRecord(path=path, reason=reason))
    if stale:
        logger.warning("Left %d stale evaluation record(s) out of the report, e.g. %s: %s", len(stale),
                       stale[0].path, stale[0].reason)
    return current, stale
