"""MedCalc-Bench v1.0 from the authors' CSV, the file HF ``ncbi/MedCalc-Bench`` was built from."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from helm_optimizer._env import prepare_offline_environment
from helm_optimizer.errors import DataError
from helm_optimizer.scenarios.medical._files import (
    find_data_file,
    optional_data_file,
    read_csv_records,
    resolve_data_dir,
)
from helm_optimizer.scenarios.medical._helm import helm_definition_path
from helm_optimizer.scenarios.medical._optimization import OptimizationData

prepare_offline_environment()

from helm.benchmark.scenarios.medcalc_bench_scenario import MedCalcBenchScenario  # noqa: E402
from helm.benchmark.scenarios.scenario import TEST_SPLIT, TRAIN_SPLIT, Instance  # noqa: E402

__all__ = [
    "MEDCALC_TEST_FILE",
    "MEDCALC_TRAIN_FILES",
    "LocalMedCalcBenchScenario",
    "check_same_release",
    "medcalc_bench_instances",
    "medcalc_bench_optimization_data",
]

logger = logging.getLogger(__name__)

BENCHMARK = "medcalc_bench"
MEDCALC_TEST_FILE = "test_data.csv"
MEDCALC_TRAIN_FILES = ("train_data.csv", "train_data.csv.zip")
LOCAL_VERSION = "v1.0"
_HF_TRAIN_DATASET = "ncbi/MedCalc-Bench-v1.0"
_REQUIRED = (
    "Row Number",
    "Category",
    "Patient Note",
    "Question",
    "Ground Truth Answer",
    "Lower Limit",
    "Upper Limit",
)

NO_SPLIT_NOTE = "no official non-test split available; cross-fit on the test split"


def medcalc_bench_instances(rows: Iterable[Mapping[str, Any]], split: str, *, source: str) -> list[Instance]:
    """HELM instances from MedCalc-Bench rows (CSV or HF), built by HELM's ``process_csv``.

    The only change to HELM's output is the id: HELM passes ``row["Row Number"]`` through, which
    is an ``int`` when read from HF and a ``str`` when read from the CSV. We always give
    ``str(int(row["Row Number"]))`` (e.g. ``"1"``) because ``Instance.id`` is typed ``str``:
    HELM's cached ``input_instances.json`` then reloads (dacite rejects an ``int`` there) and the
    ids are the same whichever source was read.
    """
    normalized: list[dict[str, Any]] = []
    for position, row in enumerate(rows, start=1):
        try:
            row_id = str(int(str(row["Row Number"]).strip()))
        except (KeyError, ValueError) as exc:
            raise DataError(
                f"{source}: row {position} has no integer 'Row Number' ({exc}); "
                "replace the file with the original benchmark file."
            ) from exc
        normalized.append({**row, "Row Number": row_id})
    if not normalized:
        raise DataError(f"{source} holds no rows; replace it with the original benchmark file.")
    scenario = MedCalcBenchScenario()  # type: ignore[no-untyped-call]
    instances: list[Instance] = scenario.process_csv(normalized, split)
    return instances


class LocalMedCalcBenchScenario(MedCalcBenchScenario):  # type: ignore[misc]
    """HELM's ``MedCalcBenchScenario``, reading ``test_data.csv`` (v1.0) from ``data_dir`` when one is given.

    ``version`` is what HELM's ``medcalc_bench:version=...`` run spec passes (HELM's own class does
    not accept it in its constructor and crashes; this one does). Local files are v1.0 only.
    """

    def __init__(self, version: str | None = None, data_dir: str | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.version = version
        self.data_dir = data_dir
        self.definition_path = helm_definition_path(MedCalcBenchScenario)

    def get_instances(self, output_path: str, version: str | None = None) -> list[Instance]:
        chosen = version if version is not None else self.version
        directory = resolve_data_dir(self.data_dir)
        if directory is None:
            instances: list[Instance] = super().get_instances(output_path, version=chosen)
            return instances
        _check_local_version(chosen)
        path = find_data_file(directory, BENCHMARK, MEDCALC_TEST_FILE)
        return medcalc_bench_instances(read_csv_records(path, _REQUIRED), TEST_SPLIT, source=str(path))


def _check_local_version(version: str | None) -> None:
    if version not in (None, LOCAL_VERSION):
        raise DataError(
            f"medcalc_bench: local files are MedCalc-Bench {LOCAL_VERSION}, but version={version} was asked; "
            "drop the version argument, or run online without --data-dir."
        )


def medcalc_bench_optimization_data(
    data_dir: str | None = None, *, version: str | None = None
) -> OptimizationData:
    """MedCalc-Bench train split (``train_data.csv`` or ``.csv.zip``) if present (no validation split exists).

    With no data directory the HF split ``train`` of ``ncbi/MedCalc-Bench-v1.0`` (or of
    ``ncbi/MedCalc-Bench-<version>``) is used. Offline the train file is usually absent: both lists
    are then empty and ``note`` says to cross-fit on the test split.
    """
    directory = resolve_data_dir(data_dir)
    if directory is None:
        return _from_hf(version)
    _check_local_version(version)
    path: Path | None = None
    for name in MEDCALC_TRAIN_FILES:
        path = optional_data_file(directory, BENCHMARK, name)
        if path is not None:
            break
    if path is None:
        return OptimizationData(train=[], valid=[], sources=[], note=NO_SPLIT_NOTE)
    train = medcalc_bench_instances(read_csv_records(path, _REQUIRED), TRAIN_SPLIT, source=str(path))
    return OptimizationData(
        train=train,
        valid=[],
        sources=[f"medcalc_bench {path.name} ({len(train):,} rows)"],
        note="Official MedCalc-Bench train split; it has no validation split, so hold out part of train.",
    )


_RELEASE_COLUMNS = ("Row Number", "Patient Note", "Question", "Ground Truth Answer")


def _release_fingerprint(rows: Iterable[Mapping[str, Any]]) -> tuple[int, str]:
    from helm_optimizer._io import fingerprint

    keyed = sorted([str(row.get(c, "")).strip() for c in _RELEASE_COLUMNS] for row in rows)
    return len(keyed), fingerprint(keyed)


def check_same_release(helm_test: Iterable[Mapping[str, Any]], train_repo_test: Iterable[Mapping[str, Any]], *,
                       helm_repo: str, train_repo: str) -> None:
    """Refuse training rows from another release than the test rows HELM evaluates.

    Online, HELM reads the test split from ``helm_repo`` while the train split may come from
    another hub repository (``train_repo``). They are one release when the test split of
    ``train_repo`` holds exactly HELM's test rows (row number, note, question and answer).
    """
    helm_n, helm_fp = _release_fingerprint(helm_test)
    train_n, train_fp = _release_fingerprint(train_repo_test)
    if helm_fp != train_fp:
        raise DataError(
            f"medcalc_bench: HELM's test split comes from HF {helm_repo} ({helm_n:,} rows) but the train split "
            f"from HF {train_repo}, whose test split differs ({train_n:,} rows); they are different releases. "
            f"Pin one release with medcalc_bench:version=... or pass --data-dir with matching files."
        )


def _from_hf(version: str | None) -> OptimizationData:
    from datasets import load_dataset  # type: ignore[import-untyped]

    helm_repo = "ncbi/MedCalc-Bench" + (f"-{version}" if version else "")  # what HELM's scenario reads
    name = _HF_TRAIN_DATASET if version is None else f"ncbi/MedCalc-Bench-{version}"
    if name != helm_repo:
        check_same_release(load_dataset(helm_repo, split="test"), load_dataset(name, split="test"),
                           helm_repo=helm_repo, train_repo=name)
    rows = load_dataset(name, split="train")
    train = medcalc_bench_instances(rows, TRAIN_SPLIT, source=f"HF {name}")
    sources = [f"medcalc_bench HF {name} split train ({len(train):,} rows)"]
    if name != helm_repo:
        sources.append(f"checked: HF {name} split test equals HELM's test split from HF {helm_repo}")
    return OptimizationData(
        train=train,
        valid=[],
        sources=sources,
        note="Official MedCalc-Bench train split; it has no validation split, so hold out part of train.",
    )
